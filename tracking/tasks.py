"""Celery tasks of the tracking app."""

from celery import shared_task
from django.conf import settings

# --- Click buffer (tracking/clicks.py) ----------------------------------------------------------------------
# Not a ProgramTask: one drain serves every program; each row carries its program from the link it came from.


@shared_task(ignore_result=True)
def drain_event_buffer_task() -> int:
    """Move buffered clicks and impressions into the database; beat runs it every second."""
    from tracking.clicks import drain_buffer

    return drain_buffer(limit=settings.CLICK_DRAIN_MAX_PER_RUN)


# --- (other tracking tasks below) --------------------------------------------------------------------------
