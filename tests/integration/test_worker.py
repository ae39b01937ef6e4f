"""Tasks enqueued by the app run in a separate Celery worker process, on PostgreSQL and Redis."""

import pytest
from django.conf import settings
from django_scopes import scope, scopes_disabled

from affiliates.models import Affiliate, AffiliateStatus
from affiliates.services import change_affiliate_status
from affiliates.tasks import send_affiliate_status_email_task
from config.celery import app
from tests.factories import ProgramFactory

pytestmark = pytest.mark.integration


def approve(application) -> None:
    with scope(program=application.program):
        change_affiliate_status(
            program=application.program,
            affiliate=application.applicant,
            to_status=AffiliateStatus.APPROVED,
            changed_by=application.manager,
        )


def test_status_email_sent_by_worker_after_approval_commits(worker, application, mailoutbox):
    assert settings.CELERY_TASK_ALWAYS_EAGER is False
    assert app.conf.task_always_eager is False

    # No outer transaction here: the service's own atomic block commits, then the task is published.
    approve(application)

    messages = worker.wait_for_messages(count=1)
    assert [message["To"] for message in messages] == [application.applicant.email]
    assert messages[0]["Subject"] == "Harbor Supplies: your partner account is Approved"
    body = messages[0].get_payload(decode=True).decode()
    assert "your partner account with Harbor Supplies is now: Approved." in body.splitlines()
    # The task ran in the worker, not inline in this process.
    assert mailoutbox == []
    with scopes_disabled():
        assert Affiliate.objects.get(pk=application.applicant.pk).status == AffiliateStatus.APPROVED


def test_task_for_missing_program_is_skipped_and_worker_goes_on(worker, application, mailoutbox):
    gone = ProgramFactory(slug="gone")
    gone_id = gone.pk
    gone.delete()

    send_affiliate_status_email_task.delay(program_id=gone_id, affiliate_id=1, status_change_id=1)
    # One solo worker on one queue takes tasks in order: when this email arrives, the first task is done.
    approve(application)

    messages = worker.wait_for_messages(count=1)
    assert [message["To"] for message in messages] == [application.applicant.email]
    assert mailoutbox == []
    log = worker.log()
    assert f"Task affiliates.tasks.send_affiliate_status_email_task skipped: program {gone_id} no longer exists." in log
    assert "Traceback" not in log
    assert worker.process.poll() is None
