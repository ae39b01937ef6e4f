"""Celery tasks of the affiliates app, and the base class every program task runs through."""

import logging
from typing import Any

from celery import shared_task
from celery.contrib.django.task import DjangoTask
from django_scopes import scope

from affiliates.models import Program

logger = logging.getLogger(__name__)


class ProgramTask(DjangoTask):
    """Run a task inside its program's scope: callers pass ``program_id``; ``run`` receives ``program``."""

    typing = False  # run() takes ``program`` while callers send ``program_id``.

    def __call__(self, *args: Any, program_id: int, **kwargs: Any) -> Any:
        program = Program.objects.filter(pk=program_id).first()
        if program is None:
            logger.warning("Task %s skipped: program %s no longer exists.", self.name, program_id)
            return None
        with scope(program=program):
            return self.run(*args, program=program, **kwargs)


@shared_task(base=ProgramTask)
def send_affiliate_status_email_task(*, program: Program, affiliate_id: int, status_change_id: int) -> None:
    from affiliates import emails

    emails.send_affiliate_status_email(program=program, affiliate_id=affiliate_id, status_change_id=status_change_id)


@shared_task(base=ProgramTask)
def send_invitation_email_task(*, program: Program, invitation_id: int) -> None:
    from affiliates import emails

    emails.send_invitation_email(program=program, invitation_id=invitation_id)
