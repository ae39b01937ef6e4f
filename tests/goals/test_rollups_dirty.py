"""Dirty keys: marked with the event, processed by the loop, durable without Celery, coalesced under bursts."""

import threading
from datetime import date
from decimal import Decimal

import pytest
import time_machine
from django.db import connection, transaction
from django_scopes import scopes_disabled

from goals import rollups
from goals.models import DailyStats
from goals.rollups import process_dirty_keys, reconcile_stats
from goals.tasks import process_rollups_task, sweep_rollups_task
from tracking.dirty import conversion_keys, mark_conversions_dirty, mark_dirty, mark_events_dirty
from tracking.models import ConversionKind, ConversionStatus, StatsDirtyKey

from .conftest import utc

APRIL_2 = date(2026, 4, 2)
on_postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")


def dirty(program) -> list[tuple[int, date]]:
    """The marked cells (a cell written twice has two marks)."""
    with scopes_disabled():
        return sorted(set(StatsDirtyKey.objects.filter(program=program).values_list("affiliate_id", "day")))


def marks(program) -> int:
    with scopes_disabled():
        return StatsDirtyKey.objects.filter(program=program).count()


def clicks_on(program, affiliate, day: date) -> int | None:
    with scopes_disabled():
        return (
            DailyStats.objects.filter(program=program, affiliate=affiliate, day=day)
            .values_list("clicks", flat=True)
            .first()
        )


@pytest.fixture
def refreshed(monkeypatch) -> list[tuple]:
    """Record the goal-progress refreshes the loop asks for, instead of running the progress engine."""
    calls = []

    def refresh(*, program, month, affiliate_ids):
        calls.append((program.pk, month, tuple(affiliate_ids)))

    monkeypatch.setattr(rollups, "_goal_progress_refresher", lambda: refresh)
    return calls


@pytest.fixture
def recomputes(monkeypatch) -> list[list]:
    """Every recompute_days call the loop makes, with its keys."""
    calls = []
    original = rollups.recompute_days

    def counted(*, program, keys):
        keys = list(keys)
        calls.append(keys)
        return original(program=program, keys=keys)

    monkeypatch.setattr(rollups, "recompute_days", counted)
    return calls


def click_and_mark(events, at: str, *, affiliate=None, count: int = 1) -> None:
    """What the click drain does: store the clicks and mark their cells, in one transaction."""
    with transaction.atomic():
        clicks = events.click(at, affiliate=affiliate, count=count)
        mark_events_dirty(
            events=[(click.program_id, click.affiliate_id, click.created_at) for click in clicks],
            timezones={events.program.pk: events.program.timezone},
        )


def test_marks_fall_on_local_days_one_row_per_write(events):
    with time_machine.travel("2026-04-02 10:00Z", tick=False):
        mark_dirty(
            program_id=events.program.pk, affiliate_id=events.affiliate.pk, moments_or_days=[utc("2026-03-31 22:30")]
        )
    with time_machine.travel("2026-04-02 10:05Z", tick=False):
        mark_dirty(
            program_id=events.program.pk,
            affiliate_id=events.affiliate.pk,
            moments_or_days=[utc("2026-04-01 08:00"), date(2026, 4, 3), utc("2026-03-31 21:00")],
        )
    mark_dirty(program_id=events.program.pk, affiliate_id=None, moments_or_days=[APRIL_2])

    assert dirty(events.program) == [
        (events.affiliate.pk, date(2026, 3, 31)),
        (events.affiliate.pk, date(2026, 4, 1)),
        (events.affiliate.pk, date(2026, 4, 3)),
    ]
    assert marks(events.program) == 4  # 1 April was written twice
    assert rollups.dirty_backlog() == (4, utc("2026-04-02 10:00"))


@time_machine.travel("2026-04-03 12:00Z", tick=False)
def test_loop_recomputes_marked_cells_and_clears_them(events, bob_events, refreshed):
    click_and_mark(events, "2026-04-02 08:00", count=3)
    click_and_mark(events, "2026-04-02 09:00", affiliate=events.other)
    click_and_mark(bob_events, "2026-04-02 08:00", count=2)

    assert process_dirty_keys() == 3

    assert clicks_on(events.program, events.affiliate, APRIL_2) == 3
    assert clicks_on(events.program, events.other, APRIL_2) == 1
    assert clicks_on(bob_events.program, bob_events.affiliate, APRIL_2) == 2
    assert dirty(events.program) == dirty(bob_events.program) == []
    assert sorted(refreshed) == sorted(
        [
            (events.program.pk, date(2026, 4, 1), tuple(sorted([events.affiliate.pk, events.other.pk]))),
            (bob_events.program.pk, date(2026, 4, 1), (bob_events.affiliate.pk,)),
        ]
    )
    assert process_dirty_keys() == 0


def test_a_late_change_refreshes_its_month_and_the_current_one(events, refreshed):
    with time_machine.travel("2026-05-10 12:00Z", tick=False):
        click_and_mark(events, "2026-04-30 08:00")
        process_dirty_keys()
    assert refreshed == [
        (events.program.pk, date(2026, 4, 1), (events.affiliate.pk,)),
        (events.program.pk, date(2026, 5, 1), (events.affiliate.pk,)),
    ]


def test_lost_message_delays_but_the_sweep_still_recomputes(events, refreshed):
    # The events and their marks are committed; the Celery message that would have followed is "lost":
    # nothing runs process_rollups_task. The row in PostgreSQL is all the sweep needs.
    click_and_mark(events, "2026-04-02 08:00", count=2)
    assert clicks_on(events.program, events.affiliate, APRIL_2) is None
    assert dirty(events.program) == [(events.affiliate.pk, APRIL_2)]

    assert sweep_rollups_task.delay().get() == 1

    assert clicks_on(events.program, events.affiliate, APRIL_2) == 2
    assert dirty(events.program) == []


def test_beat_task_works_off_the_backlog(events, refreshed, settings):
    settings.ROLLUP_BATCH_KEYS = 2
    for day in range(1, 6):
        click_and_mark(events, f"2026-04-0{day} 08:00")

    assert process_rollups_task.delay().get() == 5

    assert dirty(events.program) == []
    with scopes_disabled():
        assert DailyStats.objects.filter(program=events.program).count() == 5


def test_thousand_events_on_one_affiliate_are_one_recompute(events, refreshed, recomputes):
    for _ in range(1000):
        click_and_mark(events, "2026-04-02 08:00")

    assert dirty(events.program) == [(events.affiliate.pk, APRIL_2)]
    assert marks(events.program) == 1000
    assert process_dirty_keys() == 1
    assert marks(events.program) == 0

    assert recomputes == [[(events.affiliate.pk, APRIL_2)]]
    assert clicks_on(events.program, events.affiliate, APRIL_2) == 1000


def test_a_burst_spread_over_two_loop_runs_is_two_recomputes(events, refreshed, recomputes):
    for index in range(1000):
        click_and_mark(events, "2026-04-02 08:00")
        if index == 499:
            process_dirty_keys()  # beat's tick falls in the middle of the burst
    process_dirty_keys()

    assert recomputes == [[(events.affiliate.pk, APRIL_2)]] * 2
    assert clicks_on(events.program, events.affiliate, APRIL_2) == 1000


def test_a_failing_program_keeps_its_keys_and_the_others_go_on(events, bob_events, refreshed, monkeypatch, caplog):
    click_and_mark(events, "2026-04-02 08:00")
    click_and_mark(bob_events, "2026-04-02 08:00")
    original = rollups.recompute_days

    def broken_for_alice(*, program, keys):
        if program.pk == events.program.pk:
            raise RuntimeError("bad data")
        return original(program=program, keys=keys)

    monkeypatch.setattr(rollups, "recompute_days", broken_for_alice)

    assert process_dirty_keys() == 1

    assert dirty(events.program) == [(events.affiliate.pk, APRIL_2)]
    assert clicks_on(events.program, events.affiliate, APRIL_2) is None
    assert clicks_on(bob_events.program, bob_events.affiliate, APRIL_2) == 1
    assert f"Rollups of program {events.program.pk} failed; its keys stay dirty." in caplog.text


def test_conversion_marks_its_day_the_change_day_and_its_customers_cells(events):
    program = events.program
    events.conversion("2026-04-02 10:00", customer="c1", affiliate=events.other)
    events.conversion("2026-04-05 10:00", kind=ConversionKind.CANCELLATION, customer="c1", affiliate=None)
    sale = events.conversion("2026-04-07 10:00", customer="c1", status=ConversionStatus.APPROVED)
    unrelated = events.conversion("2026-04-07 11:00", customer="c2", affiliate=events.other)

    keys = conversion_keys(program=program, conversions=[sale], moments=[utc("2026-04-09 23:30")])

    # c1 converted with both affiliates, on the 2nd, 5th and 7th; the change happened on the 10th (local).
    days = [date(2026, 4, 2), date(2026, 4, 5), date(2026, 4, 7), date(2026, 4, 10)]
    assert keys == {(affiliate.pk, day) for affiliate in (events.affiliate, events.other) for day in days}
    assert (events.other.pk, date(2026, 4, 7)) in conversion_keys(program=program, conversions=[unrelated])
    assert mark_conversions_dirty(program=program, conversions=[sale], moments=[utc("2026-04-09 23:30")]) == 8


def test_reversal_through_the_loop_moves_counters_and_loses_the_customer(events, refreshed):
    program = events.program
    sale = events.conversion("2026-04-02 10:00", status=ConversionStatus.APPROVED, customer="c1", revenue="40.00")
    events.conversion("2026-04-01 10:00", kind=ConversionKind.LEAD, status=ConversionStatus.APPROVED, customer="c1")
    mark_conversions_dirty(program=program, conversions=[sale])
    process_dirty_keys()

    with transaction.atomic():
        events.change_status(sale, ConversionStatus.REVERSED, "2026-04-12 10:00")
        mark_conversions_dirty(program=program, conversions=[sale], moments=[utc("2026-04-12 10:00")])
    process_dirty_keys()

    with scopes_disabled():
        stats = {
            row.day: (
                row.sales_approved,
                row.revenue_approved,
                row.reversals,
                row.customers_lost,
                row.new_customers_approved,
            )
            for row in DailyStats.objects.filter(program=program, affiliate=events.affiliate)
        }
    assert stats == {
        date(2026, 4, 1): (0, Decimal("0.00"), 0, 0, 1),
        date(2026, 4, 2): (0, Decimal("0.00"), 0, 0, 0),
        date(2026, 4, 12): (0, Decimal("0.00"), 1, 1, 0),
    }


@time_machine.travel("2026-04-20 12:00Z", tick=False)
def test_cells_waiting_for_their_recompute_are_not_drift(events, refreshed):
    click_and_mark(events, "2026-04-19 08:00")
    process_dirty_keys()
    click_and_mark(events, "2026-04-19 09:00")  # marked, the loop has not run yet

    job = reconcile_stats(program=events.program, days=3)

    assert job.message == "No drift: 1 cells over 2026-04-18 … 2026-04-20 match the raw events."
    assert clicks_on(events.program, events.affiliate, date(2026, 4, 19)) == 1  # still the loop's to do


# --- Concurrency (PostgreSQL: real row locks, threads with their own connections) -------------------------


def in_thread(function, *args) -> threading.Thread:
    def run():
        try:
            function(*args)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_concurrent_recomputes_of_the_same_keys_do_not_double_count(events):
    for day in range(1, 11):
        events.click(f"2026-04-{day:02d} 08:00", count=day)
        events.conversion(f"2026-04-{day:02d} 09:00", revenue="10.00", commission="1.00")
    keys = [(events.affiliate.pk, date(2026, 4, day)) for day in range(1, 11)]
    start = threading.Barrier(4)
    errors = []

    def recompute():
        start.wait()
        try:
            for _ in range(5):
                rollups.recompute_days(program=events.program, keys=keys)
                rollups.recompute_range(program=events.program, first=date(2026, 4, 1), end=date(2026, 4, 11))
        except Exception as error:  # reported below
            errors.append(error)

    threads = [in_thread(recompute) for _ in range(4)]
    for thread in threads:
        thread.join()

    assert errors == []
    with scopes_disabled():
        stored = dict(DailyStats.objects.filter(program=events.program).values_list("day", "clicks").order_by("day"))
        revenue = sorted(
            set(DailyStats.objects.filter(program=events.program).values_list("revenue_pending", flat=True))
        )
    assert stored == {date(2026, 4, day): day for day in range(1, 11)}
    assert revenue == [Decimal("10.00")]


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_event_still_uncommitted_when_the_loop_claims_is_recomputed_after_it_commits(events, refreshed):
    click_and_mark(events, "2026-04-02 08:00")
    marked, release = threading.Event(), threading.Event()

    def slow_drain():
        # Marks a cell that is already dirty, then holds its transaction open while the loop runs.
        with transaction.atomic():
            clicks = events.click("2026-04-02 09:00")
            mark_events_dirty(
                events=[(clicks[0].program_id, clicks[0].affiliate_id, clicks[0].created_at)],
                timezones={events.program.pk: events.program.timezone},
            )
            marked.set()
            release.wait(10)

    thread = in_thread(slow_drain)
    marked.wait(10)
    # The loop sees the committed click and its mark only; the open transaction's mark is invisible, so stays.
    assert process_dirty_keys() == 1
    assert clicks_on(events.program, events.affiliate, APRIL_2) == 1
    release.set()
    thread.join()
    assert dirty(events.program) == [(events.affiliate.pk, APRIL_2)]
    assert process_dirty_keys() == 1

    assert clicks_on(events.program, events.affiliate, APRIL_2) == 2
    assert dirty(events.program) == []


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_event_marking_a_cell_the_loop_holds_does_not_wait_and_is_recomputed_next_round(events, refreshed, monkeypatch):
    click_and_mark(events, "2026-04-02 08:00")
    claimed, proceed = threading.Event(), threading.Event()
    original = rollups.recompute_days

    def paused(*, program, keys):
        written = original(program=program, keys=keys)
        claimed.set()
        proceed.wait(10)  # the loop holds its claim while an event arrives for the same cell
        return written

    monkeypatch.setattr(rollups, "recompute_days", paused)
    loop = in_thread(process_dirty_keys)
    claimed.wait(10)
    event = in_thread(click_and_mark, events, "2026-04-02 09:00")
    event.join(5)
    assert not event.is_alive()  # a mark is a row of its own: it waits for nobody
    proceed.set()
    loop.join()
    event.join()

    assert clicks_on(events.program, events.affiliate, APRIL_2) == 1
    assert dirty(events.program) == [(events.affiliate.pk, APRIL_2)]
    monkeypatch.setattr(rollups, "recompute_days", original)
    assert process_dirty_keys() == 1
    assert clicks_on(events.program, events.affiliate, APRIL_2) == 2


@on_postgresql
@pytest.mark.django_db
def test_rollup_tables_leave_room_for_updates_on_their_pages():
    # Recomputes rewrite these rows all day: room on the page makes the updates HOT (no index written).
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, reloptions FROM pg_class WHERE relname IN ('goals_dailystats', 'goals_goalprogress')"
        )
        options = dict(cursor.fetchall())
    assert options == {"goals_dailystats": ["fillfactor=80"], "goals_goalprogress": ["fillfactor=80"]}
