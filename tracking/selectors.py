"""Reads of the tracking app for manager pages and the portal; every one takes the program explicitly."""

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from django.db.models import Count, Prefetch, Q, QuerySet

from affiliates.listing import sort_orders
from affiliates.models import Affiliate, AffiliateStatus, Program
from tracking.models import (
    Cap,
    Click,
    CommissionPlan,
    CommissionRule,
    Conversion,
    ConversionEvent,
    ConversionStatus,
    Coupon,
    CurrencyRate,
    Link,
    Offer,
    PostbackAttempt,
)

NEWEST_FIRST = ("-created_at", "-pk")  # among equals, in either direction
CONVERSION_SORTS = sort_orders(
    ("time", ("created_at", "pk")),
    ("amount", ("revenue", "pk")),
    ("commission", ("commission", "pk")),
    ("status", ("status",), NEWEST_FIRST),
    ("kind", ("kind",), NEWEST_FIRST),
    ("affiliate", ("affiliate__name",), NEWEST_FIRST),
)
DEFAULT_CONVERSION_SORT = "-time"

CLICK_SORTS = sort_orders(
    ("time", ("created_at", "pk")),
    ("affiliate", ("affiliate__name",), NEWEST_FIRST),
    ("source", ("source",), NEWEST_FIRST),
)
DEFAULT_CLICK_SORT = "-time"

LINK_SORTS = sort_orders(
    ("created", ("created_at", "pk")),
    ("affiliate", ("affiliate__name",), NEWEST_FIRST),
    ("offer", ("offer__name",), NEWEST_FIRST),
    ("status", ("status",), NEWEST_FIRST),
)
DEFAULT_LINK_SORT = "-created"


def local_day_bounds(program: Program, start: date | None, end: date | None) -> tuple[datetime | None, ...]:
    """UTC-aware instants for ``[start, end]`` as whole days of the program's calendar (half-open at the end)."""
    zone = ZoneInfo(program.timezone)
    low = datetime.combine(start, time.min, tzinfo=zone) if start else None
    high = datetime.combine(end, time.max, tzinfo=zone) if end else None
    return low, high


def offers_for_list(*, program: Program) -> QuerySet[Offer]:
    """Offers of ``program`` with how many links each has, by name."""
    return Offer.objects.filter(program=program).annotate(link_count=Count("links")).order_by("name", "pk")


def active_offers(*, program: Program) -> QuerySet[Offer]:
    return Offer.objects.filter(program=program, status=Offer.Status.ACTIVE).order_by("name", "pk")


def affiliates_for_choice(*, program: Program, approved_only: bool = False) -> QuerySet[Affiliate]:
    queryset = Affiliate.objects.filter(program=program)
    if approved_only:
        queryset = queryset.filter(status=AffiliateStatus.APPROVED)
    return queryset.order_by("name", "pk")


def links_for_list(
    *,
    program: Program,
    affiliate_id: int | None = None,
    offer_id: int | None = None,
    status: str = "",
    search: str = "",
    sort: str = DEFAULT_LINK_SORT,
) -> QuerySet[Link]:
    """Links of ``program`` with their offer and affiliate, filtered and in a stable order."""
    queryset = Link.objects.filter(program=program).select_related("offer", "affiliate")
    if affiliate_id:
        queryset = queryset.filter(affiliate_id=affiliate_id)
    if offer_id:
        queryset = queryset.filter(offer_id=offer_id)
    if status:
        queryset = queryset.filter(status=status)
    if search:
        queryset = queryset.filter(Q(code=search) | Q(name__icontains=search))
    return queryset.order_by(*LINK_SORTS.get(sort, LINK_SORTS[DEFAULT_LINK_SORT]))


def clicks_for_list(
    *,
    program: Program,
    affiliate_id: int | None = None,
    offer_id: int | None = None,
    source: str = "",
    sub_id: str = "",
    bots: str = "",
    start: date | None = None,
    end: date | None = None,
    sort: str = DEFAULT_CLICK_SORT,
) -> QuerySet[Click]:
    """Clicks of ``program``, newest first by default; ``sub_id`` matches any of sub1–sub5 exactly."""
    queryset = Click.objects.filter(program=program).select_related("affiliate", "offer", "link")
    if affiliate_id:
        queryset = queryset.filter(affiliate_id=affiliate_id)
    if offer_id:
        queryset = queryset.filter(offer_id=offer_id)
    if source:
        queryset = queryset.filter(source=source)
    if sub_id:
        queryset = queryset.filter(Q(sub1=sub_id) | Q(sub2=sub_id) | Q(sub3=sub_id) | Q(sub4=sub_id) | Q(sub5=sub_id))
    if bots == "exclude":
        queryset = queryset.filter(is_bot=False)
    elif bots == "only":
        queryset = queryset.filter(is_bot=True)
    low, high = local_day_bounds(program, start, end)
    if low:
        queryset = queryset.filter(created_at__gte=low)
    if high:
        queryset = queryset.filter(created_at__lte=high)
    return queryset.order_by(*CLICK_SORTS.get(sort, CLICK_SORTS[DEFAULT_CLICK_SORT]))


def conversions_for_list(
    *,
    program: Program,
    status: str = "",
    kind: str = "",
    affiliate_id: int | None = None,
    offer_id: int | None = None,
    source: str = "",
    search: str = "",
    in_review: bool = False,
    start: date | None = None,
    end: date | None = None,
    sort: str = DEFAULT_CONVERSION_SORT,
) -> QuerySet[Conversion]:
    """Conversions of ``program`` with affiliate, offer and rule loaded, filtered and in a stable order."""
    queryset = Conversion.objects.filter(program=program).select_related("affiliate", "offer", "commission_rule")
    if status:
        queryset = queryset.filter(status=status)
    if kind:
        queryset = queryset.filter(kind=kind)
    if affiliate_id:
        queryset = queryset.filter(affiliate_id=affiliate_id)
    if offer_id:
        queryset = queryset.filter(offer_id=offer_id)
    if source:
        queryset = queryset.filter(source=source)
    if search:
        queryset = queryset.filter(Q(order_id=search) | Q(customer_id=search) | Q(coupon__iexact=search))
    if in_review:
        queryset = queryset.filter(in_review=True)
    low, high = local_day_bounds(program, start, end)
    if low:
        queryset = queryset.filter(created_at__gte=low)
    if high:
        queryset = queryset.filter(created_at__lte=high)
    return queryset.order_by(*CONVERSION_SORTS.get(sort, CONVERSION_SORTS[DEFAULT_CONVERSION_SORT]))


def review_queue(*, program: Program) -> QuerySet[Conversion]:
    """Pending conversions a fraud signal sent to review, oldest first so nothing waits forever."""
    return (
        Conversion.objects.filter(program=program, status=ConversionStatus.PENDING, in_review=True)
        .select_related("affiliate", "offer")
        .order_by("created_at", "pk")
    )


def conversion_events(*, program: Program, conversion: Conversion) -> QuerySet[ConversionEvent]:
    return ConversionEvent.objects.filter(program=program, conversion=conversion).select_related("actor")


def conversion_with_relations(*, program: Program, conversion_id: int) -> Conversion | None:
    return (
        Conversion.objects.filter(program=program, pk=conversion_id)
        .select_related("affiliate", "offer", "link", "commission_rule", "commission_rule__plan")
        .first()
    )


def postback_attempts_for_list(*, program: Program, result: str = "", reason: str = "") -> QuerySet[PostbackAttempt]:
    queryset = PostbackAttempt.objects.filter(program=program).select_related("conversion")
    if result:
        queryset = queryset.filter(result=result)
    if reason:
        queryset = queryset.filter(reason=reason)
    return queryset.order_by("-created_at", "-pk")


def postback_reasons(*, program: Program) -> list[str]:
    """Every refusal reason the postback log of ``program`` holds, for the filter."""
    rows = (
        PostbackAttempt.objects.filter(program=program)
        .exclude(reason="")
        .values_list("reason", flat=True)
        .distinct()
        .order_by("reason")
    )
    return list(rows)


def coupons_for_list(*, program: Program) -> QuerySet[Coupon]:
    return Coupon.objects.filter(program=program).select_related("affiliate", "offer").order_by("code", "pk")


def rates_for_list(*, program: Program, currency: str = "") -> QuerySet[CurrencyRate]:
    queryset = CurrencyRate.objects.filter(program=program)
    if currency:
        queryset = queryset.filter(currency=currency)
    return queryset.order_by("-day", "currency", "pk")


def rate_currencies(*, program: Program) -> list[str]:
    return list(
        CurrencyRate.objects.filter(program=program).values_list("currency", flat=True).distinct().order_by("currency")
    )


def plans_with_rules(*, program: Program) -> QuerySet[CommissionPlan]:
    """Commission plans of ``program``, default first, each with its rules and their scope loaded."""
    rules = CommissionRule.objects.filter(program=program).select_related("offer", "affiliate").order_by("kind", "pk")
    return (
        CommissionPlan.objects.filter(program=program)
        .prefetch_related(Prefetch("rules", queryset=rules))
        .order_by("-is_default", "name", "pk")
    )


def caps_for_list(*, program: Program) -> QuerySet[Cap]:
    return (
        Cap.objects.filter(program=program)
        .select_related("offer", "affiliate")
        .order_by("offer__name", "affiliate__name", "metric", "period", "pk")
    )


def own_links(*, program: Program, affiliate: Affiliate) -> QuerySet[Link]:
    """The links of one affiliate, newest first; never anyone else's."""
    return Link.objects.filter(program=program, affiliate=affiliate).select_related("offer").order_by("-created_at")


def own_clicks(*, program: Program, affiliate: Affiliate) -> QuerySet[Click]:
    return (
        Click.objects.filter(program=program, affiliate=affiliate)
        .select_related("offer", "link")
        .order_by("-created_at", "-pk")
    )


def own_conversions(*, program: Program, affiliate: Affiliate, status: str = "") -> QuerySet[Conversion]:
    queryset = Conversion.objects.filter(program=program, affiliate=affiliate).select_related("offer")
    if status:
        queryset = queryset.filter(status=status)
    return queryset.order_by("-created_at", "-pk")
