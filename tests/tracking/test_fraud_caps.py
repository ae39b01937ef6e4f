"""Fraud signals send conversions to review (never drop them); caps reject what is over them, per local period."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from tests.factories import PASSWORD, AffiliateFactory
from tracking import fraud, services
from tracking.hashing import ip_hash
from tracking.models import Cap, Click, Conversion, ConversionEvent, Coupon

pytestmark = pytest.mark.django_db

MID_MONTH = datetime(2026, 3, 12, 10, 0, tzinfo=UTC)


def record(sales, order_id, *, click=None, **fields):
    fields.setdefault("amount", "100")
    fields.setdefault("kind", "sale")
    if click is not None:
        fields["click_id"] = click.click_id
    return services.record_conversion(program=sales.program, source="postback", order_id=order_id, **fields)[0]


def review(conversion) -> tuple:
    return conversion.status, conversion.in_review, conversion.fraud_flags, conversion.status_reason


def test_clean_conversion_has_no_flags(sales):
    conversion = record(sales, "A-1", click=sales.click(ip_hash="visitor"))
    assert review(conversion) == ("pending", False, [], "")


def test_fast_conversion_is_flagged(sales):
    sales.settings(fraud_min_seconds_to_convert=30)
    conversion = record(sales, "A-1", click=sales.click(ago=timedelta(seconds=29)))
    assert review(conversion) == ("pending", True, ["fast_conversion"], "fraud_review")
    assert record(sales, "A-2", click=sales.click(ago=timedelta(seconds=31))).fraud_flags == []


def test_click_flood_is_flagged(sales):
    sales.settings(fraud_click_flood_count=5, fraud_click_flood_minutes=10)
    for minutes in (9, 8, 7, 6):
        sales.click(ago=timedelta(minutes=minutes), ip_hash="flooder")
    sales.click(ago=timedelta(minutes=16), ip_hash="flooder")  # more than 10 minutes before the fifth
    sales.click(ago=timedelta(minutes=5), ip_hash="someone-else")
    other_link = sales.link(affiliate=sales.affiliate)
    sales.click(ago=timedelta(minutes=5), ip_hash="flooder", link=other_link)  # another link
    fifth = sales.click(ago=timedelta(minutes=5), ip_hash="flooder")
    assert review(record(sales, "A-1", click=fifth)) == ("pending", True, ["click_flood"], "fraud_review")
    sales.settings(fraud_click_flood_count=6)
    assert record(sales, "A-2", click=fifth).fraud_flags == []


def test_bot_click_is_flagged(sales):
    conversion = record(sales, "A-1", click=sales.click(is_bot=True))
    assert review(conversion) == ("pending", True, ["bot_click"], "fraud_review")


def test_self_referral_compares_the_login_ip_hash(client, sales):
    response = client.post(
        reverse("login"), {"username": sales.affiliate.email, "password": PASSWORD}, REMOTE_ADDR="198.51.100.23"
    )
    assert response.status_code == 302
    with scopes_disabled():
        sales.affiliate.refresh_from_db()
    assert sales.affiliate.login_ip_hash == ip_hash(sales.program.pk, "198.51.100.23")
    own_ip = record(sales, "A-1", click=sales.click(), ip_hash=ip_hash(sales.program.pk, "198.51.100.23"))
    own_click = record(sales, "A-2", click=sales.click(ip_hash=ip_hash(sales.program.pk, "198.51.100.23")))
    stranger = record(sales, "A-3", click=sales.click(ip_hash="x"), ip_hash=ip_hash(sales.program.pk, "192.0.2.1"))
    assert [own_ip.fraud_flags, own_click.fraud_flags, stranger.fraud_flags] == [
        ["self_referral"],
        ["self_referral"],
        [],
    ]


def test_login_ip_hash_is_per_program(client, sales, bob_sales):
    """One person, affiliate of two programs: each profile gets its own program's salted hash."""
    with scopes_disabled():
        AffiliateFactory(program=bob_sales.program, user=sales.world.affiliate_user, email="x@bob.test")
    client.post(
        reverse("login"), {"username": sales.affiliate.email, "password": PASSWORD}, REMOTE_ADDR="198.51.100.23"
    )
    with scopes_disabled():
        hashes = dict(sales.world.affiliate_user.affiliate_profiles.values_list("program_id", "login_ip_hash"))
    assert hashes == {
        sales.program.pk: ip_hash(sales.program.pk, "198.51.100.23"),
        bob_sales.program.pk: ip_hash(bob_sales.program.pk, "198.51.100.23"),
    }


def bulk_clicks(sales, count: int, *, link, when: datetime) -> None:
    with scopes_disabled():
        Click.objects.bulk_create(
            Click(program=sales.program, link=link, affiliate=link.affiliate, offer=link.offer, created_at=when)
            for _ in range(count)
        )


@time_machine.travel(MID_MONTH, tick=False)
def test_conversion_rate_far_above_the_programs_is_flagged(sales, monkeypatch):
    monkeypatch.setattr(fraud, "VOLUME_CACHE_SECONDS", 0)  # exact counts for the test; production caches them
    sales.settings(fraud_conversion_rate_factor=Decimal("3"))
    other_link = sales.link()
    earlier = MID_MONTH - timedelta(days=2)
    bulk_clicks(sales, 99, link=sales.tracked.link, when=earlier)
    bulk_clicks(sales, 900, link=other_link, when=earlier)
    bulk_clicks(sales, 500, link=other_link, when=MID_MONTH - timedelta(days=20))  # last month: not counted
    others = sales.click(link=other_link, ago=timedelta(days=1))
    for number in range(9):
        assert record(sales, f"O-{number}", click=others).fraud_flags == []  # 9 of 901 clicks: 1 %
    click = sales.click(ago=timedelta(days=1))  # the affiliate's 100th click this month
    # n conversions on 100 clicks against the program's (9 + n) on 1,001: over 3 times from the 4th on.
    flags = [record(sales, f"A-{number}", click=click).fraud_flags for number in range(4)]
    assert flags == [[], [], [], ["conversion_rate_outlier"]]
    with scopes_disabled():
        assert Conversion.objects.get(order_id="A-3").in_review is True


def test_month_volumes_are_cached_for_a_while(sales):
    month = (MID_MONTH - timedelta(days=11), MID_MONTH + timedelta(days=19))
    with time_machine.travel(MID_MONTH, tick=False), scope(program=sales.program):
        bulk_clicks(sales, 3, link=sales.tracked.link, when=MID_MONTH - timedelta(days=1))
        first = fraud.month_volume(program=sales.program, month=month, affiliate_id=sales.affiliate.pk)
        bulk_clicks(sales, 3, link=sales.tracked.link, when=MID_MONTH - timedelta(days=1))
        assert fraud.month_volume(program=sales.program, month=month, affiliate_id=sales.affiliate.pk) == first
    assert first == fraud.Volume(clicks=3, conversions=0)


def test_month_volumes_are_counted_again_once_expired_and_kept_bounded(sales, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(fraud.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(fraud, "VOLUMES_KEPT", 3)
    month = (MID_MONTH - timedelta(days=11), MID_MONTH + timedelta(days=19))
    with time_machine.travel(MID_MONTH, tick=False), scope(program=sales.program):
        bulk_clicks(sales, 3, link=sales.tracked.link, when=MID_MONTH - timedelta(days=1))
        assert fraud.month_volume(program=sales.program, month=month, affiliate_id=sales.affiliate.pk).clicks == 3
        bulk_clicks(sales, 2, link=sales.tracked.link, when=MID_MONTH - timedelta(days=1))
        clock[0] += fraud.VOLUME_CACHE_SECONDS - 1
        assert fraud.month_volume(program=sales.program, month=month, affiliate_id=sales.affiliate.pk).clicks == 3
        clock[0] += 1
        assert fraud.month_volume(program=sales.program, month=month, affiliate_id=sales.affiliate.pk).clicks == 5
        for days in range(1, 6):  # other months: the memory stays within VOLUMES_KEPT
            later = (month[0] + timedelta(days=31 * days), month[1] + timedelta(days=31 * days))
            fraud.month_volume(program=sales.program, month=later, affiliate_id=sales.affiliate.pk)
            assert len(fraud._volumes) <= 3


@time_machine.travel(MID_MONTH, tick=False)
def test_conversion_rate_below_the_minimum_volume_is_not_judged(sales):
    bulk_clicks(sales, 10, link=sales.tracked.link, when=MID_MONTH - timedelta(days=1))
    for number in range(5):
        conversion = record(sales, f"E-{number}", click=sales.click(ago=timedelta(days=1)))
    assert conversion.fraud_flags == []


def test_flagged_conversion_stays_pending_even_when_the_advertiser_approves(sales):
    conversion = record(sales, "A-1", click=sales.click(is_bot=True), status="approved")
    assert review(conversion) == ("pending", True, ["bot_click"], "fraud_review")
    with scopes_disabled():
        assert (
            ConversionEvent.objects.get(conversion=conversion).reason
            == "Received by postback. Sent to review: bot_click."
        )


def test_review_queue_is_decided_by_a_manager_and_skipped_by_auto_approve(sales):
    sales.settings(hold_days=0)
    flagged = record(sales, "A-1", click=sales.click(is_bot=True))
    clean = record(sales, "A-2", click=sales.click())
    with time_machine.travel(timezone.now() + timedelta(minutes=1)):
        assert services.auto_approve_due_conversions(program=sales.program) == 1
    moved = services.bulk_change_conversion_status(
        program=sales.program, conversion_ids=[flagged.pk], to_status="approved", reason="", actor=sales.world.manager
    )
    assert moved == 1
    with scopes_disabled():
        rows = {c.order_id: (c.status, c.in_review, c.fraud_flags) for c in Conversion.objects.all()}
    assert rows == {"A-1": ("approved", False, ["bot_click"]), "A-2": ("approved", False, [])}
    assert clean.pk != flagged.pk


def test_cancellations_are_neither_flagged_nor_capped(sales):
    with scopes_disabled():
        Cap.objects.create(program=sales.program, metric="conversions", period="day", limit=0)
    conversion = record(sales, "C-1", kind="cancellation", click=sales.click(is_bot=True))
    assert review(conversion) == ("pending", False, [], "")


# --- Caps -----------------------------------------------------------------------------------------------------


def cap(sales, **fields):
    with scopes_disabled():
        return Cap.objects.create(program=sales.program, **fields)


def statuses(sales) -> dict:
    with scopes_disabled():
        return dict(Conversion.objects.filter(program=sales.program).values_list("order_id", "status_reason"))


def test_daily_offer_cap_rejects_the_conversion_over_it_until_the_next_local_day(sales):
    daily = cap(sales, offer=sales.tracked.offer, metric="conversions", period="day", limit=2)
    # 22:30 UTC on 12 March is 23:30 in Warsaw; 23:30 UTC is already 13 March there.
    with time_machine.travel(datetime(2026, 3, 12, 22, 30, tzinfo=UTC), tick=False):
        for number in range(3):
            record(sales, f"D-{number}", click=sales.click(ago=timedelta(minutes=5)))
    with time_machine.travel(datetime(2026, 3, 12, 23, 30, tzinfo=UTC), tick=False):
        record(sales, "NEXT-DAY", click=sales.click(ago=timedelta(minutes=5)))
    assert statuses(sales) == {"D-0": "", "D-1": "", "D-2": "cap_reached", "NEXT-DAY": ""}
    with scopes_disabled():
        over = Conversion.objects.get(order_id="D-2")
        event = ConversionEvent.objects.get(conversion=over)
    assert (over.status, over.in_review) == ("rejected", False)
    assert event.reason == (
        f"Received by postback. Rejected: cap reached (conversions ≤ 2 per day for offer #{daily.offer_id})."
    )


def test_monthly_payout_cap_per_affiliate(sales):
    sales.rule(rule_type="flat", amount=Decimal("10"))
    cap(sales, affiliate=sales.affiliate, metric="payout", period="month", limit=Decimal("25"))
    with time_machine.travel(MID_MONTH, tick=False):
        for number in range(3):
            record(sales, f"P-{number}", click=sales.click(ago=timedelta(minutes=5)))
    assert statuses(sales) == {"P-0": "", "P-1": "", "P-2": "cap_reached"}
    with scopes_disabled():
        assert Conversion.objects.get(order_id="P-2").commission == Decimal("10.00")  # what it would have paid


def test_reversed_and_rejected_conversions_free_their_place_under_a_cap(sales):
    cap(sales, metric="conversions", period="month", limit=1)  # program-wide
    first = record(sales, "A-1", click=sales.click())
    services.change_conversion_status(program=sales.program, conversion=first, to_status="reversed")
    second = record(sales, "A-2", click=sales.click())
    assert (first.status_reason, second.status) == ("", "pending")
    assert record(sales, "A-3", click=sales.click()).status_reason == "cap_reached"


def test_caps_of_other_affiliates_offers_and_programs_do_not_apply(sales, bob_sales):
    other_offer = sales.offer("Other offer")
    cap(sales, affiliate=sales.world.other_affiliate, metric="conversions", period="day", limit=0)
    cap(sales, offer=other_offer, metric="conversions", period="day", limit=0)
    cap(sales, metric="clicks", period="day", limit=0)
    cap(bob_sales, metric="conversions", period="day", limit=0)
    assert record(sales, "A-1", click=sales.click()).status == "pending"


def test_offer_cap_does_not_cover_a_coupon_conversion_without_offer(sales):
    cap(sales, offer=sales.tracked.offer, metric="conversions", period="day", limit=0)
    with scopes_disabled():
        Coupon.objects.create(program=sales.program, code="NOOFFER", affiliate=sales.affiliate)
    assert record(sales, "A-1", coupon="NOOFFER").status == "pending"
    assert record(sales, "A-2", click=sales.click()).status_reason == "cap_reached"


def test_a_cap_of_zero_rejects_every_conversion_it_covers(sales):
    cap(sales, affiliate=sales.affiliate, offer=sales.tracked.offer, metric="conversions", period="day", limit=0)
    assert review(record(sales, "A-1", click=sales.click())) == ("rejected", False, [], "cap_reached")


@time_machine.travel(MID_MONTH, tick=False)
def test_first_conversions_of_a_month_are_not_rate_outliers(sales, monkeypatch):
    monkeypatch.setattr(fraud, "VOLUME_CACHE_SECONDS", 0)
    other_link = sales.link()
    bulk_clicks(sales, 99, link=sales.tracked.link, when=MID_MONTH - timedelta(days=2))
    bulk_clicks(sales, 5000, link=other_link, when=MID_MONTH - timedelta(days=2))
    click = sales.click(ago=timedelta(days=1))
    # 3 sales on 100 clicks while the program has no other sale: 150 × its rate, yet no evidence of fraud.
    flags = [record(sales, f"F-{number}", click=click).fraud_flags for number in range(3)]
    assert flags == [[], [], []]
