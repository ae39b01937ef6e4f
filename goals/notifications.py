"""In-app notifications about goals, each with one email sent after the transaction commits.

Who is told follows the program's GoalSettings: the affiliate's own account and/or the program's owners and
managers. Links point at the goal pages of the issue (the manager board of the month, the portal's goals).
"""

from collections.abc import Iterable
from datetime import date
from decimal import Decimal

from django.db import transaction
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from affiliates.models import MANAGING_ROLES, Affiliate, Membership, Program, User
from goals.kpis import REGISTRY
from goals.models import Goal, GoalKind, GoalStatus, Notification
from goals.selectors import goal_settings_for


def board_path(program: Program, month: date) -> str:
    return f"/p/{program.slug}/goals/{month:%Y-%m}/"


def portal_path(program: Program) -> str:
    return f"/portal/{program.slug}/goals/"


def number(value: Decimal | None) -> str:
    """A Decimal as people write it, to two decimals at most: 100, 5.5, 12.25 (never 100.000000)."""
    if value is None:
        return "—"
    text = f"{value.quantize(Decimal('0.01')):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def goal_name(goal: Goal) -> str:
    if goal.kind == GoalKind.MANUAL:
        return goal.label
    kpi = REGISTRY.get(goal.kpi)
    return str(kpi.label) if kpi else goal.kpi


def month_name(month: date) -> str:
    return date_format(month, "YEAR_MONTH_FORMAT")


def _recipients(*, program: Program, affiliate: Affiliate) -> list[tuple[User, str]]:
    """(user, link) pairs to notify about an affiliate's goal, per the program's settings; each user once."""
    settings = goal_settings_for(program)
    recipients: dict[int, tuple[User, str]] = {}
    if settings.notify_affiliates and affiliate.user_id is not None:
        recipients[affiliate.user_id] = (affiliate.user, portal_path(program))
    if settings.notify_managers:
        memberships = Membership.objects.filter(program=program, role__in=MANAGING_ROLES, user__is_active=True)
        for membership in memberships.select_related("user").order_by("pk"):
            recipients.setdefault(membership.user_id, (membership.user, ""))
    return list(recipients.values())


def notify(
    *, program: Program, recipients: Iterable[tuple[User, str]], message: str, goal: Goal | None = None
) -> list[Notification]:
    """Create one notification per recipient and email each of them once the transaction commits."""
    from goals.tasks import send_notification_email_task

    created = []
    with transaction.atomic():
        for user, url in recipients:
            notification = Notification.objects.create(
                program=program, user=user, goal=goal, message=message[:500], url=url
            )
            send_notification_email_task.delay_on_commit(program_id=program.pk, notification_id=notification.pk)
            created.append(notification)
    return created


def notify_about_affiliate(
    *, program: Program, affiliate: Affiliate, message: str, goal: Goal | None = None, month: date | None = None
) -> list[Notification]:
    """Notify the affiliate (portal link) and the managers (board link of ``month``) per the program's settings."""
    recipients = [
        (user, url or (board_path(program, month) if month else f"/p/{program.slug}/"))
        for user, url in _recipients(program=program, affiliate=affiliate)
    ]
    return notify(program=program, recipients=recipients, message=message, goal=goal)


def notify_goal_status(*, program: Program, goal: Goal, state) -> list[Notification]:
    """Tell the affiliate and the managers that a goal is met or at risk (``state``: goals.progress values)."""
    values = {
        "affiliate": goal.affiliate.name,
        "goal": goal_name(goal),
        "month": month_name(goal.month),
        "value": number(state.value_provisional),
        "target": number(goal.target),
        "projection": number(state.projection),
    }
    if state.status == GoalStatus.MET:
        message = _("%(affiliate)s met the goal “%(goal)s” for %(month)s: %(value)s of %(target)s.") % values
    else:
        message = (
            _("%(affiliate)s: the goal “%(goal)s” for %(month)s is at risk, heading for %(projection)s of %(target)s.")
            % values
        )
    return notify_about_affiliate(
        program=program, affiliate=goal.affiliate, message=message, goal=goal, month=goal.month
    )
