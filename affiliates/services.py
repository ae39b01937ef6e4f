"""Writes of the affiliates app: programs, applications, approvals, members and invitations."""

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.signing import BadSignature, SignatureExpired, TimestampSigner
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django_scopes import scope, scopes_disabled

from affiliates.emails import INVITATION_SALT
from affiliates.models import (
    MANAGING_ROLES,
    Affiliate,
    AffiliateStatus,
    AffiliateStatusChange,
    Invitation,
    Membership,
    Program,
    Role,
    User,
)
from affiliates.tasks import send_affiliate_status_email_task, send_invitation_email_task

# Which status may follow which; anything else is refused with a clear message.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    AffiliateStatus.PENDING: frozenset({AffiliateStatus.APPROVED, AffiliateStatus.REJECTED}),
    AffiliateStatus.APPROVED: frozenset({AffiliateStatus.SUSPENDED}),
    AffiliateStatus.SUSPENDED: frozenset({AffiliateStatus.APPROVED}),
    AffiliateStatus.REJECTED: frozenset({AffiliateStatus.APPROVED}),
}
REASON_REQUIRED = frozenset({AffiliateStatus.REJECTED, AffiliateStatus.SUSPENDED})


def create_program(
    *, name: str, slug: str, timezone_name: str, currency: str, owner: User, auto_approve_affiliates: bool = False
) -> Program:
    """Create a program and make ``owner`` its first owner."""
    program = Program(
        name=name,
        slug=slug,
        timezone=timezone_name,
        currency=currency.upper(),
        auto_approve_affiliates=auto_approve_affiliates,
    )
    program.full_clean()
    with transaction.atomic():
        program.save()
        with scope(program=program):
            Membership.objects.create(program=program, user=owner, role=Role.OWNER)
    return program


def apply_as_affiliate(
    *,
    program: Program,
    name: str,
    email: str,
    website: str = "",
    traffic_sources: str = "",
    country: str = "",
    payout_email: str = "",
    password: str | None = None,
    user: User | None = None,
) -> Affiliate:
    """Record an application to ``program``; a new person also gets an account with ``password``.

    A signed-in ``user`` applies with their own account; otherwise the email must not belong to an
    existing account (they should sign in first), and ``password`` becomes the new account's password.
    """
    email = email.strip().lower()
    if user is not None and user.email.lower() != email:
        raise ValidationError({"email": _("Apply with the email address you are signed in with.")})
    if Affiliate.objects.filter(program=program, email__iexact=email).exists():
        raise ValidationError({"email": _("This email address has already applied to this program.")})
    if user is None:
        if User.objects.filter(email__iexact=email).exists():
            raise ValidationError({"email": _("An account with this email address exists. Sign in first, then apply.")})
        if not password:
            raise ValidationError({"password": _("Choose a password for your account.")})
        validate_password(password, User(email=email, name=name))
    elif Membership.objects.filter(program=program, user=user).exclude(role=Role.AFFILIATE).exists():
        raise ValidationError({"email": _("Program staff cannot apply as affiliates of the same program.")})

    affiliate = Affiliate(
        program=program,
        name=name.strip(),
        email=email,
        website=website,
        traffic_sources=traffic_sources,
        country=country,
        payout_email=payout_email or email,
        terms_accepted_at=timezone.now(),
    )
    try:
        with transaction.atomic():
            if user is None:
                user = User.objects.create_user(email=email, password=password, name=name.strip())
            affiliate.user = user
            affiliate.full_clean()
            affiliate.save()
            Membership.objects.get_or_create(program=program, user=user, defaults={"role": Role.AFFILIATE})
            AffiliateStatusChange.objects.create(
                program=program,
                affiliate=affiliate,
                from_status="",
                to_status=AffiliateStatus.PENDING,
                reason=_("Application received."),
            )
    except IntegrityError as error:
        # Two submissions of the same form raced; the loser gets the same message as a duplicate.
        raise ValidationError({"email": _("This email address has already applied to this program.")}) from error
    if program.auto_approve_affiliates:
        change_affiliate_status(
            program=program,
            affiliate=affiliate,
            to_status=AffiliateStatus.APPROVED,
            reason=_("Approved automatically."),
            changed_by=None,
        )
        affiliate.refresh_from_db()
    return affiliate


# Bumped whenever an affiliate's status changes. Whatever caches something a status decides (the click
# path's links: a suspended affiliate's link must stop redirecting) reads it along and reloads on a change;
# this app cannot reach into theirs (imports flow affiliates <- tracking).
STATUS_GENERATION_KEY = "affiliates:status-generation"


def status_generation_changed() -> None:
    try:
        cache.incr(STATUS_GENERATION_KEY)
    except ValueError:  # not set yet, or evicted
        # A number no cached entry can hold yet, even after an eviction: the time in milliseconds.
        cache.set(STATUS_GENERATION_KEY, int(timezone.now().timestamp() * 1000), None)


def change_affiliate_status(
    *, program: Program, affiliate: Affiliate, to_status: str, reason: str = "", changed_by: User | None
) -> AffiliateStatusChange:
    """Move an affiliate of ``program`` to ``to_status``, record who and why, and email the affiliate."""
    if affiliate.program_id != program.pk:
        raise ValidationError(_("This affiliate does not belong to this program."))
    reason = reason.strip()
    if to_status in REASON_REQUIRED and not reason:
        raise ValidationError({"reason": _("Give a reason; the affiliate will see it.")})
    with transaction.atomic():
        # Lock the row so two managers clicking at once cannot both apply a transition.
        current = Affiliate.objects.select_for_update().get(program=program, pk=affiliate.pk)
        if to_status not in ALLOWED_TRANSITIONS.get(current.status, frozenset()):
            raise ValidationError(
                _("An affiliate who is %(from)s cannot be %(to)s.")
                % {
                    "from": AffiliateStatus(current.status).label.lower(),
                    "to": AffiliateStatus(to_status).label.lower()
                    if to_status in AffiliateStatus.values
                    else to_status,
                }
            )
        change = AffiliateStatusChange.objects.create(
            program=program,
            affiliate=current,
            from_status=current.status,
            to_status=to_status,
            reason=reason,
            changed_by=changed_by,
        )
        Affiliate.objects.filter(pk=current.pk).update(
            status=to_status, status_reason=reason, updated_at=timezone.now()
        )
        send_affiliate_status_email_task.delay_on_commit(
            program_id=program.pk, affiliate_id=current.pk, status_change_id=change.pk
        )
        transaction.on_commit(status_generation_changed)
    affiliate.status = to_status
    affiliate.status_reason = reason
    return change


def invite_member(*, program: Program, email: str, role: str, invited_by: User) -> Invitation:
    """Invite a colleague by email to a staff role in ``program``."""
    if not Membership.objects.filter(program=program, user=invited_by, role=Role.OWNER).exists():
        raise ValidationError(_("Only owners can invite members."))
    if role not in {Role.OWNER, Role.MANAGER, Role.ANALYST}:
        raise ValidationError({"role": _("Choose owner, manager or analyst.")})
    email = email.strip().lower()
    if Membership.objects.filter(program=program, user__email__iexact=email).exists():
        raise ValidationError({"email": _("This person is already a member of the program.")})
    with transaction.atomic():
        invitation = Invitation.objects.create(program=program, email=email, role=role, invited_by=invited_by)
        send_invitation_email_task.delay_on_commit(program_id=program.pk, invitation_id=invitation.pk)
    return invitation


def invitation_from_token(token: str) -> Invitation:
    """Return the open invitation a signed link points to, or raise ValidationError saying why not."""
    signer = TimestampSigner(salt=INVITATION_SALT)
    try:
        invitation_id = signer.unsign(token, max_age=settings.INVITATION_MAX_AGE_SECONDS)
    except SignatureExpired as error:
        raise ValidationError(_("This invitation has expired. Ask the program owner for a new one.")) from error
    except BadSignature as error:
        raise ValidationError(_("This invitation link is not valid.")) from error
    # The program is not known until the signed id is read, so this one lookup runs unscoped on purpose.
    with scopes_disabled():
        invitation = Invitation.objects.filter(pk=int(invitation_id)).select_related("program").first()
    if invitation is None or invitation.accepted_at is not None:
        raise ValidationError(_("This invitation has already been used."))
    return invitation


def accept_invitation(*, invitation: Invitation, name: str, password: str | None) -> User:
    """Join the invited program: create the account (or reuse it) and grant the invited role."""
    program = invitation.program
    with transaction.atomic():
        locked = Invitation.objects.select_for_update().get(program=program, pk=invitation.pk)
        if locked.accepted_at is not None:
            raise ValidationError(_("This invitation has already been used."))
        user = User.objects.filter(email__iexact=locked.email).first()
        if user is None:
            if not password:
                raise ValidationError({"password1": _("Choose a password.")})
            validate_password(password, User(email=locked.email, name=name))
            user = User.objects.create_user(email=locked.email, password=password, name=name)
        Membership.objects.update_or_create(program=program, user=user, defaults={"role": locked.role})
        locked.accepted_at = timezone.now()
        locked.save(update_fields=["accepted_at"])
    return user


def can_manage(membership: Membership | None) -> bool:
    return membership is not None and membership.role in MANAGING_ROLES
