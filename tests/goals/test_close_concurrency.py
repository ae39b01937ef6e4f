"""A goal written while a close begins is either frozen with the month or refused, never lost (PostgreSQL)."""

import threading
import time
from datetime import date
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django_scopes import scope, scopes_disabled

from goals.closing import close_month
from goals.models import BonusEntry, GoalProgress
from goals.services import set_goal
from tests.goals.builders import APRIL, put_stats, utc

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent transactions need PostgreSQL"),
    pytest.mark.django_db(transaction=True),
]

WAIT_SECONDS = 10


def waiting_advisory_locks() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        return cursor.fetchone()[0]


def test_close_waits_for_a_goal_being_written_and_freezes_it(alice):
    put_stats(alice.affiliate, date(2026, 4, 20), conversions_approved=12)
    goal_written, release_goal = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def write_goal() -> None:
        try:
            with scope(program=alice.program), transaction.atomic():
                set_goal(
                    program=alice.program,
                    affiliate=alice.affiliate,
                    month=APRIL,
                    kpi="conversions",
                    target=10,
                    bonus_type="fixed",
                    bonus_amount=Decimal(40),
                    actor=None,
                )
                goal_written.set()
                release_goal.wait(WAIT_SECONDS)  # the month was open when checked; commit comes later
        except BaseException as error:  # reported to the test thread below
            errors.append(error)
        finally:
            connection.close()

    def close() -> None:
        try:
            with scope(program=alice.program):
                close_month(program=alice.program, month=APRIL, now=utc("2026-05-06 10:00"))
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    writer = threading.Thread(target=write_goal)
    writer.start()
    assert goal_written.wait(WAIT_SECONDS)
    closer = threading.Thread(target=close)
    closer.start()
    deadline = time.monotonic() + WAIT_SECONDS
    while waiting_advisory_locks() == 0:  # the close queues behind the goal's transaction
        assert time.monotonic() < deadline, "the close did not wait for the goal being written"
    assert closer.is_alive()
    release_goal.set()
    writer.join()
    closer.join()

    assert errors == []
    with scopes_disabled():
        progress = GoalProgress.objects.get(goal__program=alice.program)
        assert (progress.final, progress.status_confirmed) == (True, "met")
        assert list(BonusEntry.objects.values_list("amount", flat=True)) == [Decimal(40)]
