"""The KPI registry: every KPI of KPI.md as a formula over additive counters, defined once for the whole app.

Goals, the board, the portal, reports, CSV and the API all read numbers through ``REGISTRY`` and
``goals.selectors.kpi_values``. A ratio with a zero denominator is undefined (``None``), never 0.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from django.utils.translation import gettext_lazy as _

HUNDRED = Decimal(100)
ZERO = Decimal(0)


class View(StrEnum):
    """Which conversions count: pending + approved (provisional) or approved only (confirmed)."""

    PROVISIONAL = "provisional"
    CONFIRMED = "confirmed"


class Unit(StrEnum):
    COUNT = "count"
    CURRENCY = "currency"
    PERCENT = "percent"


class Shape(StrEnum):
    """Counts and sums grow through the month (pace applies); ratios do not."""

    COUNT = "count"
    SUM = "sum"
    RATIO = "ratio"


Counters = Mapping[str, Decimal]


def ratio(numerator: Decimal, denominator: Decimal, scale: Decimal = Decimal(1)) -> Decimal | None:
    if not denominator:
        return None
    return Decimal(numerator) * scale / Decimal(denominator)


@dataclass(frozen=True)
class KPI:
    name: str
    label: str
    unit: Unit
    shape: Shape
    formula: Callable[[Counters], Decimal | None]
    definition: str
    lower_is_better: bool = False
    volume_counter: str = "clicks"  # what the minimum volume of a goal on this KPI counts
    default_min_volume: int | None = None  # ratios only: below it a goal shows "not enough data"
    goal_allowed: bool = True
    max_target: Decimal | None = None  # e.g. a percentage that cannot exceed 100

    @property
    def is_ratio(self) -> bool:
        return self.shape == Shape.RATIO

    def value(self, counters: Counters) -> Decimal | None:
        return self.formula(counters)


def _commission(c: Counters) -> Decimal:
    return c["commission_conversions"] + c["bonuses"]


def _cost(c: Counters) -> Decimal:
    return _commission(c) + c["fixed_fees"]


def _active_at_start(c: Counters) -> Decimal:
    return c["customers_acquired_before"] - c["customers_lost_before"]


_KPIS = [
    KPI(
        "clicks",
        _("Clicks"),
        Unit.COUNT,
        Shape.COUNT,
        lambda c: c["clicks"],
        _("Redirects served through the affiliate's links, excluding bots."),
    ),
    KPI(
        "unique_clicks",
        _("Unique clicks"),
        Unit.COUNT,
        Shape.COUNT,
        lambda c: c["unique_clicks"],
        _("Clicks from distinct visitors per link per program-local day."),
    ),
    KPI(
        "impressions",
        _("Impressions"),
        Unit.COUNT,
        Shape.COUNT,
        lambda c: c["impressions"],
        _("Impression-pixel hits, excluding bots."),
    ),
    KPI(
        "conversions",
        _("Conversions"),
        Unit.COUNT,
        Shape.COUNT,
        lambda c: c["conversions"],
        _("Attributed conversions: pending and approved (provisional) or approved only (confirmed)."),
    ),
    KPI("sales", _("Sales"), Unit.COUNT, Shape.COUNT, lambda c: c["sales"], _("Conversions of kind sale.")),
    KPI("leads", _("Leads"), Unit.COUNT, Shape.COUNT, lambda c: c["leads"], _("Conversions of kind lead.")),
    KPI(
        "revenue",
        _("Revenue"),
        Unit.CURRENCY,
        Shape.SUM,
        lambda c: c["revenue"],
        _("Sum of sale amounts of counted conversions, in the program currency."),
    ),
    KPI(
        "commission",
        _("Commission"),
        Unit.CURRENCY,
        Shape.SUM,
        _commission,
        _("Commissions of counted conversions, plus bonuses awarded."),
    ),
    KPI(
        "new_customers",
        _("New customers"),
        Unit.COUNT,
        Shape.COUNT,
        lambda c: c["new_customers"],
        _("Distinct customers whose first counted conversion in the program falls in the period."),
    ),
    KPI(
        "engagements",
        _("Engagement events"),
        Unit.COUNT,
        Shape.COUNT,
        lambda c: c["engagements"],
        _("Conversions of kind engagement: newsletter signups, add-to-cart, trial starts."),
    ),
    KPI(
        "reversals",
        _("Reversals"),
        Unit.COUNT,
        Shape.COUNT,
        lambda c: c["reversals"],
        _("Conversions moved to reversed (refund, chargeback) in the period."),
        lower_is_better=True,
    ),
    KPI(
        "active_affiliates",
        _("Active affiliates"),
        Unit.COUNT,
        Shape.COUNT,
        lambda c: c["active_affiliates"],
        _("Approved affiliates with at least one click or conversion in the period."),
        goal_allowed=False,
    ),
    KPI(
        "cost",
        _("Cost"),
        Unit.CURRENCY,
        Shape.SUM,
        _cost,
        _("Commission paid or payable, plus bonuses and fixed fees recorded for the affiliate."),
        lower_is_better=True,
        goal_allowed=False,
    ),
    KPI(
        "ctr",
        _("CTR"),
        Unit.PERCENT,
        Shape.RATIO,
        lambda c: ratio(c["clicks"], c["impressions"], HUNDRED),
        _("Clicks / impressions × 100."),
        volume_counter="impressions",
        default_min_volume=100,
    ),
    KPI(
        "conversion_rate",
        _("Conversion rate"),
        Unit.PERCENT,
        Shape.RATIO,
        lambda c: ratio(c["conversions"], c["clicks"], HUNDRED),
        _("Conversions / clicks × 100, both in the same period."),
        default_min_volume=100,
        max_target=HUNDRED,
    ),
    KPI(
        "aov",
        _("Average order value"),
        Unit.CURRENCY,
        Shape.RATIO,
        lambda c: ratio(c["revenue"], c["sales"]),
        _("Revenue / sales."),
        volume_counter="conversions",
        default_min_volume=10,
    ),
    KPI(
        "epc",
        _("EPC"),
        Unit.CURRENCY,
        Shape.RATIO,
        lambda c: ratio(_commission(c), c["clicks"]),
        _("Earnings per click: commission / clicks (per click, not per 100)."),
        default_min_volume=100,
    ),
    KPI(
        "cpc",
        _("Cost per click"),
        Unit.CURRENCY,
        Shape.RATIO,
        lambda c: ratio(_cost(c), c["clicks"]),
        _("Cost / clicks."),
        lower_is_better=True,
        default_min_volume=100,
    ),
    KPI(
        "cpl",
        _("Cost per lead"),
        Unit.CURRENCY,
        Shape.RATIO,
        lambda c: ratio(_cost(c), c["leads"]),
        _("Cost / leads."),
        lower_is_better=True,
        default_min_volume=100,
    ),
    KPI(
        "cpa",
        _("Cost per acquisition"),
        Unit.CURRENCY,
        Shape.RATIO,
        lambda c: ratio(_cost(c), c["new_customers"]),
        _("Cost / new customers."),
        lower_is_better=True,
        volume_counter="conversions",
        default_min_volume=10,
    ),
    KPI(
        "roi",
        _("ROI"),
        Unit.PERCENT,
        Shape.RATIO,
        lambda c: ratio(c["revenue"] - _cost(c), _cost(c), HUNDRED),
        _("(Revenue − cost) / cost × 100."),
        default_min_volume=100,
    ),
    KPI(
        "ltv",
        _("Customer lifetime value"),
        Unit.CURRENCY,
        Shape.RATIO,
        lambda c: ratio(c["customer_revenue_to_date"], c["customers_acquired_to_date"]),
        _("For customers acquired through the affiliate: their total revenue to date / their number."),
        default_min_volume=100,
    ),
    KPI(
        "churn_rate",
        _("Churn rate"),
        Unit.PERCENT,
        Shape.RATIO,
        lambda c: ratio(c["customers_lost"], _active_at_start(c), HUNDRED),
        _("Customers lost in the period / customers active at its start × 100."),
        lower_is_better=True,
        default_min_volume=100,
        max_target=HUNDRED,
    ),
    KPI(
        "engagement_rate",
        _("Engagement rate"),
        Unit.PERCENT,
        Shape.RATIO,
        lambda c: ratio(c["engagements"], c["clicks"], HUNDRED),
        _("Engagement events / clicks × 100."),
        default_min_volume=100,
    ),
    KPI(
        "reversal_rate",
        _("Reversal rate"),
        Unit.PERCENT,
        Shape.RATIO,
        lambda c: ratio(c["reversals"], c["conversions"], HUNDRED),
        _("Reversals / conversions × 100."),
        lower_is_better=True,
        default_min_volume=100,
    ),
]

REGISTRY: dict[str, KPI] = {kpi.name: kpi for kpi in _KPIS}
GOAL_KPIS = [kpi for kpi in _KPIS if kpi.goal_allowed]

# Counters every formula may read, after the view has picked pending + approved or approved only.
COUNTER_NAMES = (
    "clicks",
    "unique_clicks",
    "impressions",
    "conversions",
    "sales",
    "leads",
    "engagements",
    "revenue",
    "commission_conversions",
    "bonuses",
    "fixed_fees",
    "new_customers",
    "reversals",
    "cancellations",
    "customers_lost",
    "customers_acquired_before",
    "customers_lost_before",
    "customer_revenue_to_date",
    "customers_acquired_to_date",
    "active_affiliates",
)


def empty_counters() -> dict[str, Decimal]:
    return dict.fromkeys(COUNTER_NAMES, ZERO)


def evaluate(counters: Counters, names: list[str] | None = None) -> dict[str, Decimal | None]:
    """Every requested KPI (all by default) computed from one set of counters."""
    return {name: REGISTRY[name].value(counters) for name in (names or REGISTRY)}
