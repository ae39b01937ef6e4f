"""Who may do what with goals, checked by the services as well as by the views in front of them."""

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from affiliates.models import MANAGING_ROLES, Membership, Program, User


def is_manager(*, program: Program, user: User | None) -> bool:
    return user is not None and Membership.objects.filter(program=program, user=user, role__in=MANAGING_ROLES).exists()


def require_manager(*, program: Program, actor: User | None) -> None:
    """Refuse a goal change by anyone but the program's owners and managers (None: the system itself)."""
    if actor is not None and not is_manager(program=program, user=actor):
        raise ValidationError(_("Only the program's owners and managers can do this."))
