"""tracking.dirty: the cells an event write marks for the rollups, on the program-local day, a row per write."""

import uuid
from datetime import UTC, date, datetime

import pytest
import time_machine
from django.db import transaction
from django_scopes import scopes_disabled

from tracking.dirty import mark_dirty, mark_events_dirty
from tracking.models import StatsDirtyKey


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def dirty(program) -> list[tuple[int, date]]:
    """The marked cells (a cell written twice has two marks)."""
    with scopes_disabled():
        rows = StatsDirtyKey.objects.filter(program=program).order_by("affiliate_id", "day")
        return sorted(set(rows.values_list("affiliate_id", "day")))


def test_marks_fall_on_the_program_local_day_one_row_per_cell_and_write(alice, bob):
    affiliate = alice.affiliate.pk
    with time_machine.travel("2026-04-02 10:00Z", tick=False):
        mark_dirty(program_id=alice.program.pk, affiliate_id=affiliate, moments_or_days=[utc("2026-03-31 22:30")])
    with time_machine.travel("2026-04-02 10:05Z", tick=False), transaction.atomic():
        mark_dirty(
            program_id=alice.program.pk,
            affiliate_id=affiliate,
            moments_or_days=[utc("2026-04-01 08:00"), date(2026, 4, 3), utc("2026-03-31 21:00")],
        )
    mark_dirty(program_id=alice.program.pk, affiliate_id=None, moments_or_days=[date(2026, 4, 3)])

    # 22:30 UTC on 31 March is 1 April in Warsaw; 21:00 UTC is still 31 March there.
    assert dirty(alice.program) == [
        (affiliate, date(2026, 3, 31)),
        (affiliate, date(2026, 4, 1)),
        (affiliate, date(2026, 4, 3)),
    ]
    assert dirty(bob.program) == []
    with scopes_disabled():
        marks = StatsDirtyKey.objects.filter(program=alice.program, day=date(2026, 4, 1)).order_by("marked_at")
        # Each write marks on its own (no lock between writers); the oldest mark tells how long the cell waits.
        assert list(marks.values_list("marked_at", flat=True)) == [utc("2026-04-02 10:00"), utc("2026-04-02 10:05")]


def test_stored_events_mark_their_cells_per_program(alice, bob):
    events = [
        (alice.program.pk, alice.affiliate.pk, utc("2026-04-02 08:00")),
        (alice.program.pk, alice.affiliate.pk, utc("2026-04-02 09:00")),
        (alice.program.pk, alice.other_affiliate.pk, utc("2026-04-02 23:30")),
        (bob.program.pk, bob.affiliate.pk, utc("2026-04-02 08:00")),
    ]

    marked = mark_events_dirty(events=events, timezones={alice.program.pk: "Europe/Warsaw", bob.program.pk: "UTC"})

    assert marked == 3
    assert dirty(alice.program) == [
        (alice.affiliate.pk, date(2026, 4, 2)),
        (alice.other_affiliate.pk, date(2026, 4, 3)),
    ]
    assert dirty(bob.program) == [(bob.affiliate.pk, date(2026, 4, 2))]


def test_stored_clicks_and_impressions_mark_their_cells_in_the_same_transaction(alice_link):
    from tracking.clicks import CLICK, IMPRESSION, store_events

    link = alice_link.link

    def entry(kind: str, at: str) -> dict:
        moment = utc(at)
        return {
            "k": kind,
            "p": link.program_id,
            "l": link.pk,
            "a": link.affiliate_id,
            "o": link.offer_id,
            "id": str(uuid.uuid4()),
            "t": int(moment.timestamp() * 1_000_000),
        }

    def drain_that_dies() -> None:
        with transaction.atomic():
            store_events([entry(CLICK, "2026-04-02 08:00")])
            raise RuntimeError("the drain dies before commit")

    with pytest.raises(RuntimeError):
        drain_that_dies()
    assert dirty(alice_link.program) == []

    store_events([entry(CLICK, "2026-04-02 08:00"), entry(IMPRESSION, "2026-04-02 22:30")])

    assert dirty(alice_link.program) == [(link.affiliate_id, date(2026, 4, 2)), (link.affiliate_id, date(2026, 4, 3))]
