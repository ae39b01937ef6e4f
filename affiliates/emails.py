"""Emails the affiliates app sends, rendered in the recipient-facing language of the program."""

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.core.signing import TimestampSigner
from django.template.loader import render_to_string
from django.urls import reverse

from affiliates.models import Affiliate, AffiliateStatusChange, Invitation, Program

logger = logging.getLogger(__name__)

INVITATION_SALT = "goalpost.invitation"


def site_url(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def send_affiliate_status_email(*, program: Program, affiliate_id: int, status_change_id: int) -> None:
    """Tell an affiliate that their application or account status changed."""
    affiliate = Affiliate.objects.filter(program=program, pk=affiliate_id).first()
    change = AffiliateStatusChange.objects.filter(program=program, pk=status_change_id).first()
    if affiliate is None or change is None:
        logger.warning("Status email skipped: affiliate %s or change %s is gone.", affiliate_id, status_change_id)
        return
    context = {
        "program": program,
        "affiliate": affiliate,
        "change": change,
        "portal_url": site_url(reverse("portal:home", kwargs={"program_slug": program.slug})),
    }
    subject = render_to_string("affiliates/email/status_subject.txt", context).strip()
    body = render_to_string("affiliates/email/status_body.txt", context)
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [affiliate.email])


def invitation_token(invitation: Invitation) -> str:
    return TimestampSigner(salt=INVITATION_SALT).sign(str(invitation.pk))


def send_invitation_email(*, program: Program, invitation_id: int) -> None:
    """Send a colleague the signed, expiring link that lets them join ``program``."""
    invitation = Invitation.objects.filter(program=program, pk=invitation_id).first()
    if invitation is None or invitation.accepted_at is not None:
        return
    context = {
        "program": program,
        "invitation": invitation,
        "accept_url": site_url(reverse("accept_invitation", kwargs={"token": invitation_token(invitation)})),
        "valid_days": settings.INVITATION_MAX_AGE_SECONDS // 86400,
    }
    subject = render_to_string("affiliates/email/invitation_subject.txt", context).strip()
    body = render_to_string("affiliates/email/invitation_body.txt", context)
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [invitation.email])
