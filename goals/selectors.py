"""Reads of the goals app: KPI values for any program, period and grouping, from the daily rollups."""

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum

from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncMonth, TruncWeek

from affiliates.models import AffiliateStatus, Program
from goals.kpis import ZERO, Counters, View, empty_counters, evaluate
from goals.models import DailyStats
from goals.periods import Period


class GroupBy(StrEnum):
    NONE = "none"
    AFFILIATE = "affiliate"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


# Counters that exist once per status in DailyStats; the view sums pending + approved or takes approved.
BY_STATUS = {
    "conversions": "conversions",
    "sales": "sales",
    "leads": "leads",
    "engagements": "engagements",
    "revenue": "revenue",
    "commission_conversions": "commission",
    "new_customers": "new_customers",
}
PLAIN = (
    "clicks",
    "unique_clicks",
    "impressions",
    "bonuses",
    "fixed_fees",
    "reversals",
    "cancellations",
    "customers_lost",
)
STATUSES = ("pending", "approved")
# Sums over all history before the period (churn's customers active at its start) or up to its end (LTV).
BEFORE = ("new_customers_pending", "new_customers_approved", "customers_lost")
TO_DATE = ("new_customers_pending", "new_customers_approved", "customer_revenue_pending", "customer_revenue_approved")


def _period_fields() -> list[str]:
    return [
        *PLAIN,
        *(f"{column}_{status}" for column in BY_STATUS.values() for status in STATUSES),
        "customer_revenue_pending",
        "customer_revenue_approved",
    ]


def _counters(row: dict, view: View) -> dict[str, Decimal]:
    """Turn one aggregate row into the view's counters (see goals.kpis.COUNTER_NAMES)."""
    statuses = STATUSES if view == View.PROVISIONAL else ("approved",)

    def total(prefix: str, suffix: str = "") -> Decimal:
        return sum((Decimal(row.get(f"{prefix}_{status}{suffix}") or 0) for status in statuses), ZERO)

    counters = empty_counters()
    for name in PLAIN:
        counters[name] = Decimal(row.get(name) or 0)
    for name, column in BY_STATUS.items():
        counters[name] = total(column)
    counters["customers_acquired_before"] = total("new_customers", "__before")
    counters["customers_lost_before"] = Decimal(row.get("customers_lost__before") or 0)
    counters["customer_revenue_to_date"] = total("customer_revenue", "__to_date")
    counters["customers_acquired_to_date"] = total("new_customers", "__to_date")
    counters["active_affiliates"] = Decimal(row.get("active_affiliates") or 0)
    return counters


def _aggregates(period: Period) -> dict:
    in_period = Q(day__gte=period.first)
    active = (
        in_period
        & Q(affiliate__status=AffiliateStatus.APPROVED)
        & (Q(clicks__gt=0) | Q(conversions_pending__gt=0) | Q(conversions_approved__gt=0))
    )
    aggregates = {name: Sum(name, filter=in_period) for name in _period_fields()}
    aggregates |= {f"{name}__before": Sum(name, filter=~in_period) for name in BEFORE}
    aggregates |= {f"{name}__to_date": Sum(name) for name in TO_DATE}
    aggregates["active_affiliates"] = Count("affiliate", filter=active, distinct=True)
    return aggregates


def _aliased(aggregates: dict) -> tuple[dict, dict[str, str]]:
    """Aggregates under neutral aliases, and the way back to their names.

    An aggregate named like a DailyStats column ("clicks") shadows the column for every later aggregate of
    the same query (Django then refuses Sum("clicks") as "an aggregate of an aggregate"), so the query uses
    aliases and the rows are renamed afterwards.
    """
    names = {f"aggregate_{index}": name for index, name in enumerate(aggregates)}
    return {alias: aggregates[name] for alias, name in names.items()}, names


def _renamed(row: dict, names: dict[str, str]) -> dict:
    return {names.get(key, key): value for key, value in row.items()}


def counters_for(
    *,
    program: Program,
    period: Period,
    group_by: GroupBy = GroupBy.AFFILIATE,
    affiliate_ids: Iterable[int] | None = None,
    view: View = View.PROVISIONAL,
) -> dict[object, dict[str, Decimal]]:
    """Counters per group for a program-local period, in one query.

    Keys: affiliate ids (AFFILIATE), local dates (DAY; WEEK and MONTH keys are the bucket's first day),
    or None (NONE). Groups without any rollup row are absent; callers treat them as all-zero.
    """
    rows = DailyStats.objects.filter(program=program, day__lt=period.end)
    if affiliate_ids is not None:
        rows = rows.filter(affiliate_id__in=list(affiliate_ids))
    aggregates, names = _aliased(_aggregates(period))
    if group_by == GroupBy.NONE:
        return {None: _counters(_renamed(rows.aggregate(**aggregates), names), view)}
    if group_by == GroupBy.AFFILIATE:
        grouped = rows.values("affiliate_id").annotate(**aggregates).order_by()
        return {row["affiliate_id"]: _counters(_renamed(row, names), view) for row in grouped}
    return _time_buckets(rows, period, group_by, view)


def _bucket(day: date, group_by: GroupBy) -> date:
    if group_by == GroupBy.WEEK:
        return day - timedelta(days=day.weekday())
    if group_by == GroupBy.MONTH:
        return day.replace(day=1)
    return day


def _time_buckets(rows, period: Period, group_by: GroupBy, view: View) -> dict[date, dict[str, Decimal]]:
    """Per-bucket counters; the cumulative ones (churn, LTV) are running sums over earlier buckets."""
    trunc = {GroupBy.DAY: F("day"), GroupBy.WEEK: TruncWeek("day"), GroupBy.MONTH: TruncMonth("day")}[group_by]
    in_period = Q(day__gte=period.first)
    active = (
        in_period
        & Q(affiliate__status=AffiliateStatus.APPROVED)
        & (Q(clicks__gt=0) | Q(conversions_pending__gt=0) | Q(conversions_approved__gt=0))
    )
    fields = sorted(set(_period_fields()) | set(BEFORE) | set(TO_DATE))
    bucketed = rows.annotate(bucket=trunc)
    aggregates, names = _aliased(
        {name: Sum(name) for name in fields} | {"active_affiliates": Count("affiliate", filter=active, distinct=True)}
    )
    grouped = bucketed.values("bucket").annotate(**aggregates).order_by("bucket")
    running: dict[str, Decimal] = defaultdict(Decimal)
    result = {}
    for aliased_row in grouped:
        row = _renamed(aliased_row, names)
        bucket = row["bucket"]
        for name in BEFORE:
            row[f"{name}__before"] = running[name]
        for name in TO_DATE:
            running_total = running[f"to_date:{name}"] + Decimal(row.get(name) or 0)
            row[f"{name}__to_date"] = running_total
            running[f"to_date:{name}"] = running_total
        for name in BEFORE:
            running[name] += Decimal(row.get(name) or 0)
        if bucket >= _bucket(period.first, group_by):
            result[bucket] = _counters(row, view)
    return result


def kpi_values(
    *,
    program: Program,
    period: Period,
    kpis: list[str] | None = None,
    group_by: GroupBy = GroupBy.AFFILIATE,
    affiliate_ids: Iterable[int] | None = None,
    view: View = View.PROVISIONAL,
) -> dict[object, dict[str, Decimal | None]]:
    """KPI values per group (see counters_for) computed through the one registry."""
    grouped = counters_for(program=program, period=period, group_by=group_by, affiliate_ids=affiliate_ids, view=view)
    if affiliate_ids is not None and group_by == GroupBy.AFFILIATE:
        for affiliate_id in affiliate_ids:
            grouped.setdefault(affiliate_id, empty_counters())
    return {key: evaluate(counters, kpis) for key, counters in grouped.items()}


def totals(counters: Iterable[Counters]) -> dict[str, Decimal]:
    """Sum several affiliates' counters for a totals row: counters are additive by construction.

    (active_affiliates is a distinct count: summing it is right across affiliates, not across time buckets.)
    """
    summed = empty_counters()
    for group in counters:
        for name, value in group.items():
            summed[name] += value
    return summed
