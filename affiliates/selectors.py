"""Reads of the affiliates app that views and the API share."""

from django.db.models import Count, Q, QuerySet
from django_scopes import scopes_disabled

from affiliates.listing import sort_orders
from affiliates.models import Affiliate, AffiliateStatus, AffiliateStatusChange, Membership, Program, User

BY_NAME = ("name", "pk")  # among equals, in either direction
AFFILIATE_SORTS = sort_orders(
    ("name", ("name", "pk")),
    ("applied", ("created_at", "pk")),
    ("status", ("status",), BY_NAME),
    ("country", ("country",), BY_NAME),
    ("tier", ("tier",), BY_NAME),
)
DEFAULT_AFFILIATE_SORT = "-applied"


def affiliates_for_list(
    *, program: Program, search: str = "", status: str = "", sort: str = DEFAULT_AFFILIATE_SORT
) -> QuerySet[Affiliate]:
    """Affiliates of ``program`` filtered by a free-text search and status, in a stable order."""
    queryset = Affiliate.objects.filter(program=program)
    if search:
        queryset = queryset.filter(
            Q(name__icontains=search) | Q(email__icontains=search) | Q(website__icontains=search)
        )
    if status in AffiliateStatus.values:
        queryset = queryset.filter(status=status)
    return queryset.order_by(*AFFILIATE_SORTS.get(sort, AFFILIATE_SORTS[DEFAULT_AFFILIATE_SORT]))


def affiliate_status_counts(*, program: Program) -> dict[str, int]:
    """How many affiliates of ``program`` are in each status (every status present, zero included)."""
    rows = Affiliate.objects.filter(program=program).values("status").annotate(n=Count("pk"))
    counts = dict.fromkeys(AffiliateStatus.values, 0)
    counts.update({row["status"]: row["n"] for row in rows})
    return counts


def affiliate_history(*, program: Program, affiliate: Affiliate) -> QuerySet[AffiliateStatusChange]:
    return AffiliateStatusChange.objects.filter(program=program, affiliate=affiliate).select_related("changed_by")


def memberships_of_user(user: User) -> list[Membership]:
    """Every program ``user`` belongs to, for the program switcher; never another person's programs."""
    if not user.is_authenticated:
        return []
    # The switcher lists memberships across programs by design: the filter is the user, not a program.
    with scopes_disabled():
        return list(Membership.objects.filter(user=user).select_related("program").order_by("program__name"))


def members_of_program(*, program: Program) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(program=program)
        .exclude(role="affiliate")
        .select_related("user")
        .order_by("role", "user__email")
    )
