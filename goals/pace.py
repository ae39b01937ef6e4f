"""Goal arithmetic of KPI.md: progress, expected-by-now, projection and status, as pure functions."""

from dataclasses import dataclass
from decimal import Decimal

from goals.kpis import HUNDRED, KPI
from goals.models import GoalStatus

AT_RISK_SHARE = Decimal("0.8")


@dataclass(frozen=True)
class GoalState:
    value: Decimal | None
    progress: Decimal | None  # percent of target; None when the value is undefined
    expected_now: Decimal | None
    projection: Decimal | None
    status: str


def minimum_volume(kpi: KPI, min_volume: int | None) -> int:
    """A goal's own minimum volume, else the KPI's default (ratios only; counts need none)."""
    if min_volume is not None:
        return min_volume
    return kpi.default_min_volume or 0 if kpi.is_ratio else 0


def _progress(kpi: KPI, value: Decimal, target: Decimal) -> Decimal:
    if kpi.lower_is_better:
        # Lower is better: target / value; a value of 0 counts as met.
        return HUNDRED if value == 0 else target / value * HUNDRED
    return value / target * HUNDRED


def evaluate_goal(
    *, kpi: KPI, target: Decimal, value: Decimal | None, volume: Decimal, min_volume: int | None, elapsed: Decimal
) -> GoalState:
    """The state of a goal given its KPI value so far and the share of the month gone (0 < elapsed ≤ 1)."""
    expected = target if kpi.is_ratio else target * elapsed
    if value is None or volume < minimum_volume(kpi, min_volume):
        return GoalState(value, None, expected, None, GoalStatus.NOT_ENOUGH_DATA)
    projection = value if kpi.is_ratio else value / elapsed
    progress = _progress(kpi, value, target)
    if kpi.lower_is_better:
        reached, projected_share = value <= target, (HUNDRED if projection == 0 else target / projection * HUNDRED)
    else:
        reached, projected_share = value >= target, projection / target * HUNDRED
    if reached:
        status = GoalStatus.MET
    elif projected_share >= HUNDRED:
        status = GoalStatus.ON_TRACK
    elif projected_share >= AT_RISK_SHARE * HUNDRED:
        status = GoalStatus.AT_RISK
    else:
        status = GoalStatus.BEHIND
    return GoalState(value, progress, expected, projection, status)


def remaining_per_day(*, kpi: KPI, target: Decimal, value: Decimal | None, days_left: int) -> Decimal | None:
    """What is left to reach a count or sum target, per remaining day (None for ratios or when done)."""
    if kpi.is_ratio or kpi.lower_is_better or value is None or value >= target or days_left <= 0:
        return None
    return (target - value) / days_left
