"""Reads of the goals app: KPI values for any program, period and grouping, from the daily rollups."""

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import TruncMonth, TruncWeek

from affiliates.models import Affiliate, AffiliateStatus, Program
from goals.kpis import REGISTRY, ZERO, Counters, Unit, View, empty_counters, evaluate
from goals.models import Benchmark, BonusEntry, ClawbackEntry, DailyStats, Goal, GoalSettings, MonthClose
from goals.periods import Period, month_start, previous_month


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


# ---------------------------------------------------------------------------------------------------------------
# Goals: settings, closed months, the month's goals with progress, the bonus ledger per day, benchmarks,
# suggested targets.
# ---------------------------------------------------------------------------------------------------------------


def goal_settings_for(program: Program) -> GoalSettings:
    """The program's goal settings, or the defaults (unsaved) when it never changed them."""
    return GoalSettings.objects.filter(program=program).first() or GoalSettings(program=program)


def month_is_closed(*, program: Program, month: date) -> bool:
    """Whether a month's close has begun; from then on its goals are read-only."""
    return MonthClose.objects.filter(program=program, month=month_start(month)).exists()


def goal_progress_for_month(
    *, program: Program, month: date, affiliate_ids: Iterable[int] | None = None
) -> QuerySet[Goal]:
    """A month's goals with their affiliate and stored progress (``goal.progress`` may be missing), for boards."""
    goals = Goal.objects.filter(program=program, month=month_start(month)).select_related("affiliate", "progress")
    if affiliate_ids is not None:
        goals = goals.filter(affiliate_id__in=list(affiliate_ids))
    return goals.order_by("affiliate__name", "affiliate_id", "kind", "kpi", "label")


def bonus_totals_by_day(
    *, program: Program, first: date, end: date, affiliate_ids: Iterable[int] | None = None
) -> dict[tuple[int, date], Decimal]:
    """Bonuses minus clawbacks per (affiliate id, local day) in [first, end): the DailyStats.bonuses column.

    Two queries whatever the range; keys with nothing booked are absent.
    """
    totals: dict[tuple[int, date], Decimal] = defaultdict(Decimal)
    for model, sign in ((BonusEntry, 1), (ClawbackEntry, -1)):
        rows = model.objects.filter(program=program, day__gte=first, day__lt=end)
        if affiliate_ids is not None:
            rows = rows.filter(affiliate_id__in=list(affiliate_ids))
        for row in rows.values("affiliate_id", "day").annotate(total=Sum("amount")).order_by():
            totals[(row["affiliate_id"], row["day"])] += sign * row["total"]
    return dict(totals)


def bonus_total_by_day(*, program: Program, affiliate_id: int, day: date) -> Decimal:
    """Bonuses awarded minus clawbacks booked on one affiliate's local day, for the rollup of that day."""
    totals = bonus_totals_by_day(program=program, first=day, end=day + timedelta(days=1), affiliate_ids=[affiliate_id])
    return totals.get((affiliate_id, day), ZERO)


@dataclass(frozen=True)
class BenchmarkRange:
    """What is average (a range; low == high for a single figure) and what is optimal for a KPI."""

    average_low: Decimal
    average_high: Decimal
    optimal: Decimal

    def rating(self, value: Decimal | None, *, lower_is_better: bool) -> str | None:
        """ "optimal", "average" or "below" for a value; None when the value is undefined."""
        if value is None:
            return None
        if lower_is_better:
            if value <= self.optimal:
                return "optimal"
            return "average" if value <= self.average_high else "below"
        if value >= self.optimal:
            return "optimal"
        return "average" if value >= self.average_low else "below"


# KPI.md's benchmark table; a program's Benchmark rows override these per KPI.
DEFAULT_BENCHMARKS = {
    "conversion_rate": BenchmarkRange(Decimal(2), Decimal(5), Decimal(10)),
    "cpa": BenchmarkRange(Decimal(100), Decimal(200), Decimal(50)),
    "roi": BenchmarkRange(Decimal(300), Decimal(300), Decimal(500)),
    "engagement_rate": BenchmarkRange(Decimal(3), Decimal(3), Decimal(10)),
    "ltv": BenchmarkRange(Decimal(500), Decimal(500), Decimal(1000)),
}


def benchmarks_for(program: Program) -> dict[str, BenchmarkRange]:
    """The program's benchmarks per KPI: KPI.md's defaults, overridden by the program's own."""
    benchmarks = dict(DEFAULT_BENCHMARKS)
    for row in Benchmark.objects.filter(program=program):
        benchmarks[row.kpi] = BenchmarkRange(row.average, row.average, row.optimal)
    return benchmarks


SUGGESTION_MONTHS = 3
WHOLE = Decimal(1)
CENTS = Decimal("0.01")


def _rounded_target(kpi_name: str, value: Decimal) -> Decimal:
    kpi = REGISTRY[kpi_name]
    if kpi.unit == Unit.COUNT and not kpi.is_ratio:
        return value.quantize(WHOLE, ROUND_HALF_UP)
    return value.quantize(CENTS, ROUND_HALF_UP)


def suggest_targets(
    *,
    program: Program,
    month: date,
    kpis: list[str],
    growth: Decimal,
    affiliate_ids: Iterable[int] | None = None,
) -> dict[int, dict[str, Decimal | None]]:
    """Suggested targets per affiliate: the median of their last three months (confirmed view), times ``growth``.

    For lower-is-better KPIs the median is divided by ``growth`` instead, so 1.10 asks for 10 % better either
    way. Months where a ratio is undefined are left out of its median; None means no history to suggest from
    (or a suggestion of 0, which is not a valid target). Counts are rounded to whole numbers, the rest to
    cents; percentages are capped at the KPI's maximum. Three queries, one per past month.
    """
    unknown = [name for name in kpis if name not in REGISTRY]
    if unknown:
        raise ValueError(f"Unknown KPIs: {unknown}")
    if growth <= 0:
        raise ValueError("growth must be positive")
    if affiliate_ids is None:
        affiliate_ids = list(
            Affiliate.objects.filter(program=program, status=AffiliateStatus.APPROVED)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
    affiliate_ids = list(affiliate_ids)
    history: dict[int, dict[str, list[Decimal]]] = {pk: defaultdict(list) for pk in affiliate_ids}
    past = month_start(month)
    for _ in range(SUGGESTION_MONTHS):
        past = previous_month(past)
        values = kpi_values(
            program=program, period=Period.month(past), kpis=kpis, affiliate_ids=affiliate_ids, view=View.CONFIRMED
        )
        for affiliate_id in affiliate_ids:
            for name, value in values[affiliate_id].items():
                if value is not None:
                    history[affiliate_id][name].append(Decimal(value))
    suggestions: dict[int, dict[str, Decimal | None]] = {}
    for affiliate_id in affiliate_ids:
        suggestions[affiliate_id] = {}
        for name in kpis:
            kpi = REGISTRY[name]
            past_values = history[affiliate_id][name]
            if not past_values:
                suggestions[affiliate_id][name] = None
                continue
            median = Decimal(statistics.median(past_values))
            target = _rounded_target(name, median / growth if kpi.lower_is_better else median * growth)
            if kpi.max_target is not None:
                target = min(target, kpi.max_target)
            suggestions[affiliate_id][name] = target if target > 0 else None
    return suggestions
