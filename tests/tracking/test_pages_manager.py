"""Tracking manager pages as managers and analysts use them: lists with filters, forms that refuse bad input,
actions that change exactly the chosen rows of their own program, and constant query counts."""

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils.html import escape
from django_scopes import scopes_disabled

from tests.conftest import build_world
from tests.factories import (
    ClickFactory,
    CommissionPlanFactory,
    CommissionRuleFactory,
    ConversionFactory,
    LinkFactory,
    OfferFactory,
    PostbackAttemptFactory,
)
from tracking import services
from tracking.links import create_link, create_offer
from tracking.models import (
    Cap,
    CommissionRule,
    Conversion,
    ConversionEvent,
    Coupon,
    CurrencyRate,
    Link,
    Offer,
    PostbackAttempt,
    TrackingSettings,
)

pytestmark = pytest.mark.django_db


def url(name, world, **kwargs):
    return reverse(f"manage:{name}", kwargs={"program_slug": world.program.slug, **kwargs})


def body(response) -> str:
    return response.content.decode()


def rows(response) -> list[str]:
    """The text of each table body row, tags stripped and spaces collapsed."""
    found = re.findall(r"<tbody>(.*?)</tbody>", body(response), re.S)
    table = found[0] if found else ""
    return [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)]


def order_ids(response) -> list[str]:
    return re.findall(r"ORD-\d+", " ".join(rows(response)))


@pytest.fixture
def shop(alice):
    """alice's program with an offer, links of both approved affiliates, a coupon each and a revenue-share rule."""
    with scopes_disabled():
        program = alice.program
        offer = create_offer(
            program=program,
            name="Spring sale",
            destination_url="https://shop.alice.test/spring",
            allowed_domains="blog.alice.test",
        )
        link = create_link(program=program, offer=offer, affiliate=alice.affiliate, name="Newsletter")
        other_link = create_link(program=program, offer=offer, affiliate=alice.other_affiliate)
        Coupon.objects.create(program=program, code="ONE10", affiliate=alice.affiliate, offer=offer)
        Coupon.objects.create(program=program, code="TWO10", affiliate=alice.other_affiliate, offer=offer)
        CommissionRuleFactory(plan=CommissionPlanFactory(program=program), kind="sale", percent=Decimal("10"))
    return {"world": alice, "offer": offer, "link": link, "other_link": other_link}


def record_sale(world, order_id: str, amount: str = "100.00", coupon: str = "ONE10", **extra) -> Conversion:
    """A conversion recorded the way a postback records it, through the real service."""
    with scopes_disabled():
        conversion, created = services.record_conversion(
            program=world.program,
            source=Conversion.Source.POSTBACK,
            kind="sale",
            order_id=order_id,
            amount=amount,
            coupon=coupon,
            **extra,
        )
    assert created
    return conversion


def status_of(*conversions) -> list[str]:
    with scopes_disabled():
        return [Conversion.objects.get(pk=conversion.pk).status for conversion in conversions]


# Offers


def test_offer_list_shows_offers_with_their_link_counts(client, shop, bob):
    with scopes_disabled():
        create_offer(program=bob.program, name="Bob secret offer", destination_url="https://bob.test/")
    client.force_login(shop["world"].manager)
    response = client.get(url("offer_list", shop["world"]))
    assert rows(response) == [
        "Spring sale https://shop.alice.test/spring also: blog.alice.test click_id 30 days 2 Active"
    ]
    assert "Bob secret offer" not in body(response)
    assert "New offer" in body(response)


def test_offer_and_coupon_lists_page_and_answer_htmx_with_their_results(client, shop):
    from affiliates.listing import PAGE_SIZE

    world = shop["world"]
    with scopes_disabled():
        for number in range(PAGE_SIZE):  # with the shop's own, one more than a page of each
            Offer.objects.create(program=world.program, name=f"Offer {number:02}", destination_url="https://a.test/")
            Coupon.objects.create(program=world.program, code=f"CODE{number:02}", affiliate=world.affiliate)
    client.force_login(world.manager)
    for name, first, last in (("offer_list", "Offer 00", "Spring sale"), ("coupon_list", "CODE00", "TWO10")):
        page = body(client.get(url(name, world)))
        assert first in page
        assert last not in page
        assert "Page 1 of 2" in page
        partial = body(client.get(url(name, world), {"page": 2}, HTTP_HX_REQUEST="true"))
        assert last in partial
        assert first not in partial
        assert "<html" not in partial  # only the results, swapped into the page


def test_analyst_sees_offers_without_management_links(client, shop):
    client.force_login(shop["world"].analyst)
    response = client.get(url("offer_list", shop["world"]))
    assert "Spring sale" in body(response)
    assert "New offer" not in body(response)
    assert url("offer_edit", shop["world"], offer_id=shop["offer"].pk) not in body(response)


def test_offer_create_saves_an_https_offer(client, alice):
    client.force_login(alice.manager)
    response = client.post(
        url("offer_create", alice),
        {
            "name": "Winter",
            "destination_url": "https://shop.alice.test/winter?ref=1",
            "click_id_param": "gp_click",
            "allowed_domains": "Blog.Alice.test\n\n",
            "cookie_window_days": "14",
            "status": "active",
        },
    )
    assert response.status_code == 302
    with scopes_disabled():
        offer = Offer.objects.get(program=alice.program, name="Winter")
    assert (offer.destination_url, offer.click_id_param, offer.allowed_domains, offer.cookie_window_days) == (
        "https://shop.alice.test/winter?ref=1",
        "gp_click",
        "blog.alice.test",
        14,
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("destination_url", "javascript:alert(1)", "Enter a valid URL."),
        ("destination_url", "http://shop.alice.test/", "Enter an https:// address."),
        ("destination_url", "https://user:pw@shop.alice.test/", "Enter an https:// address."),
        ("fallback_url", "http://shop.alice.test/full", "Enter an https:// address."),
        ("allowed_domains", "good.test\nnot a host/", "Not a host name: not a host/."),
        ("click_id_param", "click id", "Use letters, digits"),
        ("cookie_window_days", "0", "greater than or equal to 1"),
    ],
)
def test_offer_create_refuses_bad_input_and_saves_nothing(client, alice, field, value, message):
    client.force_login(alice.manager)
    data = {
        "name": "Bad",
        "destination_url": "https://shop.alice.test/",
        "click_id_param": "click_id",
        "cookie_window_days": "30",
        "status": "active",
        field: value,
    }
    response = client.post(url("offer_create", alice), data)
    assert response.status_code == 400
    assert message in body(response)
    with scopes_disabled():
        assert not Offer.objects.filter(program=alice.program).exists()


def test_offer_names_are_unique_per_program_only(client, shop, bob):
    client.force_login(shop["world"].manager)
    data = {"name": "spring SALE", "destination_url": "https://x.test/", "click_id_param": "c", "status": "active"}
    data["cookie_window_days"] = "30"
    response = client.post(url("offer_create", shop["world"]), data)
    assert response.status_code == 400
    assert "An offer with this name exists already." in body(response)
    client.force_login(bob.manager)
    assert client.post(url("offer_create", bob), data).status_code == 302


def test_offer_edit_saves_and_keeps_other_offers(client, shop):
    client.force_login(shop["world"].manager)
    offer = shop["offer"]
    response = client.post(
        url("offer_edit", shop["world"], offer_id=offer.pk),
        {
            "name": "Spring sale",
            "destination_url": "https://shop.alice.test/spring-v2",
            "click_id_param": "click_id",
            "cookie_window_days": "7",
            "status": "paused",
        },
    )
    assert response.status_code == 302
    with scopes_disabled():
        offer.refresh_from_db()
    assert (offer.destination_url, offer.cookie_window_days, offer.status) == (
        "https://shop.alice.test/spring-v2",
        7,
        "paused",
    )


# Links


def test_link_list_filters_by_affiliate_and_shows_the_click_url(client, shop):
    world = shop["world"]
    client.force_login(world.manager)
    everything = client.get(url("link_list", world))
    assert len(rows(everything)) == 2
    mine = client.get(url("link_list", world), {"affiliate": world.affiliate.pk})
    assert len(rows(mine)) == 1
    assert f"http://testserver/c/{shop['link'].code}" in body(mine)
    assert shop["other_link"].code not in body(mine)
    assert "Newsletter" in body(mine)


def test_manager_creates_a_link_for_an_approved_affiliate(client, shop):
    world = shop["world"]
    client.force_login(world.manager)
    response = client.post(
        url("link_create", world),
        {"affiliate": world.other_affiliate.pk, "offer": shop["offer"].pk, "landing_url": "https://blog.alice.test/x"},
    )
    assert response.status_code == 302
    with scopes_disabled():
        assert Link.objects.filter(affiliate=world.other_affiliate, landing_url="https://blog.alice.test/x").exists()


@pytest.mark.parametrize(
    ("landing", "message"),
    [
        ("https://evil.test/", "The landing page must be on one of the offer&#x27;s domains"),
        ("http://shop.alice.test/", "Enter an https:// address."),
        ("javascript:alert(1)", "Enter a valid URL."),
    ],
)
def test_link_create_refuses_landing_pages_off_the_offer(client, shop, landing, message):
    world = shop["world"]
    client.force_login(world.manager)
    with scopes_disabled():
        before = Link.objects.count()
    response = client.post(
        url("link_create", world),
        {"affiliate": world.affiliate.pk, "offer": shop["offer"].pk, "landing_url": landing},
    )
    assert response.status_code == 400
    assert message in body(response)
    with scopes_disabled():
        assert Link.objects.count() == before


def test_link_create_offers_only_approved_affiliates_of_this_program(client, shop, bob):
    world = shop["world"]
    client.force_login(world.manager)
    page = body(client.get(url("link_create", world)))
    assert "alice partner one" in page
    assert "alice applicant" not in page
    for affiliate in (world.pending, bob.affiliate):
        response = client.post(url("link_create", world), {"affiliate": affiliate.pk, "offer": shop["offer"].pk})
        assert response.status_code == 400
        assert "Select a valid choice." in body(response)


def test_pausing_a_link_changes_only_that_link(client, shop):
    client.force_login(shop["world"].manager)
    response = client.post(url("link_status", shop["world"], link_id=shop["link"].pk), {"status": "paused"})
    assert response.status_code == 302
    with scopes_disabled():
        assert Link.objects.get(pk=shop["link"].pk).status == "paused"
        assert Link.objects.get(pk=shop["other_link"].pk).status == "active"


# Clicks


def test_click_list_filters_by_affiliate_sub_id_and_source(client, shop, bob):
    world = shop["world"]
    with scopes_disabled():
        ClickFactory(program=world.program, link=shop["link"], sub1="newsletter", source="social")
        ClickFactory(program=world.program, link=shop["link"], sub3="newsletter", source="direct")
        ClickFactory(program=world.program, link=shop["other_link"], sub1="banner", source="paid")
        ClickFactory(program=bob.program, sub1="newsletter")
    client.force_login(world.analyst)
    assert len(rows(client.get(url("click_list", world)))) == 3
    assert len(rows(client.get(url("click_list", world), {"sub": "newsletter"}))) == 2
    only_social = rows(client.get(url("click_list", world), {"sub": "newsletter", "source": "social"}))
    assert len(only_social) == 1
    assert "sub1=newsletter" in only_social[0]
    other = rows(client.get(url("click_list", world), {"affiliate": world.other_affiliate.pk}))
    assert len(other) == 1
    assert "alice partner two" in other[0]
    assert "sub1=banner" in other[0]


def test_click_times_show_in_the_program_time_zone(client, shop):
    world = shop["world"]  # Europe/Warsaw: UTC+2 on 31 March 2026
    with scopes_disabled():
        ClickFactory(program=world.program, link=shop["link"], created_at=datetime(2026, 3, 31, 22, 30, tzinfo=UTC))
    client.force_login(world.manager)
    response = client.get(url("click_list", world))
    assert rows(response)[0].startswith("2026-04-01 00:30:00")
    assert "times in Europe/Warsaw" in body(response)
    # Day filters are program-local days too: the click belongs to 1 April.
    assert len(rows(client.get(url("click_list", world), {"start": "2026-04-01", "end": "2026-04-01"}))) == 1
    assert rows(client.get(url("click_list", world), {"end": "2026-03-31"})) == ["No clicks match these filters."]


def test_click_list_htmx_request_gets_only_the_results(client, shop):
    with scopes_disabled():
        ClickFactory(program=shop["world"].program, link=shop["link"])
    client.force_login(shop["world"].manager)
    response = client.get(url("click_list", shop["world"]), HTTP_HX_REQUEST="true")
    assert body(response).lstrip().startswith('<div id="results">')
    assert "<html" not in body(response)
    assert "HX-Request" in response["Vary"]


@pytest.mark.parametrize("count", [1, 3])
def test_click_list_query_count_is_constant(client, django_assert_num_queries, count):
    world = build_world(f"clicks{count}")
    with scopes_disabled():
        link = LinkFactory(program=world.program, affiliate=world.affiliate)
        ClickFactory.create_batch(count, program=world.program, link=link)
    client.force_login(world.manager)
    # session, user, program, membership, affiliates, offers, count, page rows, switcher memberships
    with django_assert_num_queries(9):
        response = client.get(url("click_list", world))
    assert len(rows(response)) == count


# Conversions


def test_conversion_list_shows_money_in_the_program_currency(client, shop):
    world = shop["world"]
    record_sale(world, "ORD-1", "123.40")
    client.force_login(world.manager)
    [row] = rows(client.get(url("conversion_list", world)))
    assert "ORD-1" in row
    assert "€123.40" in row
    assert "€12.34" in row  # 10 % commission
    assert "alice partner one" in row


def test_conversion_list_filters_sorts_and_paginates(client, shop, bob):
    world = shop["world"]
    with scopes_disabled():
        for number in range(30):
            ConversionFactory(
                program=world.program,
                order_id=f"ORD-{number:02d}",
                revenue=Decimal(number),
                status="approved" if number % 3 == 0 else "pending",
                affiliate=world.affiliate if number < 5 else world.other_affiliate,
            )
        ConversionFactory(program=bob.program, order_id="ORD-99")
    client.force_login(world.manager)
    listing = url("conversion_list", world)
    first = client.get(listing, {"sort": "-amount"})
    assert order_ids(first)[:3] == ["ORD-29", "ORD-28", "ORD-27"]
    assert len(order_ids(first)) == 25
    second = client.get(listing, {"sort": "-amount", "page": 2})
    assert order_ids(second) == ["ORD-04", "ORD-03", "ORD-02", "ORD-01", "ORD-00"]
    assert "Page 2 of 2" in body(second)
    approved = order_ids(client.get(listing, {"status": "approved", "sort": "amount"}))
    assert approved == [f"ORD-{n:02d}" for n in range(0, 30, 3)]
    assert order_ids(client.get(listing, {"affiliate": world.affiliate.pk, "sort": "amount"})) == [
        "ORD-00",
        "ORD-01",
        "ORD-02",
        "ORD-03",
        "ORD-04",
    ]
    assert order_ids(client.get(listing, {"q": "ORD-07"})) == ["ORD-07"]
    assert order_ids(client.get(listing, {"q": "ORD-99"})) == []


def test_conversion_list_ignores_bad_filter_values(client, shop):
    record_sale(shop["world"], "ORD-1")
    client.force_login(shop["world"].manager)
    response = client.get(
        url("conversion_list", shop["world"]),
        {"status": "nonsense", "sort": "password", "affiliate": "x", "start": "yesterday", "page": "99"},
    )
    assert response.status_code == 200
    assert order_ids(response) == ["ORD-1"]


@pytest.mark.parametrize("count", [1, 3])
def test_conversion_list_query_count_is_constant(client, django_assert_num_queries, count):
    world = build_world(f"conversions{count}")
    with scopes_disabled():
        offer = OfferFactory(program=world.program)
        ConversionFactory.create_batch(count, program=world.program, affiliate=world.affiliate, offer=offer)
    client.force_login(world.manager)
    # session, user, program, membership, affiliates, offers, count, page rows, switcher memberships
    with django_assert_num_queries(9):
        response = client.get(url("conversion_list", world))
    assert len(rows(response)) == count


def test_bulk_approve_changes_exactly_the_ticked_conversions(client, shop):
    world = shop["world"]
    first, second, third = (record_sale(world, f"ORD-{n}") for n in range(3))
    client.force_login(world.manager)
    response = client.post(
        url("conversion_bulk", world),
        {"ids": [first.pk, third.pk], "to_status": "approved", "next": url("conversion_list", world) + "?status="},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == url("conversion_list", world) + "?status="
    assert "2 of 2 conversions are now approved." in body(response)
    assert status_of(first, second, third) == ["approved", "pending", "approved"]
    with scopes_disabled():
        event = ConversionEvent.objects.filter(conversion=first).latest("pk")
    assert (event.from_status, event.to_status, event.actor) == ("pending", "approved", world.manager)


def test_bulk_action_ignores_ids_of_another_program(client, shop, bob):
    world = shop["world"]
    mine = record_sale(world, "ORD-1")
    with scopes_disabled():
        theirs = ConversionFactory(program=bob.program, order_id="ORD-2")
    client.force_login(world.manager)
    response = client.post(
        url("conversion_bulk", world), {"ids": [mine.pk, theirs.pk], "to_status": "rejected", "reason": "Test order"}
    )
    assert response.status_code == 302
    assert status_of(mine, theirs) == ["rejected", "pending"]
    with scopes_disabled():
        assert not ConversionEvent.objects.filter(conversion=theirs).exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"to_status": "rejected", "reason": ""}, "Give a reason for rejecting"),
        ({"to_status": "approved", "ids": []}, "Tick at least one conversion."),
        ({"to_status": "reversed", "reason": "x"}, "Select a valid choice."),
        ({"to_status": "approved", "ids": ["abc"]}, "Choose conversions from the list."),
        ({"to_status": "approved", "ids": list(range(1, 502))}, "Choose at most 500 conversions at once."),
    ],
)
def test_bulk_action_refuses_bad_input_and_changes_nothing(client, shop, data, message):
    world = shop["world"]
    conversion = record_sale(world, "ORD-1")
    client.force_login(world.manager)
    response = client.post(url("conversion_bulk", world), {"ids": [conversion.pk], **data}, follow=True)
    assert message in body(response)
    assert status_of(conversion) == ["pending"]


def test_bulk_action_never_redirects_off_site(client, shop):
    conversion = record_sale(shop["world"], "ORD-1")
    client.force_login(shop["world"].manager)
    response = client.post(
        url("conversion_bulk", shop["world"]),
        {"ids": [conversion.pk], "to_status": "approved", "next": "https://evil.test/"},
    )
    assert response["Location"] == url("conversion_list", shop["world"])


def test_review_queue_lists_flagged_pending_conversions_with_readable_reasons(client, shop):
    world = shop["world"]
    with scopes_disabled():
        flagged = ConversionFactory(
            program=world.program,
            order_id="ORD-1",
            affiliate=world.affiliate,
            in_review=True,
            fraud_flags=["fast_conversion", "self_referral"],
        )
        ConversionFactory(program=world.program, order_id="ORD-2", in_review=False)
        ConversionFactory(program=world.program, order_id="ORD-3", in_review=True, status="rejected")
    client.force_login(world.manager)
    response = client.get(url("review_queue", world))
    assert order_ids(response) == ["ORD-1"]
    assert "Converted too fast after the click" in rows(response)[0]
    assert "Same IP address as the affiliate&#x27;s own login" in body(response)
    # A page of flagged orders is ticked at once by a vendored script, never an inline one.
    assert 'data-select-all="ids"' in body(response)
    assert 'src="/static/js/select-all.js"' in body(response)
    assert "<script>" not in body(response)
    client.post(
        url("conversion_bulk", world),
        {"ids": [flagged.pk], "to_status": "approved", "next": url("review_queue", world)},
    )
    assert status_of(flagged) == ["approved"]
    assert order_ids(client.get(url("review_queue", world))) == []


def test_conversion_detail_explains_the_payout_and_shows_the_audit_trail(client, shop):
    world = shop["world"]
    conversion = record_sale(world, "ORD-1", "80.00")
    client.force_login(world.analyst)
    response = client.get(url("conversion_detail", world, conversion_id=conversion.pk))
    page = body(response)
    assert "10" in conversion.commission_explanation
    assert escape(conversion.commission_explanation) in page
    assert "€8.00" in page
    assert "<dt>Credited by</dt><dd>Coupon</dd>" in page
    assert "<dt>Coupon</dt><dd>ONE10</dd>" in page
    assert "Received by postback." in page
    assert "Reason (required, the affiliate sees it)" not in page  # analysts read only


def test_manager_rejects_a_conversion_with_a_reason(client, shop):
    world = shop["world"]
    conversion = record_sale(world, "ORD-1")
    client.force_login(world.manager)
    response = client.post(
        url("conversion_status", world, conversion_id=conversion.pk),
        {"to_status": "rejected", "reason": "Order cancelled by the customer"},
        follow=True,
    )
    assert "The conversion is now rejected." in body(response)
    assert "Order cancelled by the customer" in body(response)
    assert status_of(conversion) == ["rejected"]


def test_rejecting_without_a_reason_changes_nothing(client, shop):
    world = shop["world"]
    conversion = record_sale(world, "ORD-1")
    client.force_login(world.manager)
    response = client.post(
        url("conversion_status", world, conversion_id=conversion.pk), {"to_status": "rejected"}, follow=True
    )
    assert "Give a reason; the affiliate sees it." in body(response)
    assert status_of(conversion) == ["pending"]


def test_a_transition_the_service_refuses_shows_its_message(client, shop):
    world = shop["world"]
    conversion = record_sale(world, "ORD-1")
    services.change_conversion_status(
        program=world.program, conversion=conversion, to_status="reversed", reason="Refund", actor=world.manager
    )
    client.force_login(world.manager)
    response = client.post(
        url("conversion_status", world, conversion_id=conversion.pk), {"to_status": "approved"}, follow=True
    )
    assert "A reversed conversion cannot be approved." in body(response)
    assert status_of(conversion) == ["reversed"]


def test_manual_conversion_is_recorded_with_the_reason_in_its_audit_trail(client, shop):
    world = shop["world"]
    client.force_login(world.manager)
    response = client.post(
        url("conversion_create", world),
        {
            "kind": "sale",
            "order_id": "OFFLINE-7",
            "amount": "250.00",
            "currency": "eur",
            "occurred_at": "2026-04-01T00:30",
            "coupon": "two10",
            "status": "approved",
            "reason": "Sold at the trade fair",
        },
        follow=True,
    )
    assert "Conversion recorded." in body(response)
    with scopes_disabled():
        conversion = Conversion.objects.get(program=world.program, order_id="OFFLINE-7")
        event = ConversionEvent.objects.get(conversion=conversion)
    assert (conversion.source, conversion.affiliate, conversion.revenue, conversion.commission) == (
        "manual",
        world.other_affiliate,
        Decimal("250.00"),
        Decimal("25.00"),
    )
    # Typed in the program's time zone (Warsaw, UTC+2 then).
    assert conversion.created_at == datetime(2026, 3, 31, 22, 30, tzinfo=UTC)
    assert "Sold at the trade fair" in event.reason
    assert event.actor == world.manager


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"amount": "-5"}, "greater than or equal to 0"),
        ({"amount": "NaN"}, "Enter a number."),
        ({"amount": "12345678901234567890"}, "no more than 14 digits"),
        ({"currency": "XYZ"}, "is not an ISO 4217 currency code"),
        ({"currency": "USD"}, "No USD → EUR rate for"),
        ({"reason": ""}, "This field is required."),
        ({"order_id": ""}, "A sale needs an order id."),
        ({"coupon": ""}, "Choose an affiliate, or give a click id, a coupon or a customer id"),
        ({"affiliate": "AFFILIATE", "coupon": "ONE10"}, "Choose an affiliate or give a click id or coupon, not both."),
        ({"coupon": "", "offer": "OFFER"}, "Choose the affiliate too."),
        ({"click_id": "not-a-uuid"}, "Enter a valid UUID."),
    ],
)
def test_manual_conversion_refuses_bad_input_and_saves_nothing(client, shop, change, message):
    world = shop["world"]
    client.force_login(world.manager)
    data = {
        "kind": "sale",
        "order_id": "OFFLINE-8",
        "amount": "10",
        "currency": "EUR",
        "coupon": "ONE10",
        "status": "pending",
        "reason": "Phone order",
        **change,
    }
    ids = {"AFFILIATE": str(world.affiliate.pk), "OFFER": str(shop["offer"].pk)}
    data = {name: ids.get(value, value) for name, value in data.items()}
    response = client.post(url("conversion_create", world), data)
    assert response.status_code == 400
    assert message in body(response)
    with scopes_disabled():
        assert not Conversion.objects.filter(program=world.program).exists()


def test_manual_conversion_credits_the_affiliate_the_manager_chooses(client, shop, bob):
    world = shop["world"]
    client.force_login(world.manager)
    page = body(client.get(url("conversion_create", world)))
    assert str(world.other_affiliate) in page
    assert str(bob.affiliate) not in page  # another program's affiliates are not offered
    data = {
        "kind": "sale",
        "order_id": "OFFLINE-9",
        "amount": "80.00",
        "currency": "EUR",
        "affiliate": world.other_affiliate.pk,
        "offer": shop["offer"].pk,
        "status": "approved",
        "reason": "Phone order the partner passed on",
    }
    response = client.post(url("conversion_create", world), data, follow=True)
    assert "Conversion recorded." in body(response)
    with scopes_disabled():
        conversion = Conversion.objects.get(program=world.program, order_id="OFFLINE-9")
    assert (conversion.affiliate, conversion.offer, conversion.attributed_by, conversion.status) == (
        world.other_affiliate,
        shop["offer"],
        "manager",
        "approved",
    )
    assert conversion.commission == Decimal("8.00")

    # Another program's affiliate id typed into the form is refused like any unknown choice.
    response = client.post(
        url("conversion_create", world), {**data, "order_id": "OFFLINE-10", "affiliate": bob.affiliate.pk}
    )
    assert response.status_code == 400
    assert "Select a valid choice." in body(response)
    with scopes_disabled():
        assert not Conversion.objects.filter(order_id="OFFLINE-10").exists()


# Postbacks


def test_postback_setup_shows_the_url_the_masked_token_and_examples(client, alice):
    client.force_login(alice.manager)
    page = body(client.get(url("postback_setup", alice)))
    assert "http://testserver/postback/alice" in page
    token = alice.program.postback_token
    # The token is shown only inside the reveal, never in the examples.
    assert page.count(token) == 2  # the revealed value and its copy button
    assert re.search(r'<details class="reveal"><summary><code class="token-mask">' + re.escape(token[:4]), page)
    assert "X-Goalpost-Token: $GOALPOST_TOKEN" in page
    assert re.search(r'name="order_id"[^>]*value="test-[0-9a-f]{8}"', page)


def test_test_postback_records_a_conversion_and_shows_the_answer(client, shop):
    world = shop["world"]
    client.force_login(world.manager)
    response = client.post(
        url("postback_test", world),
        {"kind": "sale", "amount": "49.90", "currency": "EUR", "order_id": "test-abc", "coupon": "ONE10"},
        HTTP_HX_REQUEST="true",
    )
    page = body(response)
    assert response.status_code == 200
    assert page.lstrip().startswith('<div id="tester">')
    assert '<code id="test-status">200</code>' in page
    assert "&quot;status&quot;: &quot;created&quot;" in page
    with scopes_disabled():
        conversion = Conversion.objects.get(program=world.program, order_id="test-abc")
        attempt = PostbackAttempt.objects.get(program=world.program)
    assert (conversion.affiliate, conversion.revenue, attempt.result) == (world.affiliate, Decimal("49.90"), "created")
    assert "token" not in attempt.params
    assert 'value="test-abc"' not in page  # a fresh order id for the next test


def test_test_postback_shows_a_refusal(client, alice):
    with scopes_disabled():
        TrackingSettings.objects.create(program=alice.program, postback_ip_allowlist="203.0.113.0/24")
    client.force_login(alice.manager)
    response = client.post(url("postback_test", alice), {"kind": "sale", "amount": "1", "order_id": "test-1"})
    page = body(response)
    assert '<code id="test-status">403</code>' in page
    assert "ip_not_allowed" in page
    with scopes_disabled():
        assert not Conversion.objects.filter(program=alice.program).exists()
        assert PostbackAttempt.objects.get(program=alice.program).reason == "ip_not_allowed"


def test_test_postback_signs_when_the_program_requires_it(client, shop):
    with scopes_disabled():
        TrackingSettings.objects.filter(program=shop["world"].program).update(postback_require_signature=True)
    client.force_login(shop["world"].manager)
    response = client.post(
        url("postback_test", shop["world"]), {"kind": "sale", "amount": "5", "order_id": "test-sig", "coupon": "ONE10"}
    )
    assert '<code id="test-status">200</code>' in body(response)


def test_postback_log_filters_by_result_and_reason(client, alice, bob):
    with scopes_disabled():
        PostbackAttemptFactory(program=alice.program, reason="missing_rate", params={"order_id": "A-1"})
        PostbackAttemptFactory(program=alice.program, reason="bad_token", params={"order_id": "A-2"})
        PostbackAttemptFactory(
            program=alice.program, result="created", reason="", http_status=200, params={"order_id": "A-3"}
        )
        PostbackAttemptFactory(program=bob.program, params={"order_id": "B-1"})
    client.force_login(alice.analyst)
    log = url("postback_log", alice)
    assert len(rows(client.get(log))) == 3
    refused = rows(client.get(log, {"result": "refused"}))
    assert [("A-1" in row, "A-2" in row) for row in refused] == [(False, True), (True, False)]
    [missing] = rows(client.get(log, {"reason": "missing_rate"}))
    assert "No exchange rate for the currency" in missing
    assert "B-1" not in body(client.get(log))
    assert "Replay" not in body(client.get(log))  # analysts read only


def test_replay_records_a_postback_refused_for_a_missing_rate_once_the_rate_exists(client, shop):
    world = shop["world"]
    status, answer = services.handle_postback(
        program=world.program,
        params={"kind": "sale", "order_id": "USD-1", "amount": "10", "currency": "USD", "coupon": "ONE10"},
        method="POST",
        ip="198.51.100.1",
        headers={"X-Goalpost-Token": world.program.postback_token},
    )
    assert (status, answer["error"]["code"]) == (400, "missing_rate")
    with scopes_disabled():
        refused = PostbackAttempt.objects.get(program=world.program)
        CurrencyRate.objects.create(program=world.program, currency="USD", day=refused.created_at.date(), rate="0.5")
    client.force_login(world.manager)
    response = client.post(url("postback_replay", world, attempt_id=refused.pk), follow=True)
    assert "Replayed: created." in body(response)
    with scopes_disabled():
        conversion = Conversion.objects.get(program=world.program, order_id="USD-1")
        replay = PostbackAttempt.objects.get(replay_of=refused)
    assert (conversion.revenue, replay.conversion) == (Decimal("5.00"), conversion)


def test_replay_is_offered_only_for_replayable_refusals(client, alice):
    with scopes_disabled():
        PostbackAttemptFactory(program=alice.program, reason="missing_rate", params={"order_id": "A-1"})
        PostbackAttemptFactory(program=alice.program, reason="bad_token", params={"order_id": "A-2"})
    client.force_login(alice.manager)
    [wrong_token, missing_rate] = rows(client.get(url("postback_log", alice)))
    assert "Wrong token" in wrong_token
    assert "Replay" not in wrong_token
    assert "Replay" in missing_rate


def test_replay_of_a_wrong_token_is_refused_with_a_message(client, alice):
    with scopes_disabled():
        attempt = PostbackAttemptFactory(program=alice.program, reason="bad_token")
    client.force_login(alice.manager)
    response = client.post(url("postback_replay", alice, attempt_id=attempt.pk), follow=True)
    assert "Only postbacks refused after a valid token can be replayed." in body(response)
    with scopes_disabled():
        assert PostbackAttempt.objects.filter(program=alice.program).count() == 1


# Currency rates, commissions, caps, coupons, settings


def test_currency_rate_is_saved_and_corrected_for_the_same_day(client, alice):
    client.force_login(alice.manager)
    for rate in ("0.91", "0.92"):
        response = client.post(url("rate_create", alice), {"currency": "usd", "day": "2026-03-02", "rate": rate})
        assert response.status_code == 302
    with scopes_disabled():
        assert list(CurrencyRate.objects.filter(program=alice.program).values_list("currency", "rate")) == [
            ("USD", Decimal("0.92000000"))
        ]
    assert rows(client.get(url("rate_list", alice))) == ["2026-03-02 USD 1 USD = 0.92 EUR"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"currency": "EUR", "rate": "1"}, "This is the program currency"),
        ({"currency": "ABC", "rate": "1"}, "is not an ISO 4217 currency code"),
        ({"currency": "USD", "rate": "0"}, "greater than or equal to 1E-8"),
        ({"currency": "USD", "rate": "-1"}, "greater than or equal to 1E-8"),
    ],
)
def test_currency_rate_refuses_bad_input(client, alice, data, message):
    client.force_login(alice.manager)
    response = client.post(url("rate_create", alice), {"day": "2026-03-02", **data})
    assert response.status_code == 400
    assert message in body(response)
    with scopes_disabled():
        assert not CurrencyRate.objects.filter(program=alice.program).exists()


def test_rule_create_needs_a_plan_first(client, alice):
    client.force_login(alice.manager)
    response = client.get(url("rule_create", alice))
    assert response["Location"] == url("plan_create", alice)
    client.post(url("plan_create", alice), {"name": "Partners 2026", "is_default": "on"})
    assert "Partners 2026" in body(client.get(url("rule_create", alice)))


def test_tiered_rule_is_saved_from_readable_lines(client, shop):
    world = shop["world"]
    client.force_login(world.manager)
    with scopes_disabled():
        plan = CommissionRule.objects.get(program=world.program).plan
    response = client.post(
        url("rule_create", world),
        {
            "plan": plan.pk,
            "kind": "lead",
            "rule_type": "tiered",
            "amount": "0",
            "percent": "0",
            "tiers": "0: 2.50\n10: 4.00\n",
            "affiliate": world.affiliate.pk,
        },
    )
    assert response.status_code == 302
    with scopes_disabled():
        rule = CommissionRule.objects.get(program=world.program, kind="lead")
    assert (rule.tiers, rule.affiliate) == (
        [{"min_conversions": 0, "amount": "2.50"}, {"min_conversions": 10, "amount": "4.00"}],
        world.affiliate,
    )
    page = body(client.get(url("commission_list", world)))
    assert "from 0 conversions: €2.50" in page
    assert "from 10 conversions: €4.00" in page
    assert "Affiliate alice partner one" in page


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"rule_type": "flat", "amount": "0"}, "A flat rule needs an amount above zero."),
        ({"rule_type": "flat", "amount": "-1"}, "The amount cannot be negative."),
        ({"rule_type": "revenue_share", "percent": "150"}, "Give a percentage between 0 and 100."),
        ({"rule_type": "tiered", "tiers": "ten: 5%"}, "Line 1: write"),
        ({"rule_type": "tiered", "tiers": "10: 5%\n0: 3%"}, "from the lowest minimum up"),
        ({"rule_type": "tiered", "tiers": ""}, "A tiered rule needs at least one tier."),
    ],
)
def test_rule_create_refuses_bad_input(client, shop, data, message):
    world = shop["world"]
    client.force_login(world.manager)
    with scopes_disabled():
        plan = CommissionRule.objects.get(program=world.program).plan
    response = client.post(
        url("rule_create", world), {"plan": plan.pk, "kind": "lead", "amount": "0", "percent": "0", **data}
    )
    assert response.status_code == 400
    assert message in body(response)
    with scopes_disabled():
        assert CommissionRule.objects.filter(program=world.program).count() == 1


def test_rule_cannot_name_another_programs_offer(client, shop, bob):
    world = shop["world"]
    with scopes_disabled():
        plan = CommissionRule.objects.get(program=world.program).plan
        foreign = OfferFactory(program=bob.program)
    client.force_login(world.manager)
    response = client.post(
        url("rule_create", world),
        {"plan": plan.pk, "kind": "sale", "rule_type": "flat", "amount": "5", "percent": "0", "offer": foreign.pk},
    )
    assert response.status_code == 400
    assert "Select a valid choice." in body(response)


def test_cap_is_saved_and_listed(client, shop):
    world = shop["world"]
    client.force_login(world.manager)
    response = client.post(
        url("cap_create", world), {"offer": shop["offer"].pk, "metric": "payout", "period": "month", "limit": "500"}
    )
    assert response.status_code == 302
    assert rows(client.get(url("cap_list", world))) == ["Spring sale Every affiliate €500.00 payout per month Edit"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"metric": "conversions", "period": "day", "limit": "5"}, "Choose an offer, an affiliate or both"),
        ({"offer": "OFFER", "metric": "conversions", "period": "day", "limit": "2.5"}, "whole number"),
        ({"offer": "OFFER", "metric": "clicks", "period": "day", "limit": "100"}, "needs a fallback URL"),
        ({"offer": "OFFER", "metric": "payout", "period": "day", "limit": "-1"}, "greater than or equal to 0"),
    ],
)
def test_cap_refuses_bad_input(client, shop, data, message):
    world = shop["world"]
    client.force_login(world.manager)
    data = {key: shop["offer"].pk if value == "OFFER" else value for key, value in data.items()}
    response = client.post(url("cap_create", world), data)
    assert response.status_code == 400
    assert message in body(response)
    with scopes_disabled():
        assert not Cap.objects.filter(program=world.program).exists()


@pytest.mark.parametrize(
    ("page", "labels"),
    [
        ("cap_create", {"offer": "Oferta", "affiliate": "Partner"}),
        ("coupon_create", {"affiliate": "Partner", "offer": "Oferta"}),
        ("rule_create", {"plan": "Plan prowizyjny", "offer": "Oferta", "affiliate": "Partner"}),
    ],
)
def test_offer_affiliate_and_plan_choices_are_labelled_in_the_users_language(client, shop, page, labels):
    client.force_login(shop["world"].manager)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "pl"
    html = body(client.get(url(page, shop["world"])))
    shown = dict(re.findall(r'<label for="id_(\w+)">([^<]*)</label>', html))
    assert {name: shown[name] for name in labels} == labels


def test_coupon_codes_are_unique_regardless_of_case(client, shop):
    client.force_login(shop["world"].manager)
    response = client.post(url("coupon_create", shop["world"]), {"code": "one10", "active": "on"})
    assert response.status_code == 400
    assert "This coupon code exists already." in body(response)
    response = client.post(
        url("coupon_create", shop["world"]), {"code": "SUMMER", "affiliate": shop["world"].affiliate.pk}
    )
    assert response.status_code == 302
    with scopes_disabled():
        assert Coupon.objects.get(program=shop["world"].program, code="SUMMER").active is False


def test_tracking_settings_refuse_a_bad_allowlist(client, alice):
    client.force_login(alice.manager)
    data = {
        "attribution_model": "last_click",
        "hold_days": "30",
        "postback_ip_allowlist": "203.0.113.0/24\nnot-an-ip",
        "fraud_min_seconds_to_convert": "10",
        "fraud_click_flood_count": "20",
        "fraud_click_flood_minutes": "10",
        "fraud_conversion_rate_factor": "5",
    }
    response = client.post(url("tracking_settings", alice), data)
    assert response.status_code == 400
    assert "is not an IP address or CIDR range" in body(response)
    response = client.post(url("tracking_settings", alice), {**data, "postback_ip_allowlist": "203.0.113.0/24"})
    assert response.status_code == 302
    with scopes_disabled():
        assert TrackingSettings.objects.get(program=alice.program).postback_ip_allowlist == "203.0.113.0/24"


def test_manager_pages_render_for_every_staff_role(client, shop):
    world = shop["world"]
    record_sale(world, "ORD-1")
    titles = {
        "offer_list": "<h1>Offers</h1>",
        "link_list": "<h1>Tracking links</h1>",
        "coupon_list": "<h1>Coupons</h1>",
        "click_list": "<h1>Clicks</h1>",
        "conversion_list": "<h1>Conversions</h1>",
        "review_queue": "<h1>Review queue</h1>",
        "postback_log": "<h1>Postback log</h1>",
        "rate_list": "<h1>Currency rates</h1>",
        "commission_list": "<h1>Commission plans</h1>",
        "cap_list": "<h1>Caps</h1>",
    }
    for user in (world.owner, world.manager, world.analyst):
        client.force_login(user)
        for name, title in titles.items():
            response = client.get(url(name, world))
            assert response.status_code == 200, (user, name)
            assert title in body(response), name
        nav = body(client.get(url("offer_list", world)))
        assert (url("postback_setup", world) in nav) == (user != world.analyst)
