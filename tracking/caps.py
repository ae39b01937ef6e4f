"""Conversion and payout caps: which caps apply to a conversion, and whether it would go over one.

Caps count conversions in the program-local day or month of the conversion's own time (KPI.md). A
conversion over a cap is still recorded, as ``rejected`` with reason ``cap_reached``. To hold under
concurrent postbacks, the caller locks the applicable Cap rows (``lock_caps``) inside the transaction that
counts and inserts, so two postbacks for the same cap are counted one after the other and never overshoot.
"""

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from affiliates.models import Program
from tracking.models import Cap, Conversion, ConversionKind, ConversionStatus

COUNTED_STATUSES = (ConversionStatus.PENDING, ConversionStatus.APPROVED)
# A cancellation ends a subscription; it is not a paid action, so caps neither count nor stop it.
UNCAPPED_KINDS = (ConversionKind.CANCELLATION,)
CAP_METRICS = (Cap.Metric.CONVERSIONS, Cap.Metric.PAYOUT)


def local_period(program: Program, moment: datetime, period: str) -> tuple[datetime, datetime]:
    """The half-open ``[start, end)`` of the program-local day or month ``moment`` falls in, as aware instants."""
    zone = ZoneInfo(program.timezone)
    day = moment.astimezone(zone).date()
    if period == Cap.Period.DAY:
        first, end = day, day + timedelta(days=1)
    else:
        first = day.replace(day=1)
        end = (first + timedelta(days=32)).replace(day=1)
    return _local_midnight(first, zone), _local_midnight(end, zone)


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zone)


def applicable_caps(*, program: Program, affiliate_id, offer_id: int | None) -> QuerySet[Cap]:
    """Conversion and payout caps of ``program`` that cover a conversion of this affiliate and offer.

    A cap names an offer, an affiliate, both, or neither (program-wide); an offer cap does not cover a
    conversion without an offer (e.g. one attributed by a coupon that names no offer). ``affiliate_id`` may
    be an ``OuterRef`` to annotate an affiliate query with whether any cap applies.
    """
    return Cap.objects.filter(program=program, metric__in=CAP_METRICS).filter(
        Q(affiliate_id=affiliate_id) | Q(affiliate__isnull=True), Q(offer_id=offer_id) | Q(offer__isnull=True)
    )


def lock_caps(*, program: Program, affiliate_id: int | None, offer_id: int | None) -> list[Cap]:
    """Lock the applicable caps in pk order (a stable order, so two transactions never deadlock on them)."""
    return list(
        applicable_caps(program=program, affiliate_id=affiliate_id, offer_id=offer_id)
        .select_for_update()
        .order_by("pk")
    )


def first_reached_cap(*, program: Program, caps: list[Cap], moment: datetime, commission: Decimal) -> Cap | None:
    """The first of ``caps`` that one more conversion paying ``commission`` at ``moment`` would exceed.

    Usage of every cap is counted in one query: counted (pending or approved) conversions of capped kinds
    that are attributed to an affiliate, in the cap's period, for the cap's offer and/or affiliate.
    """
    if not caps:
        return None
    periods = {cap.pk: local_period(program, moment, cap.period) for cap in caps}
    aggregates = {}
    for cap in caps:
        start, end = periods[cap.pk]
        condition = Q(created_at__gte=start, created_at__lt=end)
        if cap.affiliate_id:
            condition &= Q(affiliate_id=cap.affiliate_id)
        if cap.offer_id:
            condition &= Q(offer_id=cap.offer_id)
        if cap.metric == Cap.Metric.CONVERSIONS:
            aggregates[f"cap_{cap.pk}"] = Count("pk", filter=condition)
        else:
            aggregates[f"cap_{cap.pk}"] = Coalesce(Sum("commission", filter=condition), Decimal("0"))
    start = min(low for low, _high in periods.values())
    end = max(high for _low, high in periods.values())
    usage = (
        Conversion.objects.filter(
            program=program,
            status__in=COUNTED_STATUSES,
            affiliate__isnull=False,
            created_at__gte=start,
            created_at__lt=end,
        )
        .exclude(kind__in=UNCAPPED_KINDS)
        .aggregate(**aggregates)
    )
    for cap in caps:
        used = usage[f"cap_{cap.pk}"] or 0
        adding = 1 if cap.metric == Cap.Metric.CONVERSIONS else commission
        if used + adding > cap.limit:
            return cap
    return None


def describe_cap(cap: Cap) -> str:
    """A short English description of a cap for audit entries: 'conversions ≤ 5 per day for offer #3'."""
    scope = []
    if cap.offer_id:
        scope.append(f"offer #{cap.offer_id}")
    if cap.affiliate_id:
        scope.append(f"affiliate #{cap.affiliate_id}")
    limit = int(cap.limit) if cap.metric == Cap.Metric.CONVERSIONS else cap.limit
    return f"{cap.metric} ≤ {limit} per {cap.period} for {' and '.join(scope) or 'the program'}"
