"""DailyStats recomputed from raw events: every counter, program-local days, statuses, idempotency, rebuild."""

from datetime import date
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command
from django_scopes import scopes_disabled

from goals import rollups
from goals.kpis import View
from goals.models import DailyStats, JobRun
from goals.periods import Period
from goals.rollups import (
    COUNTERS,
    fresh_stats,
    recompute_days,
    recompute_range,
    reconcile_stats,
    stored_stats,
)
from goals.selectors import kpi_values
from tracking.models import ConversionKind, ConversionStatus

SALE, LEAD, ENGAGEMENT, CANCELLATION = (
    ConversionKind.SALE,
    ConversionKind.LEAD,
    ConversionKind.ENGAGEMENT,
    ConversionKind.CANCELLATION,
)
PENDING, APPROVED, REJECTED, REVERSED = (
    ConversionStatus.PENDING,
    ConversionStatus.APPROVED,
    ConversionStatus.REJECTED,
    ConversionStatus.REVERSED,
)
APRIL_2 = date(2026, 4, 2)


def rows(program) -> dict[tuple[int, date], dict]:
    """Every stored DailyStats row of ``program`` with its non-zero counters."""
    with scopes_disabled():
        stored = DailyStats.objects.filter(program=program).order_by("affiliate_id", "day").values()
    return {(row["affiliate_id"], row["day"]): {name: row[name] for name in COUNTERS if row[name]} for row in stored}


def row(program, affiliate, day: date) -> dict:
    return rows(program).get((affiliate.pk, day), {})


def test_counters_cover_every_dailystats_counter():
    keys = {"id", "program", "affiliate", "day", "updated_at"}
    fields = {field.name for field in DailyStats._meta.concrete_fields} - keys
    assert set(COUNTERS) == fields


def test_clicks_count_on_the_program_local_day(events):
    events.click("2026-03-31 21:59")  # 23:59 in Warsaw (UTC+2): still 31 March
    events.click("2026-03-31 22:30")  # 00:30 on 1 April in Warsaw (KPI.md example 9)
    events.click("2026-03-31 23:00", unique=False)
    events.click("2026-04-01 10:00", bot=True, count=2)
    events.click("2026-04-01 10:00", affiliate=events.other)

    keys = [(events.affiliate.pk, date(2026, 3, 31)), (events.affiliate.pk, date(2026, 4, 1))]
    recompute_days(program=events.program, keys=keys)

    assert rows(events.program) == {
        (events.affiliate.pk, date(2026, 3, 31)): {"clicks": 1, "unique_clicks": 1},
        (events.affiliate.pk, date(2026, 4, 1)): {"clicks": 2, "unique_clicks": 1, "bot_clicks": 2},
    }


def test_program_in_utc_counts_the_same_click_in_march(events):
    events.program.timezone = "UTC"
    events.program.save()
    events.click("2026-03-31 22:30")

    recompute_range(program=events.program, first=date(2026, 3, 1), end=date(2026, 5, 1))

    assert rows(events.program) == {(events.affiliate.pk, date(2026, 3, 31)): {"clicks": 1, "unique_clicks": 1}}


@pytest.mark.parametrize("path", ["keys", "range"])
def test_daylight_saving_days_last_23_and_25_hours(events, path):
    # 29 March 2026: Warsaw moves from UTC+1 to UTC+2, the local day is [28 Mar 23:00, 29 Mar 22:00) UTC.
    events.click("2026-03-28 22:59")  # 23:59 on the 28th
    events.click("2026-03-28 23:00")  # 00:00 on the 29th
    events.click("2026-03-29 21:59")  # 23:59 on the 29th (CEST)
    events.click("2026-03-29 22:00")  # 00:00 on the 30th
    # 25 October 2026: back to UTC+1, the local day is [24 Oct 22:00, 25 Oct 23:00) UTC.
    events.click("2026-10-24 21:59")  # 23:59 on the 24th
    events.click("2026-10-24 22:00")  # 00:00 on the 25th
    events.click("2026-10-25 22:59")  # 23:59 on the 25th (CET)
    events.click("2026-10-25 23:00")  # 00:00 on the 26th
    days = [date(2026, 3, 28), date(2026, 3, 29), date(2026, 3, 30), date(2026, 10, 24), date(2026, 10, 25)]
    days.append(date(2026, 10, 26))

    if path == "keys":
        recompute_days(program=events.program, keys=[(events.affiliate.pk, day) for day in days])
    else:
        recompute_range(program=events.program, first=date(2026, 3, 1), end=date(2026, 11, 1))

    clicks = {day: counters["clicks"] for (_affiliate, day), counters in rows(events.program).items()}
    assert clicks == dict.fromkeys(days, 1) | {date(2026, 3, 29): 2, date(2026, 10, 25): 2}


def test_impressions_exclude_bots(events):
    events.impression("2026-04-02 08:00")
    events.impression("2026-04-02 09:00")
    events.impression("2026-04-02 09:30", bot=True)

    recompute_days(program=events.program, keys=[(events.affiliate.pk, APRIL_2)])

    assert row(events.program, events.affiliate, APRIL_2) == {"impressions": 2}


def test_conversions_by_kind_and_status(events):
    at = "2026-04-02 10:00"
    events.conversion(at, kind=SALE, status=PENDING, revenue="100.10", commission="10.01", customer="c1")
    events.conversion(at, kind=SALE, status=APPROVED, revenue="50.25", commission="5.50")
    events.conversion(at, kind=LEAD, status=PENDING, commission="2.00")
    events.conversion(at, kind=ENGAGEMENT, status=APPROVED, commission="0.30")
    events.conversion(at, kind=CANCELLATION, status=APPROVED, customer="c9")
    events.conversion(at, kind=SALE, status=REJECTED, revenue="999.00", commission="99.00")
    events.conversion(at, kind=SALE, status=APPROVED, revenue="70.00", affiliate=None)  # unattributed

    recompute_days(program=events.program, keys=[(events.affiliate.pk, APRIL_2)])

    assert row(events.program, events.affiliate, APRIL_2) == {
        "conversions_pending": 2,
        "conversions_approved": 2,
        "sales_pending": 1,
        "sales_approved": 1,
        "leads_pending": 1,
        "engagements_approved": 1,
        "revenue_pending": Decimal("100.10"),
        "revenue_approved": Decimal("50.25"),
        "commission_pending": Decimal("12.01"),
        "commission_approved": Decimal("5.80"),
        "customer_revenue_pending": Decimal("100.10"),
        "new_customers_pending": 1,
        "cancellations": 1,
    }


def view_total(program, name: str, view: View) -> int | Decimal:
    """A counter over all of ``program``'s rows in a view: pending + approved (provisional) or approved only."""
    statuses = ("pending", "approved") if view == View.PROVISIONAL else ("approved",)
    return sum(counters.get(f"{name}_{status}", 0) for counters in rows(program).values() for status in statuses)


def test_provisional_and_confirmed_views_read_the_two_columns(events):
    events.click("2026-04-02 08:00", count=4)
    events.conversion("2026-04-02 10:00", status=PENDING, revenue="30.00")
    events.conversion("2026-04-03 10:00", status=APPROVED, revenue="20.00")
    recompute_range(program=events.program, first=date(2026, 4, 1), end=date(2026, 5, 1))

    program = events.program
    assert (
        view_total(program, "conversions", View.PROVISIONAL),
        view_total(program, "conversions", View.CONFIRMED),
    ) == (
        2,
        1,
    )
    assert view_total(program, "revenue", View.PROVISIONAL) == Decimal("50.00")
    assert view_total(program, "revenue", View.CONFIRMED) == Decimal("20.00")


def test_approval_moves_the_counters_from_pending_to_approved(events):
    sale = events.conversion("2026-04-02 10:00", status=PENDING, revenue="80.00", commission="8.00", customer="c1")
    key = [(events.affiliate.pk, APRIL_2)]
    recompute_days(program=events.program, keys=key)
    before = row(events.program, events.affiliate, APRIL_2)

    events.change_status(sale, APPROVED, "2026-05-05 09:00")
    recompute_days(program=events.program, keys=key)

    assert before == {
        "conversions_pending": 1,
        "sales_pending": 1,
        "revenue_pending": Decimal("80.00"),
        "commission_pending": Decimal("8.00"),
        "customer_revenue_pending": Decimal("80.00"),
        "new_customers_pending": 1,
    }
    assert row(events.program, events.affiliate, APRIL_2) == {
        "conversions_approved": 1,
        "sales_approved": 1,
        "revenue_approved": Decimal("80.00"),
        "commission_approved": Decimal("8.00"),
        "customer_revenue_approved": Decimal("80.00"),
        "new_customers_approved": 1,
    }


def test_reversal_counts_on_the_day_of_the_reversal_and_leaves_the_sale_day(events):
    sale = events.conversion("2026-04-02 10:00", status=APPROVED, revenue="80.00", commission="8.00")
    recompute_range(program=events.program, first=date(2026, 4, 1), end=date(2026, 5, 1))

    events.change_status(sale, REVERSED, "2026-04-10 21:30")  # 23:30 local on the 10th
    recompute_days(
        program=events.program, keys=[(events.affiliate.pk, APRIL_2), (events.affiliate.pk, date(2026, 4, 10))]
    )

    assert rows(events.program) == {
        (events.affiliate.pk, APRIL_2): {},  # kept, all zero
        (events.affiliate.pk, date(2026, 4, 10)): {"reversals": 1},
    }


def test_new_customer_counts_once_on_the_first_counted_conversion(events):
    first = events.conversion("2026-04-02 10:00", status=PENDING, customer="c1")
    events.conversion("2026-04-05 10:00", status=APPROVED, customer="c1")
    events.conversion("2026-04-05 11:00", status=APPROVED, customer="c2", affiliate=None)  # c2 arrived unattributed
    events.conversion("2026-04-06 11:00", status=APPROVED, customer="c2")
    april = (date(2026, 4, 1), date(2026, 5, 1))

    recompute_range(program=events.program, first=april[0], end=april[1])
    acquired = {day: counters for (_affiliate, day), counters in rows(events.program).items()}
    assert acquired[APRIL_2]["new_customers_pending"] == 1
    assert "new_customers_approved" not in acquired[date(2026, 4, 5)]
    assert "new_customers_approved" not in acquired[date(2026, 4, 6)]

    # The first conversion rejected: the customer is new on their next counted one.
    events.change_status(first, REJECTED, "2026-04-07 09:00")
    recompute_range(program=events.program, first=april[0], end=april[1])
    acquired = {day: counters for (_affiliate, day), counters in rows(events.program).items()}
    assert acquired[APRIL_2] == {}
    assert acquired[date(2026, 4, 5)]["new_customers_approved"] == 1


def test_new_customer_columns_add_up_to_the_provisional_view(events):
    events.conversion("2026-04-02 10:00", status=PENDING, customer="c1")
    events.conversion("2026-04-02 11:00", status=APPROVED, customer="c2")
    events.conversion("2026-04-02 12:00", status=APPROVED, customer="c2")
    recompute_range(program=events.program, first=date(2026, 4, 1), end=date(2026, 5, 1))

    assert view_total(events.program, "new_customers", View.PROVISIONAL) == 2
    assert view_total(events.program, "new_customers", View.CONFIRMED) == 1


def test_customer_lost_by_cancellation_counts_for_the_acquiring_affiliate(events):
    events.conversion("2026-04-02 10:00", status=APPROVED, customer="c1", revenue="10.00")
    events.conversion("2026-04-03 10:00", status=APPROVED, customer="c2", revenue="10.00", affiliate=events.other)
    # Subscription cancellations often arrive without a click: unattributed, still a loss for the acquirer.
    events.conversion("2026-04-12 10:00", kind=CANCELLATION, status=APPROVED, customer="c1", affiliate=None)
    events.conversion("2026-04-20 10:00", kind=CANCELLATION, status=APPROVED, customer="c1", affiliate=None)

    recompute_range(program=events.program, first=date(2026, 4, 1), end=date(2026, 5, 1))

    lost = {
        key: counters["customers_lost"]
        for key, counters in rows(events.program).items()
        if "customers_lost" in counters
    }
    assert lost == {(events.affiliate.pk, date(2026, 4, 12)): 1}


def test_customer_lost_when_their_last_sale_is_reversed(events):
    events.conversion("2026-04-01 10:00", kind=LEAD, status=APPROVED, customer="c1")
    first_sale = events.conversion("2026-04-02 10:00", status=APPROVED, customer="c1", revenue="10.00")
    last_sale = events.conversion("2026-04-03 10:00", status=APPROVED, customer="c1", revenue="10.00")
    events.change_status(first_sale, REVERSED, "2026-04-08 10:00")
    recompute_range(program=events.program, first=date(2026, 4, 1), end=date(2026, 5, 1))
    assert not any("customers_lost" in counters for counters in rows(events.program).values())

    events.change_status(last_sale, REVERSED, "2026-04-15 10:00")
    recompute_days(program=events.program, keys=[(events.affiliate.pk, date(2026, 4, 15))])

    assert row(events.program, events.affiliate, date(2026, 4, 15)) == {"reversals": 1, "customers_lost": 1}


def test_bonuses_minus_clawbacks_and_fixed_fees_on_their_days(events):
    bonus = events.bonus(date(2026, 4, 5), "100.00")
    events.clawback(bonus, date(2026, 4, 5), "30.00")
    events.bonus(date(2026, 4, 6), "12.50", affiliate=events.other)
    events.fee(date(2026, 4, 6), "25.00")

    recompute_range(program=events.program, first=date(2026, 4, 1), end=date(2026, 5, 1))

    assert rows(events.program) == {
        (events.affiliate.pk, date(2026, 4, 5)): {"bonuses": Decimal("70.00")},
        (events.affiliate.pk, date(2026, 4, 6)): {"fixed_fees": Decimal("25.00")},
        (events.other.pk, date(2026, 4, 6)): {"bonuses": Decimal("12.50")},
    }


def busy_april(events) -> None:
    """A bit of everything across April for both affiliates."""
    for day in range(1, 31):
        events.click(f"2026-04-{day:02d} 09:00", count=day % 4 + 1)
        events.click(f"2026-04-{day:02d} 23:30", affiliate=events.other, unique=day % 2 == 0)
        if day % 3 == 0:
            status = APPROVED if day % 2 else PENDING
            events.conversion(f"2026-04-{day:02d} 12:00", status=status, revenue=f"{day}.50", customer=f"c{day % 5}")
        if day % 7 == 0:
            events.impression(f"2026-04-{day:02d} 07:00", affiliate=events.other)
    events.fee(date(2026, 4, 9), "5.00")


def test_recompute_twice_writes_the_same_rows(events):
    busy_april(events)
    keys = [
        (affiliate.pk, date(2026, 4, day)) for affiliate in (events.affiliate, events.other) for day in range(1, 31)
    ]

    recompute_days(program=events.program, keys=keys)
    first = rows(events.program)
    assert recompute_days(program=events.program, keys=keys) == 0  # nothing changed, nothing written
    assert rows(events.program) == first
    recompute_range(program=events.program, first=date(2026, 4, 1), end=date(2026, 5, 1))
    assert rows(events.program) == first
    # The other affiliate's click at 23:30 UTC on 30 April is 1 May in Warsaw: outside these keys.
    assert sum(counters.get("clicks", 0) for counters in first.values()) == 29 + sum(
        day % 4 + 1 for day in range(1, 31)
    )


def test_recompute_touches_only_its_program(events, bob_events):
    busy_april(events)
    busy_april(bob_events)
    recompute_range(program=bob_events.program, first=date(2026, 4, 1), end=date(2026, 5, 1))
    bob_before = rows(bob_events.program)

    recompute_range(program=events.program, first=date(2026, 4, 1), end=date(2026, 5, 1))

    assert rows(bob_events.program) == bob_before
    alice_affiliates = {events.affiliate.pk, events.other.pk}
    assert {affiliate_id for affiliate_id, _day in rows(events.program)} == alice_affiliates
    assert rows(events.program) == {
        ((events.affiliate.pk if a == bob_events.affiliate.pk else events.other.pk), day): counters
        for (a, day), counters in bob_before.items()
    }


def test_rebuild_command_shows_progress_and_records_a_job(events, capsys):
    busy_april(events)
    events.click("2026-03-15 10:00", count=3)

    call_command("rebuild_stats", "--program", events.program.slug, "--from", "2026-03", "--to", "2026-04")

    output = capsys.readouterr().out
    assert "31/61 days" in output
    assert "61/61 days" in output
    with scopes_disabled():
        job = JobRun.objects.get(program=events.program, kind="rebuild_stats")
        assert (job.status, job.done, job.total) == (JobRun.Status.DONE, 61, 61)
        fresh = fresh_stats(program=events.program, first=date(2026, 3, 1), end=date(2026, 5, 1))
    assert stored_stats(program=events.program, first=date(2026, 3, 1), end=date(2026, 5, 1)) == fresh
    assert row(events.program, events.affiliate, date(2026, 3, 15)) == {"clicks": 3, "unique_clicks": 3}


def test_rebuild_command_refuses_an_unknown_program_and_a_reversed_range(events):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No program"):
        call_command("rebuild_stats", "--program", "nope", "--from", "2026-03", "--to", "2026-04")
    with pytest.raises(CommandError, match="before"):
        call_command("rebuild_stats", "--program", events.program.slug, "--from", "2026-05", "--to", "2026-04")


@time_machine.travel("2026-04-20 12:00Z", tick=False)
def test_reconcile_reports_and_fixes_drift(events):
    busy_april(events)
    recompute_range(program=events.program, first=date(2026, 4, 1), end=date(2026, 5, 1))
    with scopes_disabled():
        DailyStats.objects.filter(program=events.program, affiliate=events.affiliate, day=date(2026, 4, 19)).update(
            clicks=99
        )
    expected_clicks = 19 % 4 + 1

    job = reconcile_stats(program=events.program, days=3)

    assert job.status == JobRun.Status.DONE
    assert job.message.startswith("Drift in 1 of 6 cells over 2026-04-18 … 2026-04-20, fixed:")
    assert f"affiliate {events.affiliate.pk} on 2026-04-19: clicks 99→{expected_clicks}" in job.message
    assert row(events.program, events.affiliate, date(2026, 4, 19))["clicks"] == expected_clicks
    again = reconcile_stats(program=events.program, days=3)
    assert again.message == "No drift: 6 cells over 2026-04-18 … 2026-04-20 match the raw events."


def test_recompute_of_nothing_writes_nothing(events):
    assert recompute_days(program=events.program, keys=[]) == 0
    assert recompute_days(program=events.program, keys=[(events.affiliate.pk, APRIL_2)]) == 0
    assert rows(events.program) == {}


def test_kpi_values_read_the_recomputed_rows_in_both_views(events):
    events.click("2026-04-02 08:00", count=40)
    events.conversion("2026-04-02 10:00", status=APPROVED, revenue="100.00", commission="10.00")
    events.conversion("2026-04-03 10:00", status=PENDING, revenue="60.00", commission="6.00")
    recompute_range(program=events.program, first=date(2026, 4, 1), end=date(2026, 5, 1))

    april = Period.month(date(2026, 4, 1))
    with scopes_disabled():
        values = {
            view: kpi_values(program=events.program, period=april, kpis=["conversion_rate", "revenue"], view=view)
            for view in View
        }
    assert values[View.PROVISIONAL][events.affiliate.pk] == {"conversion_rate": Decimal(5), "revenue": Decimal(160)}
    assert values[View.CONFIRMED][events.affiliate.pk] == {"conversion_rate": Decimal("2.5"), "revenue": Decimal(100)}


def test_a_day_with_many_dirty_cells_is_recomputed_whole(events, monkeypatch):
    monkeypatch.setattr(rollups, "WHOLE_DAY_KEYS", 1)
    events.click("2026-04-02 08:00", count=2)
    events.click("2026-04-02 09:00", affiliate=events.other)
    events.click("2026-04-03 09:00")

    recompute_days(program=events.program, keys=[(events.affiliate.pk, APRIL_2), (events.other.pk, APRIL_2)])

    assert rows(events.program) == {
        (events.affiliate.pk, APRIL_2): {"clicks": 2, "unique_clicks": 2},
        (events.other.pk, APRIL_2): {"clicks": 1, "unique_clicks": 1},
    }
