"""Emails the goals app sends: one per in-app notification, at most once each."""

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.utils import timezone

from affiliates.emails import site_url
from affiliates.models import Program
from goals.models import Notification

logger = logging.getLogger(__name__)


def send_notification_email(*, program: Program, notification_id: int) -> bool:
    """Email a notification to its recipient; returns False when it was already sent (or is gone)."""
    # Claim first by a conditional update: a duplicate or retried task finds nothing to claim.
    claimed = Notification.objects.filter(program=program, pk=notification_id, emailed_at__isnull=True).update(
        emailed_at=timezone.now()
    )
    if not claimed:
        logger.info("Notification %s was already emailed or no longer exists.", notification_id)
        return False
    notification = Notification.objects.select_related("user").get(program=program, pk=notification_id)
    context = {
        "program": program,
        "notification": notification,
        "link": site_url(notification.url) if notification.url else "",
    }
    subject = render_to_string("goals/email/notification_subject.txt", context).strip()
    body = render_to_string("goals/email/notification_body.txt", context)
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [notification.user.email])
    return True
