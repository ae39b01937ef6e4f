"""The postback hot path (tracking/hotpath.py: one read, one write on PostgreSQL) records exactly what the
general ORM path records, in every case a postback can take; and it costs two statements."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_scopes import scopes_disabled

from affiliates.models import AffiliateStatus
from tracking import hotpath
from tracking.currency import local_day
from tracking.hashing import ip_hash
from tracking.models import (
    Cap,
    Click,
    Conversion,
    ConversionEvent,
    Coupon,
    CurrencyRate,
    PostbackAttempt,
    StatsDirtyKey,
)

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the hot path is PostgreSQL's"),
]

# How Django loads a deferred field of an object: by its primary key, the object's table only.
DEFERRED_LOAD = re.compile(
    r'^SELECT "(affiliates_program|tracking_click|tracking_offer|affiliates_affiliate|tracking_commissionrule)"\.'
    r'"\w+"(, "\1"\."\w+")* FROM "\1" WHERE "\1"\."id" = '
)

# What may differ between two recordings of the same postback: identity, order id and the clock.
VOLATILE = {"id", "order_id", "created_at", "status_changed_at", "customer_id"}


def revenue_share(sales):
    sales.rule(rule_type="revenue_share", percent=Decimal("10"))
    return {"click_id": sales.click().click_id, "amount": "49.90"}


def flat_lead_without_order_id(sales):
    sales.rule(kind="lead", rule_type="flat", amount=Decimal("5"))
    return {"click_id": sales.click().click_id, "kind": "lead", "order_id": None}


def approved_on_request(sales):
    sales.rule(rule_type="flat", amount=Decimal("7"))
    return {"click_id": sales.click().click_id, "amount": "20", "status": "approved"}


def most_specific_rule_wins(sales):
    sales.rule(rule_type="revenue_share", percent=Decimal("10"))
    sales.rule(rule_type="revenue_share", percent=Decimal("12"), offer=sales.tracked.offer)
    sales.rule(rule_type="flat", amount=Decimal("9"), affiliate=sales.affiliate)
    sales.rule(kind="lead", rule_type="flat", amount=Decimal("1"), affiliate=sales.affiliate)
    other = sales.offer("Other")
    sales.rule(rule_type="flat", amount=Decimal("99"), offer=other)
    return {"click_id": sales.click().click_id, "amount": "100"}


def tiered(sales):
    tiers = [{"min_conversions": 0, "percent": "5"}, {"min_conversions": 10, "percent": "8"}]
    sales.rule(rule_type="tiered", tiers=tiers)
    return {"click_id": sales.click().click_id, "amount": "100"}


def no_rule(sales):
    return {"click_id": sales.click().click_id, "amount": "10"}


def fast_conversion(sales):
    return {"click_id": sales.click(ago=timedelta(seconds=1)).click_id, "amount": "10"}


def click_flood(sales):
    sales.settings(fraud_click_flood_count=3, fraud_click_flood_minutes=10)
    for minutes in (3, 2):
        sales.click(ago=timedelta(hours=1, minutes=minutes), ip_hash="visitor")
    return {"click_id": sales.click(ip_hash="visitor").click_id, "amount": "10"}


def bot_click(sales):
    return {"click_id": sales.click(is_bot=True).click_id, "amount": "10"}


def self_referral(sales):
    with scopes_disabled():
        sales.affiliate.login_ip_hash = ip_hash(sales.program.pk, "198.51.100.23")
        sales.affiliate.save(update_fields=["login_ip_hash"])
    return {"click_id": sales.click().click_id, "amount": "10", "ip": "198.51.100.23"}


def outside_window(sales):
    return {"click_id": sales.click(ago=timedelta(days=45)).click_id, "amount": "10"}


def suspended_affiliate(sales):
    click = sales.click()
    with scopes_disabled():
        sales.affiliate.status = AffiliateStatus.SUSPENDED
        sales.affiliate.save(update_fields=["status"])
    return {"click_id": click.click_id, "amount": "10"}


def other_currency(sales):
    sales.rule(rule_type="revenue_share", percent=Decimal("10"))
    with scopes_disabled():
        day = local_day(sales.program, timezone.now())
        CurrencyRate.objects.create(program=sales.program, currency="USD", day=day, rate=Decimal("0.9"))
    return {"click_id": sales.click().click_id, "amount": "10", "currency": "USD"}


def coupon_without_click(sales):
    sales.rule(rule_type="flat", amount=Decimal("3"))
    with scopes_disabled():
        Coupon.objects.create(program=sales.program, code="FAIR", affiliate=sales.affiliate)
    return {"coupon": "fair", "amount": "10"}


def unattributed(sales):
    return {"amount": "10"}


def capped(sales):
    with scopes_disabled():
        Cap.objects.create(
            program=sales.program, affiliate=sales.affiliate, metric="conversions", period="day", limit=1
        )
    return {"click_id": sales.click().click_id, "amount": "10"}


def with_customer(sales):
    sales.rule(rule_type="revenue_share", percent=Decimal("10"))
    return {"click_id": sales.click().click_id, "amount": "10", "customer_id": "cust-1"}


SCENARIOS = [
    revenue_share,
    flat_lead_without_order_id,
    approved_on_request,
    most_specific_rule_wins,
    tiered,
    no_rule,
    fast_conversion,
    click_flood,
    bot_click,
    self_referral,
    outside_window,
    suspended_affiliate,
    other_currency,
    coupon_without_click,
    unattributed,
    capped,
    with_customer,
]


# The hot path reads these, and leaves the write to the general path (caps to lock, a customer to link).
GENERAL_WRITE = {capped, with_customer}


def post(client, sales, params: dict, order_id: str):
    query = {"token": sales.program.postback_token, "order_id": order_id, **params}
    query = {name: str(value) for name, value in query.items() if value is not None}
    response = client.get(f"/postback/{sales.program.slug}", query)
    assert response.status_code == 200, response.content
    return response.json()


def recorded(program, conversion_id: int) -> dict:
    """Everything stored for one conversion, minus what differs between two recordings of it."""
    with scopes_disabled():
        conversion = Conversion.objects.filter(pk=conversion_id).values().get()
        events = list(
            ConversionEvent.objects.filter(conversion_id=conversion_id).values_list(
                "from_status", "to_status", "reason"
            )
        )
        attempts = list(
            PostbackAttempt.objects.filter(conversion_id=conversion_id).values_list("result", "reason", "http_status")
        )
        dirty = set(StatsDirtyKey.objects.filter(program=program).values_list("affiliate_id", "day"))
    return {
        "conversion": {name: value for name, value in conversion.items() if name not in VOLATILE},
        "events": events,
        "attempts": attempts,
        "dirty": dirty,
    }


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.__name__)
def test_hot_path_records_what_the_general_path_records(client, sales, scenario):
    params = scenario(sales)
    results = {}
    for name, hot in (("general", False), ("hot", True)):
        with scopes_disabled():
            StatsDirtyKey.objects.filter(program=sales.program).delete()
        customer = {"customer_id": f"{params['customer_id']}-{name}"} if "customer_id" in params else {}
        with override_settings(TRACKING_SQL_HOT_PATH=hot), CaptureQueriesContext(connection) as queries:
            body = post(client, sales, {**params, **customer}, order_id=f"{name}-1")
        one_statement = any(hotpath.WRITE_STATEMENT in query["sql"] for query in queries.captured_queries)
        assert one_statement == (hot and scenario not in GENERAL_WRITE)
        # The read leaves some fields deferred (hotpath.LOADED): none may be used.
        assert not [query["sql"] for query in queries.captured_queries if DEFERRED_LOAD.search(query["sql"])]
        assert body["status"] == "created", body
        results[name] = (body["conversion_status"], body["reason"], recorded(sales.program, body["conversion_id"]))
        with scopes_disabled():  # out of the month's counts (caps, tiers): the second recording sees the same
            Conversion.objects.filter(pk=body["conversion_id"]).update(status="rejected")
    assert results["hot"] == results["general"]
    assert results["hot"][2]["events"]
    assert results["hot"][2]["attempts"]


def test_resent_order_is_one_conversion_on_the_hot_path(client, sales):
    params = revenue_share(sales)
    first = post(client, sales, params, "A-1")
    again = post(client, sales, params, "A-1")
    assert (first["status"], again["status"], again["conversion_id"]) == (
        "created",
        "duplicate",
        first["conversion_id"],
    )
    with scopes_disabled():
        assert Conversion.objects.filter(program=sales.program).count() == 1
        assert ConversionEvent.objects.filter(program=sales.program).count() == 1
        results = list(PostbackAttempt.objects.filter(program=sales.program).order_by("pk").values_list("result"))
    assert results == [("created",), ("duplicate",)]


def test_hot_path_never_reads_another_programs_click_or_rules(client, sales, bob_sales):
    bob_sales.rule(rule_type="flat", amount=Decimal("500"))
    foreign = bob_sales.click()
    body = client.get(
        f"/postback/{sales.program.slug}",
        {"token": sales.program.postback_token, "order_id": "A-1", "click_id": str(foreign.click_id), "amount": "9"},
    ).json()
    assert body["error"]["code"] == "unknown_click_id"
    sales.rule(rule_type="flat", amount=Decimal("4"))
    body = post(client, sales, {"click_id": sales.click().click_id, "amount": "9"}, "A-2")
    with scopes_disabled():
        assert Conversion.objects.get(pk=body["conversion_id"]).commission == Decimal("4.00")
        assert not Conversion.objects.filter(program=bob_sales.program).exists()


def test_new_conversion_costs_two_statements(client, sales, django_assert_num_queries):
    params = revenue_share(sales)
    post(client, sales, params, "warm")  # caches the month volumes of the rate signal
    with django_assert_num_queries(2) as captured:
        post(client, sales, params, "A-1")
    first, second = (query["sql"] for query in captured.captured_queries)
    assert first.startswith("EXECUTE goalpost_postback_read")  # prepared once per connection (the warm-up)
    assert second.startswith(f"EXECUTE {hotpath.WRITE_STATEMENT}")
    with scopes_disabled():
        assert Click.objects.filter(program=sales.program).count() == 1


def test_the_write_uses_the_reads_cursor_and_a_new_one_if_that_closed(sales):
    from tracking.postback import load_program
    from tracking.services import handle_postback

    params = {**revenue_share(sales), "token": sales.program.postback_token}
    for number, close_first in enumerate((False, True)):
        query = {**params, "click_id": str(params["click_id"]), "order_id": f"A-{number}"}
        with connection.cursor() as cursor:
            program, context = load_program(sales.program.slug, query, cursor=cursor)
            assert context.cursor is cursor
            if close_first:
                cursor.close()
            status, body = handle_postback(
                program=program, params=query, method="GET", ip="198.51.100.9", headers={}, context=context
            )
        assert (status, body["status"]) == (200, "created")
    with scopes_disabled():
        assert Conversion.objects.filter(program=sales.program).count() == 2
