"""Postbacks racing each other on PostgreSQL: one conversion per order, and caps that never overshoot.

Real threads, each with its own database connection, go through the whole view at once (a barrier releases
them together); the rows they leave behind are the proof.
"""

import threading
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from django_scopes import scopes_disabled

from affiliates.models import AffiliateStatus
from tests.factories import AffiliateFactory, ProgramFactory
from tracking.links import create_link, create_offer
from tracking.models import Cap, Click, CommissionPlan, CommissionRule, Conversion, ConversionEvent, PostbackAttempt

THREADS = 50


@pytest.fixture
def shop(transactional_db):
    """A program with a flat 7.00 commission per sale and a click one hour old."""
    with scopes_disabled():
        program = ProgramFactory(slug="racing", name="Racing Shop")
        affiliate = AffiliateFactory(program=program, status=AffiliateStatus.APPROVED)
        offer = create_offer(program=program, name="Racing shoes", destination_url="https://racing.example/shoes")
        link = create_link(program=program, offer=offer, affiliate=affiliate)
        click = Click.objects.create(
            program=program,
            link=link,
            affiliate=affiliate,
            offer=offer,
            created_at=timezone.now() - timedelta(hours=1),
        )
        plan = CommissionPlan.objects.create(program=program, name="Standard", is_default=True)
        CommissionRule.objects.create(program=program, plan=plan, kind="sale", rule_type="flat", amount=Decimal("7"))
    return program, offer, affiliate, click


def race(requests: list[dict], program) -> list[tuple[int, dict]]:
    """Send each request's parameters as a postback from its own thread, all released at the same moment."""
    barrier = threading.Barrier(len(requests))
    answers: list[tuple[int, dict] | None] = [None] * len(requests)
    errors: list[BaseException] = []

    def send(index: int, params: dict) -> None:
        try:
            client = Client()
            barrier.wait(timeout=30)
            response = client.get(f"/postback/{program.slug}", {"token": program.postback_token, **params})
            answers[index] = (response.status_code, response.json())
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(index, params)) for index, params in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    return answers


def test_fifty_identical_postbacks_make_one_conversion_and_one_commission(shop):
    program, _offer, _affiliate, click = shop
    params = {"click_id": str(click.click_id), "order_id": "RACE-1", "amount": "99.00"}
    answers = race([params] * THREADS, program)
    assert Counter(status for status, _body in answers) == {200: THREADS}
    assert Counter(body["status"] for _status, body in answers) == {"created": 1, "duplicate": THREADS - 1}
    assert len({body["conversion_id"] for _status, body in answers}) == 1
    with scopes_disabled():
        conversion = Conversion.objects.get(program=program)
        assert (conversion.order_id, conversion.commission, conversion.status) == ("RACE-1", Decimal("7.00"), "pending")
        assert ConversionEvent.objects.filter(program=program).count() == 1
        assert Counter(PostbackAttempt.objects.filter(program=program).values_list("result", flat=True)) == {
            "created": 1,
            "duplicate": THREADS - 1,
        }
        assert set(PostbackAttempt.objects.values_list("conversion_id", flat=True)) == {conversion.pk}


@pytest.mark.parametrize(
    ("cap", "accepted"),
    [
        ({"metric": "conversions", "period": "day", "limit": Decimal("5")}, 5),
        ({"metric": "payout", "period": "month", "limit": Decimal("45")}, 6),  # 6 × 7.00 = 42 ≤ 45 < 49
    ],
)
def test_concurrent_postbacks_never_overshoot_a_cap(shop, cap, accepted):
    program, offer, affiliate, click = shop
    with scopes_disabled():
        Cap.objects.create(program=program, offer=offer, **cap)
        # A second cap on the same conversions: two locks per postback, taken in one order, never deadlock.
        Cap.objects.create(program=program, affiliate=affiliate, metric="conversions", period="month", limit=1000)
    requests = [{"click_id": str(click.click_id), "order_id": f"CAP-{n}", "amount": "10"} for n in range(30)]
    answers = race(requests, program)
    assert Counter(body["status"] for _status, body in answers) == {"created": 30}
    with scopes_disabled():
        outcome = Counter(Conversion.objects.filter(program=program).values_list("status", "status_reason"))
    assert outcome == {("pending", ""): accepted, ("rejected", "cap_reached"): 30 - accepted}
