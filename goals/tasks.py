"""Celery tasks of the goals app."""

import logging

from celery import shared_task
from django.conf import settings
from django.utils import timezone
from django_scopes import scopes_disabled

from affiliates.models import Program
from affiliates.tasks import ProgramTask

logger = logging.getLogger(__name__)

# --- Rollups (goals/rollups.py, docs/rollups.md) ---------------------------------------------------------------
# The record of what to recompute lives in PostgreSQL (tracking.StatsDirtyKey); these tasks only trigger the
# work, so a lost message, a killed worker or a Redis restart delays a recompute and never loses it.


@shared_task(ignore_result=True)
def process_rollups_task() -> int:
    """Recompute the DailyStats cells marked dirty since the last run; beat sends it every second."""
    from goals.rollups import drain_dirty_keys

    return drain_dirty_keys(seconds=settings.ROLLUP_RUN_SECONDS)


@shared_task(ignore_result=True)
def sweep_rollups_task() -> int:
    """The safety net behind process_rollups_task: works off any backlog and says so when it finds one."""
    from goals.rollups import dirty_backlog, drain_dirty_keys

    count, oldest = dirty_backlog()
    if count and oldest is not None:
        age = (timezone.now() - oldest).total_seconds()
        if age > settings.ROLLUP_BACKLOG_WARN_SECONDS:
            logger.warning("Rollup backlog: %d dirty keys, the oldest marked %.0f s ago.", count, age)
    return drain_dirty_keys(seconds=settings.ROLLUP_SWEEP_SECONDS)


@shared_task(ignore_result=True)
def reconcile_stats_task() -> int:
    """Nightly: enqueue a reconciliation of the last ROLLUP_RECONCILE_DAYS days for every program."""
    with scopes_disabled():
        program_ids = list(Program.objects.order_by("pk").values_list("pk", flat=True))
    for program_id in program_ids:
        reconcile_program_stats_task.delay(program_id=program_id)
    return len(program_ids)


@shared_task(base=ProgramTask, ignore_result=True)
def reconcile_program_stats_task(*, program: Program, days: int | None = None) -> int:
    """Recompute one program's recent days from raw events, record the drift found (in a JobRun) and fix it."""
    from goals.rollups import reconcile_stats

    job = reconcile_stats(program=program, days=days)
    return job.pk


@shared_task(base=ProgramTask, ignore_result=True)
def rebuild_stats_task(*, program: Program, first_month: str, last_month: str) -> int:
    """Rebuild a program's DailyStats for a month range (YYYY-MM) in the background; progress in a JobRun."""
    from goals.periods import month_from_text
    from goals.rollups import rebuild_stats

    first, last = month_from_text(first_month), month_from_text(last_month)
    return rebuild_stats(program=program, first_month=first, last_month=last).pk


# --- (other goals tasks below) ------------------------------------------------------------------------------------
# Goal progress, month close, clawbacks and notification emails (goals/progress.py, goals/closing.py).
# Beat sends the fan-out tasks; each enqueues one task per program that runs in the program's scope.


def _program_ids() -> list[int]:
    with scopes_disabled():
        return list(Program.objects.order_by("pk").values_list("pk", flat=True))


@shared_task(base=ProgramTask, ignore_result=True)
def refresh_goal_progress_task(
    *, program: Program, month: str | None = None, affiliate_ids: list[int] | None = None
) -> int:
    """Refresh the progress of a program's goals in one month (YYYY-MM), or in every open month up to now."""
    from goals.periods import month_from_text
    from goals.progress import refresh_open_months
    from goals.services import refresh_goal_progress

    if month is None:
        return refresh_open_months(program=program)
    return refresh_goal_progress(program=program, month=month_from_text(month), affiliate_ids=affiliate_ids)


@shared_task(ignore_result=True)
def refresh_all_goal_progress_task() -> int:
    """Periodic: refresh every program's open-month goals, so elapsed share, pace and projection follow time."""
    program_ids = _program_ids()
    for program_id in program_ids:
        refresh_goal_progress_task.delay(program_id=program_id)
    return len(program_ids)


@shared_task(base=ProgramTask, ignore_result=True)
def close_month_task(*, program: Program, month: str) -> int:
    """Close one month (YYYY-MM) of a program; running it again changes nothing."""
    from goals.periods import month_from_text
    from goals.services import close_month

    return close_month(program=program, month=month_from_text(month)).pk


@shared_task(base=ProgramTask, ignore_result=True, acks_late=True)
def close_program_due_months_task(*, program: Program) -> int:
    """Close the program's months whose grace period is over (and resume any close a dead worker left)."""
    from goals.services import close_due_months

    return len(close_due_months(program=program))


@shared_task(ignore_result=True)
def close_due_months_task() -> int:
    """Periodic fan-out: every program closes its due months in its own task and its own time zone."""
    program_ids = _program_ids()
    for program_id in program_ids:
        close_program_due_months_task.delay(program_id=program_id)
    return len(program_ids)


@shared_task(base=ProgramTask, ignore_result=True)
def record_clawbacks_task(*, program: Program) -> int:
    """Claw back bonuses of the program's closed months that reversals have put below target."""
    from goals.services import record_clawbacks_for_closed_months

    return record_clawbacks_for_closed_months(program=program)


@shared_task(ignore_result=True)
def record_all_clawbacks_task() -> int:
    """Periodic fan-out of record_clawbacks_task, the safety net behind the rollups' refresh of closed months."""
    program_ids = _program_ids()
    for program_id in program_ids:
        record_clawbacks_task.delay(program_id=program_id)
    return len(program_ids)


@shared_task(base=ProgramTask, ignore_result=True)
def send_notification_email_task(*, program: Program, notification_id: int) -> bool:
    """Email one in-app notification to its recipient, at most once."""
    from goals.emails import send_notification_email

    return send_notification_email(program=program, notification_id=notification_id)
