"""Attribution order (click id > coupon > lifetime customer > none), first-click, cookie window, customers."""

import uuid
from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.exceptions import ValidationError
from django_scopes import scopes_disabled

from tests.factories import AffiliateFactory
from tests.tracking.conftest import needs_redis
from tracking import services
from tracking.models import Click, Conversion, Coupon, CustomerLink

pytestmark = pytest.mark.django_db


def record(sales, **fields):
    fields.setdefault("source", Conversion.Source.POSTBACK)
    fields.setdefault("kind", "sale")
    fields.setdefault("amount", "10")
    return services.record_conversion(program=sales.program, **fields)[0]


def other_link(sales):
    """A link of the program's second approved affiliate to the same offer."""
    return sales.link()


def coupon(sales, code="SPRING10", **fields):
    fields.setdefault("affiliate", sales.affiliate)
    with scopes_disabled():
        return Coupon.objects.create(program=sales.program, code=code, **fields)


def credit(conversion) -> tuple:
    return conversion.attributed_by, conversion.affiliate_id, conversion.status, conversion.status_reason


def test_click_id_credits_the_clicks_affiliate(sales):
    click = sales.click()
    conversion = record(sales, order_id="A-1", click_id=str(click.click_id))
    assert credit(conversion) == ("click", sales.affiliate.pk, "pending", "")
    assert (conversion.link, conversion.offer, conversion.click_id) == (
        sales.tracked.link,
        sales.tracked.offer,
        click.click_id,
    )


def test_another_programs_click_id_is_refused_like_an_unknown_one(sales, bob_sales, caplog):
    bob_click = bob_sales.click()
    with pytest.raises(ValidationError) as excinfo:
        record(sales, order_id="A-1", click_id=str(bob_click.click_id))
    assert services.describe_error(excinfo.value) == (
        "click_id",
        "unknown_click_id",
        "Unknown click_id for this program.",
    )
    assert f"got a conversion for program {bob_sales.program.pk}'s click" in caplog.text
    with pytest.raises(ValidationError) as unknown:
        record(sales, order_id="A-2", click_id="00000000-0000-4000-8000-000000000000")
    assert services.describe_error(unknown.value) == services.describe_error(excinfo.value)
    with scopes_disabled():
        assert not Conversion.objects.exists()


def test_click_beats_coupon(sales):
    coupon(sales, affiliate=sales.world.other_affiliate)
    click = sales.click()
    conversion = record(sales, order_id="A-1", click_id=click.click_id, coupon="SPRING10")
    assert credit(conversion)[:2] == ("click", sales.affiliate.pk)
    assert conversion.coupon == "SPRING10"


def test_coupon_credits_its_affiliate_case_insensitively(sales):
    coupon(sales, offer=sales.tracked.offer)
    conversion = record(sales, order_id="A-1", coupon="spring10")
    assert credit(conversion) == ("coupon", sales.affiliate.pk, "pending", "")
    assert (conversion.offer, conversion.link, conversion.click_id) == (sales.tracked.offer, None, None)


@pytest.mark.parametrize("kind_of_coupon", ["inactive", "unbound", "unknown", "bobs"])
def test_coupon_that_credits_nobody_leaves_the_conversion_unattributed(sales, bob_sales, kind_of_coupon):
    if kind_of_coupon == "inactive":
        coupon(sales, active=False)
    elif kind_of_coupon == "unbound":
        coupon(sales, affiliate=None)
    elif kind_of_coupon == "bobs":
        coupon(bob_sales)
    conversion = record(sales, order_id="A-1", coupon="SPRING10")
    assert credit(conversion) == ("none", None, "pending", "unattributed")
    assert conversion.in_review is True
    assert conversion.commission == Decimal("0")


def test_lifetime_customer_credits_the_affiliate_who_brought_them(sales):
    sales.settings(lifetime_customers=True)
    first = record(sales, order_id="A-1", click_id=sales.click().click_id, customer_id="cust-7")
    later = record(sales, order_id="A-2", customer_id="cust-7")
    assert first.is_new_customer is True
    assert (later.is_new_customer, later.renewal_number) == (False, 1)
    assert credit(later) == ("customer", sales.affiliate.pk, "pending", "")
    with scopes_disabled():
        link = CustomerLink.objects.get(program=sales.program, customer_id="cust-7")
    assert (link.affiliate, link.first_conversion_at) == (sales.affiliate, first.created_at)


def test_without_lifetime_customers_a_returning_customer_is_unattributed(sales):
    record(sales, order_id="A-1", click_id=sales.click().click_id, customer_id="cust-7")
    later = record(sales, order_id="A-2", customer_id="cust-7")
    assert credit(later) == ("none", None, "pending", "unattributed")


def test_customer_of_another_program_is_not_linked(sales, bob_sales):
    sales.settings(lifetime_customers=True)
    record(bob_sales, order_id="B-1", click_id=bob_sales.click().click_id, customer_id="cust-7")
    later = record(sales, order_id="A-2", customer_id="cust-7")
    assert credit(later)[:2] == ("none", None)
    assert later.is_new_customer is True


def test_unattributed_first_conversion_links_the_customer_to_the_first_affiliate_later(sales):
    sales.settings(lifetime_customers=True)
    record(sales, order_id="A-1", customer_id="cust-7")
    record(sales, order_id="A-2", customer_id="cust-7", click_id=sales.click().click_id)
    third = record(sales, order_id="A-3", customer_id="cust-7")
    assert credit(third)[:2] == ("customer", sales.affiliate.pk)
    assert third.renewal_number == 2


def test_last_click_credits_the_click_even_for_a_known_customer(sales):
    record(sales, order_id="A-1", click_id=sales.click().click_id, customer_id="cust-7")
    second_click = sales.click(link=other_link(sales))
    later = record(sales, order_id="A-2", click_id=second_click.click_id, customer_id="cust-7")
    assert credit(later)[:2] == ("click", sales.world.other_affiliate.pk)


def test_first_click_credits_the_customers_first_affiliate_within_the_window(sales):
    sales.settings(attribution_model="first_click")
    record(sales, order_id="A-1", click_id=sales.click().click_id, customer_id="cust-7")
    second_click = sales.click(link=other_link(sales))
    later = record(sales, order_id="A-2", click_id=second_click.click_id, customer_id="cust-7")
    assert credit(later)[:2] == ("customer", sales.affiliate.pk)
    assert (later.click_id, later.link, later.offer) == (None, None, sales.tracked.offer)


def test_first_click_does_not_reach_past_the_cookie_window(sales):
    sales.settings(attribution_model="first_click")
    old_click = sales.click(ago=timedelta(days=40))
    record(
        sales,
        order_id="A-1",
        click_id=old_click.click_id,
        customer_id="cust-7",
        occurred_at=old_click.created_at + timedelta(hours=1),
    )
    second_click = sales.click(link=other_link(sales))
    later = record(sales, order_id="A-2", click_id=second_click.click_id, customer_id="cust-7")
    assert credit(later)[:2] == ("click", sales.world.other_affiliate.pk)


def test_conversion_outside_the_cookie_window_is_recorded_rejected(sales):
    with scopes_disabled():
        sales.tracked.offer.cookie_window_days = 7
        sales.tracked.offer.save()
    click = sales.click(ago=timedelta(days=7, seconds=5))
    conversion = record(sales, order_id="A-1", click_id=click.click_id)
    assert credit(conversion) == ("click", sales.affiliate.pk, "rejected", "outside_window")
    inside = record(sales, order_id="A-2", click_id=sales.click(ago=timedelta(days=6, hours=23)).click_id)
    assert credit(inside)[2:] == ("pending", "")


def test_renewal_numbers_count_only_earlier_counted_sales_of_the_customer(sales):
    click = sales.click(ago=timedelta(days=3))
    first = record(
        sales,
        order_id="S-1",
        click_id=click.click_id,
        customer_id="c1",
        occurred_at=click.created_at + timedelta(hours=1),
    )
    refused = record(
        sales,
        order_id="S-2",
        click_id=click.click_id,
        customer_id="c1",
        occurred_at=click.created_at + timedelta(hours=2),
    )
    services.change_conversion_status(program=sales.program, conversion=refused, to_status="rejected")
    lead = record(
        sales,
        kind="lead",
        order_id="L-1",
        click_id=click.click_id,
        customer_id="c1",
        occurred_at=click.created_at + timedelta(hours=3),
    )
    third = record(sales, order_id="S-3", click_id=click.click_id, customer_id="c1")
    assert [first.renewal_number, lead.renewal_number, third.renewal_number] == [0, 0, 1]
    assert [first.is_new_customer, third.is_new_customer] == [True, False]


@needs_redis
def test_postback_finds_a_click_still_in_the_buffer(client, sales, buffered, wsgi_get):
    response = wsgi_get(f"/c/{sales.tracked.link.code}")
    assert response.status == 302
    click_id = parse_qs(urlsplit(response.location).query)["click_id"][0]
    with scopes_disabled():
        assert not Click.objects.filter(click_id=click_id).exists()  # buffered, not stored yet
    sales.settings(fraud_min_seconds_to_convert=0)
    answer = client.get(
        f"/postback/{sales.program.slug}",
        {"token": sales.program.postback_token, "click_id": click_id, "order_id": "A-1", "amount": "5"},
    )
    assert answer.status_code == 200
    with scopes_disabled():
        conversion = Conversion.objects.get(pk=answer.json()["conversion_id"])
    assert (conversion.click_id, conversion.affiliate, conversion.attributed_by) == (
        uuid.UUID(click_id),
        sales.affiliate,
        "click",
    )


def test_affiliate_of_another_program_is_never_credited(sales, bob_sales):
    with scopes_disabled():
        stranger = AffiliateFactory(program=bob_sales.program, status="approved")
        Coupon.objects.create(program=bob_sales.program, code="BOB5", affiliate=stranger)
    conversion = record(sales, order_id="A-1", coupon="BOB5")
    assert credit(conversion)[:2] == ("none", None)
