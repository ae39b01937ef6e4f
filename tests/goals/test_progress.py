"""Goal progress from DailyStats: KPI.md's semantics, both views, upserts, time, DST and the periodic refresh."""

import threading
from datetime import date
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django_scopes import scope, scopes_disabled

from goals.models import GoalProgress, MonthClose
from goals.progress import refresh_goal_progress, refresh_open_months
from goals.tasks import refresh_all_goal_progress_task
from tests.goals.builders import APRIL, MARCH, MAY, make_goal, put_stats, utc

pytestmark = pytest.mark.django_db


@pytest.fixture
def program(alice, bob):
    """alice's program (Europe/Warsaw) in its scope; bob's program has goals and traffic of its own."""
    make_goal(bob.affiliate, kpi="conversions", target=Decimal(100))
    put_stats(bob.affiliate, date(2026, 4, 2), conversions_approved=90, clicks=5000)
    with scope(program=alice.program):
        yield alice.program


def progress_of(goal) -> GoalProgress:
    return GoalProgress.objects.get(goal=goal)


def test_example_7_through_stored_progress(program, alice):
    """KPI.md example 7 end to end: 40 of 100 conversions on 10 April 00:00 local is on track."""
    goal = make_goal(alice.affiliate, kpi="conversions", target=Decimal(100))
    put_stats(alice.affiliate, date(2026, 4, 2), conversions_approved=25)
    put_stats(alice.affiliate, date(2026, 4, 9), conversions_approved=15)

    changed = refresh_goal_progress(program=program, month=APRIL, now=utc("2026-04-09 22:00"))

    progress = progress_of(goal)
    assert changed == 1
    assert (progress.elapsed, progress.expected_now, progress.projection) == (
        Decimal("0.3"),
        Decimal(30),
        Decimal("133.333333"),
    )
    assert (progress.status, progress.progress_provisional, progress.value_provisional) == (
        "on_track",
        Decimal(40),
        Decimal(40),
    )


def test_provisional_and_confirmed_side_by_side(program, alice):
    goal = make_goal(alice.affiliate, kpi="conversions", target=Decimal(40))
    put_stats(alice.affiliate, date(2026, 4, 3), conversions_pending=30, conversions_approved=20)

    refresh_goal_progress(program=program, month=APRIL, now=utc("2026-04-16 00:00"))

    progress = progress_of(goal)
    assert (progress.value_provisional, progress.value_confirmed) == (Decimal(50), Decimal(20))
    assert (progress.progress_provisional, progress.progress_confirmed) == (Decimal(125), Decimal(50))
    assert (progress.status, progress.status_confirmed) == ("met", "at_risk")


def test_ratio_goal_below_minimum_volume_is_not_enough_data(program, alice):
    default_volume = make_goal(alice.affiliate, kpi="conversion_rate", target=Decimal(5))
    own_volume = make_goal(alice.other_affiliate, kpi="conversion_rate", target=Decimal(5), min_volume=20)
    for affiliate in (alice.affiliate, alice.other_affiliate):
        put_stats(affiliate, date(2026, 4, 3), clicks=50, conversions_approved=5)

    refresh_goal_progress(program=program, month=APRIL, now=utc("2026-04-16 00:00"))

    below = progress_of(default_volume)
    above = progress_of(own_volume)
    assert (below.status, below.value_provisional, below.progress_provisional, below.volume) == (
        "not_enough_data",
        Decimal(10),
        None,
        50,
    )
    assert (above.status, above.progress_provisional, above.expected_now, above.projection) == (
        "met",
        Decimal(200),
        Decimal(5),
        Decimal(10),
    )


def test_ratio_with_zero_clicks_is_undefined(program, alice):
    """KPI.md example 8 through stored progress: no clicks, no conversion rate, not enough data."""
    goal = make_goal(alice.affiliate, kpi="conversion_rate", target=Decimal(5), min_volume=0)
    put_stats(alice.affiliate, date(2026, 4, 3), clicks=0, conversions_approved=3)

    refresh_goal_progress(program=program, month=APRIL, now=utc("2026-04-16 00:00"))

    progress = progress_of(goal)
    assert (progress.value_provisional, progress.progress_provisional, progress.status) == (
        None,
        None,
        "not_enough_data",
    )


def test_lower_is_better_goal(program, alice):
    goal = make_goal(alice.affiliate, kpi="cpa", target=Decimal(50))
    put_stats(
        alice.affiliate,
        date(2026, 4, 3),
        conversions_approved=12,
        new_customers_approved=20,
        commission_approved="800.00",
        fixed_fees="200.00",
    )

    refresh_goal_progress(program=program, month=APRIL, now=utc("2026-04-16 00:00"))

    progress = progress_of(goal)
    assert (progress.value_confirmed, progress.progress_confirmed, progress.status_confirmed) == (
        Decimal(50),
        Decimal(100),
        "met",
    )


def test_refresh_is_an_upsert_and_counts_changed_rows(program, alice):
    goal = make_goal(alice.affiliate, kpi="clicks", target=Decimal(1000))
    put_stats(alice.affiliate, date(2026, 4, 3), clicks=100)
    now = utc("2026-04-16 00:00")

    assert refresh_goal_progress(program=program, month=APRIL, now=now) == 1
    first = progress_of(goal)
    assert refresh_goal_progress(program=program, month=APRIL, now=now) == 0  # nothing moved: nothing written
    put_stats(alice.affiliate, date(2026, 4, 4), clicks=50)
    assert refresh_goal_progress(program=program, month=APRIL, now=now) == 1

    assert GoalProgress.objects.filter(goal=goal).count() == 1
    second = progress_of(goal)
    assert (first.value_provisional, second.value_provisional) == (Decimal(100), Decimal(150))
    assert second.updated_at >= first.updated_at


def test_refresh_limited_to_affiliates(program, alice):
    mine = make_goal(alice.affiliate, kpi="clicks", target=Decimal(1000))
    theirs = make_goal(alice.other_affiliate, kpi="clicks", target=Decimal(1000))

    refresh_goal_progress(program=program, month=APRIL, affiliate_ids=[alice.affiliate.pk], now=utc("2026-04-16"))

    assert list(GoalProgress.objects.values_list("goal_id", flat=True)) == [mine.pk]
    assert not GoalProgress.objects.filter(goal=theirs).exists()


def test_refresh_never_reads_another_program(program, alice, bob):
    goal = make_goal(alice.affiliate, kpi="conversions", target=Decimal(100))
    refresh_goal_progress(program=program, month=APRIL, now=utc("2026-04-16 00:00"))
    assert progress_of(goal).value_provisional == Decimal(0)
    with scopes_disabled():
        assert not GoalProgress.objects.filter(program=bob.program).exists()


def test_future_month_has_no_progress_yet(program, alice):
    goal = make_goal(alice.affiliate, kpi="clicks", month=MAY)
    assert refresh_goal_progress(program=program, month=MAY, now=utc("2026-04-16 00:00")) == 0
    assert not GoalProgress.objects.filter(goal=goal).exists()


def test_month_boundary_follows_the_program_time_zone(program, alice):
    """30 April 22:30 UTC is already 1 May in Warsaw: April's pace is complete, May's has begun."""
    april = make_goal(alice.affiliate, kpi="clicks", target=Decimal(100))
    may = make_goal(alice.affiliate, kpi="clicks", target=Decimal(100), month=MAY)
    put_stats(alice.affiliate, date(2026, 4, 30), clicks=100)
    put_stats(alice.affiliate, date(2026, 5, 1), clicks=3)

    now = utc("2026-04-30 22:30")
    refresh_goal_progress(program=program, month=APRIL, now=now)
    refresh_goal_progress(program=program, month=MAY, now=now)

    assert (progress_of(april).elapsed, progress_of(april).status) == (Decimal(1), "met")
    may_progress = progress_of(may)
    assert may_progress.value_provisional == Decimal(3)
    assert may_progress.elapsed == Decimal("0.00067204")  # 30 minutes of 31 days


def test_elapsed_across_the_dst_change_is_wall_clock(program, alice):
    """Summer time starts 29 March 2026 in Warsaw: 30 March 00:00 local is still 29/31 of March."""
    goal = make_goal(alice.affiliate, kpi="clicks", target=Decimal(310), month=MARCH)
    put_stats(alice.affiliate, date(2026, 3, 10), clicks=290)

    refresh_goal_progress(program=program, month=MARCH, now=utc("2026-03-29 22:00"))

    progress = progress_of(goal)
    assert progress.elapsed == Decimal("0.93548387")  # 29 / 31
    assert (progress.expected_now, progress.status) == (Decimal("290.000000"), "on_track")


def test_final_progress_is_left_alone_by_live_refresh(program, alice):
    goal = make_goal(alice.affiliate, kpi="clicks", target=Decimal(100))
    put_stats(alice.affiliate, date(2026, 4, 3), clicks=100)
    refresh_goal_progress(program=program, month=APRIL, now=utc("2026-04-16"))
    GoalProgress.objects.filter(goal=goal).update(final=True)
    put_stats(alice.affiliate, date(2026, 4, 4), clicks=900)

    assert refresh_goal_progress(program=program, month=APRIL, now=utc("2026-04-17")) == 0
    assert progress_of(goal).value_provisional == Decimal(100)


def test_refresh_open_months_skips_closed_and_future_months(program, alice):
    goals = {
        month: make_goal(alice.affiliate, kpi="clicks", target=Decimal(100), month=month)
        for month in (date(2026, 2, 1), MARCH, APRIL, MAY)
    }
    MonthClose.objects.create(program=program, month=date(2026, 2, 1))

    with time_machine.travel(utc("2026-04-03 12:00"), tick=False):
        refresh_open_months(program=program)

    assert set(GoalProgress.objects.values_list("goal_id", flat=True)) == {goals[MARCH].pk, goals[APRIL].pk}


def test_periodic_task_moves_elapsed_with_time(program, alice, bob):
    goal = make_goal(alice.affiliate, kpi="clicks", target=Decimal(300))
    put_stats(alice.affiliate, date(2026, 4, 2), clicks=100)

    with time_machine.travel(utc("2026-04-05 22:00"), tick=False):  # 6 April 00:00 local: 5 of 30 days
        refresh_all_goal_progress_task.delay()
    early = progress_of(goal)
    with time_machine.travel(utc("2026-04-20 22:00"), tick=False):  # 21 April 00:00 local: 20 of 30 days
        refresh_all_goal_progress_task.delay()
    late = progress_of(goal)

    assert (early.elapsed, early.expected_now, early.status) == (Decimal("0.16666667"), Decimal(50), "on_track")
    assert (late.elapsed, late.expected_now, late.projection, late.status) == (
        Decimal("0.66666667"),
        Decimal(200),
        Decimal(150),
        "behind",
    )
    with scopes_disabled():
        # bob's program was refreshed by its own task, from its own rows.
        assert GoalProgress.objects.get(program=bob.program).value_provisional == Decimal(90)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent transactions need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_concurrent_refreshes_of_the_same_goal_do_not_double_count(alice):
    goal = make_goal(alice.affiliate, kpi="clicks", target=Decimal(1000))
    put_stats(alice.affiliate, date(2026, 4, 3), clicks=400)
    barrier = threading.Barrier(4)
    errors = []

    def refresh() -> None:
        try:
            with scope(program=alice.program):
                barrier.wait()
                refresh_goal_progress(program=alice.program, month=APRIL, now=utc("2026-04-16"))
        except Exception as error:  # reported to the test thread below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=refresh) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    with scopes_disabled():
        assert list(GoalProgress.objects.filter(goal=goal).values_list("value_provisional", flat=True)) == [
            Decimal(400)
        ]


def test_progress_rows_carry_their_goals_month_and_kpi_on_create_and_on_refresh(program, alice):
    clicks = make_goal(alice.affiliate, kpi="clicks", target=Decimal(1000))
    march = make_goal(alice.affiliate, kpi="conversions", target=Decimal(10), month=MARCH)
    put_stats(alice.affiliate, date(2026, 3, 3), conversions_approved=4)
    put_stats(alice.affiliate, date(2026, 4, 3), clicks=100)
    now = utc("2026-04-16 00:00")

    refresh_goal_progress(program=program, month=MARCH, now=now)
    refresh_goal_progress(program=program, month=APRIL, now=now)
    assert (progress_of(clicks).month, progress_of(clicks).kpi) == (APRIL, "clicks")
    assert (progress_of(march).month, progress_of(march).kpi) == (MARCH, "conversions")

    # The upsert writes them again with the rest of the row (a row left wrong by hand is put right).
    GoalProgress.objects.filter(goal=clicks).update(month=MAY, kpi="revenue")
    put_stats(alice.affiliate, date(2026, 4, 4), clicks=50)
    assert refresh_goal_progress(program=program, month=APRIL, now=now) == 1
    assert (progress_of(clicks).month, progress_of(clicks).kpi, progress_of(clicks).value_provisional) == (
        APRIL,
        "clicks",
        Decimal(150),
    )
