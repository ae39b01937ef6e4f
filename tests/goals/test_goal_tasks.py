"""The goals' Celery tasks: thin, program-scoped, safe to repeat, and scheduled by beat."""

from datetime import date
from decimal import Decimal

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django_scopes import scopes_disabled

from config.celery import app
from goals.models import BonusEntry, ClawbackEntry, GoalProgress, MonthClose, Notification
from goals.tasks import (
    close_month_task,
    record_all_clawbacks_task,
    refresh_goal_progress_task,
    send_notification_email_task,
)
from tests.factories import ProgramFactory
from tests.goals.builders import APRIL, make_goal, put_stats, utc

pytestmark = pytest.mark.django_db

GOAL_BEAT_TASKS = {
    "goals-refresh-progress": "goals.tasks.refresh_all_goal_progress_task",
    "goals-close-due-months": "goals.tasks.close_due_months_task",
    "goals-record-clawbacks": "goals.tasks.record_all_clawbacks_task",
}


def test_beat_schedules_the_goal_tasks_beside_the_others():
    schedule = settings.CELERY_BEAT_SCHEDULE
    assert {name: schedule[name]["task"] for name in GOAL_BEAT_TASKS} == GOAL_BEAT_TASKS
    app.loader.import_default_modules()
    assert set(GOAL_BEAT_TASKS.values()) <= set(app.tasks)
    assert len(schedule) > len(GOAL_BEAT_TASKS)  # the other apps' entries are still there


def test_refresh_task_for_one_month_and_affiliates(alice):
    goal = make_goal(alice.affiliate, kpi="clicks", target=Decimal(100))
    put_stats(alice.affiliate, date(2026, 4, 3), clicks=40)

    with time_machine.travel(utc("2026-04-16 10:00"), tick=False):
        changed = refresh_goal_progress_task.delay(
            program_id=alice.program.pk, month="2026-04", affiliate_ids=[alice.affiliate.pk]
        ).get()

    assert changed == 1
    with scopes_disabled():
        assert GoalProgress.objects.get(goal=goal).value_provisional == Decimal(40)


def test_close_and_clawback_tasks_repeat_safely(alice, bob):
    make_goal(alice.affiliate, kpi="conversions", target=Decimal(10), bonus_type="fixed", bonus_amount=Decimal(70))
    put_stats(alice.affiliate, date(2026, 4, 20), conversions_approved=12)

    with time_machine.travel(utc("2026-05-06 10:00"), tick=False):
        close_month_task.delay(program_id=alice.program.pk, month="2026-04")
        close_month_task.delay(program_id=alice.program.pk, month="2026-04")
    put_stats(alice.affiliate, date(2026, 4, 20), conversions_approved=2)
    with time_machine.travel(utc("2026-05-10 10:00"), tick=False):
        assert record_all_clawbacks_task.delay().get() == 2  # one task per program
        record_all_clawbacks_task.delay()

    with scopes_disabled():
        assert list(MonthClose.objects.values_list("program_id", "month", "status")) == [
            (alice.program.pk, APRIL, "done")
        ]
        assert list(BonusEntry.objects.values_list("amount", flat=True)) == [Decimal(70)]
        assert list(ClawbackEntry.objects.values_list("amount", "day")) == [(Decimal(70), date(2026, 5, 10))]


def test_tasks_for_a_deleted_program_are_skipped(db, caplog):
    gone = ProgramFactory(slug="gone")
    gone_id = gone.pk
    gone.delete()

    assert close_month_task.delay(program_id=gone_id, month="2026-04").get() is None
    assert refresh_goal_progress_task.delay(program_id=gone_id).get() is None
    assert f"program {gone_id} no longer exists" in caplog.text


def test_email_task_for_a_deleted_notification_sends_nothing(alice):
    with scopes_disabled():
        notification = Notification.objects.create(program=alice.program, user=alice.manager, message="Hello")
        notification_id = notification.pk
        notification.delete()

    assert (
        send_notification_email_task.delay(program_id=alice.program.pk, notification_id=notification_id).get() is False
    )
    assert mail.outbox == []
