"""Celery tasks of the tracking app."""

from celery import shared_task
from django.conf import settings

from affiliates.models import Program
from affiliates.tasks import ProgramTask

# --- Click buffer (tracking/clicks.py) ----------------------------------------------------------------------
# Not a ProgramTask: one drain serves every program; each row carries its program from the link it came from.


@shared_task(ignore_result=True)
def drain_event_buffer_task() -> int:
    """Move buffered clicks and impressions into the database; beat runs it every second."""
    from tracking.clicks import drain_buffer

    return drain_buffer(limit=settings.CLICK_DRAIN_MAX_PER_RUN)


# --- (other tracking tasks below) --------------------------------------------------------------------------


# --- Conversions (tracking/services.py) ---------------------------------------------------------------------


@shared_task(base=ProgramTask)
def auto_approve_conversions_task(*, program: Program) -> int:
    """Approve the program's conversions whose hold period is over."""
    from tracking.services import auto_approve_due_conversions

    return auto_approve_due_conversions(program=program)


@shared_task(ignore_result=True)
def auto_approve_all_programs_task() -> int:
    """Beat entry: one auto-approve task per program that has pending conversions outside review."""
    from django_scopes import scopes_disabled

    from tracking.models import Conversion, ConversionStatus

    with scopes_disabled():
        program_ids = list(
            Conversion.objects.filter(status=ConversionStatus.PENDING, in_review=False)
            .order_by()
            .values_list("program_id", flat=True)
            .distinct()
        )
    for program_id in program_ids:
        auto_approve_conversions_task.delay(program_id=program_id)
    return len(program_ids)
