"""Goal progress: each goal's KPI value against its target, upserted per goal, with status changes that notify.

GoalProgress is a cache of DailyStats (and of the reported value of manual goals): every refresh computes
absolute values from the rollups and upserts them keyed by the goal, so refreshes that run twice or at once
never count anything twice. A status change to ``met`` or ``at_risk`` is recorded once per goal and status
(GoalTransition is unique) and only the run that records it notifies.
"""

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from affiliates.models import Program
from goals.kpis import KPI, REGISTRY, Counters, Shape, Unit, View, empty_counters
from goals.models import Goal, GoalKind, GoalProgress, GoalStatus, GoalTransition, MonthClose
from goals.pace import evaluate_goal
from goals.periods import Period, day_start, elapsed_share, local_date, month_start
from goals.selectors import counters_for, month_is_closed

logger = logging.getLogger(__name__)

# A hand-checked activity ("publish 4 reviews") behaves like a count: pace and projection apply.
MANUAL_KPI = KPI(
    "manual",
    _("Manual activity"),
    Unit.COUNT,
    Shape.COUNT,
    lambda counters: None,
    _("An activity the manager checks by hand; its value is reported with a note and confirmed by the manager."),
)

# Statuses worth telling the affiliate and the managers about (KPI.md, issue: "becomes met or turns at risk").
NOTIFY_STATUSES = frozenset({GoalStatus.MET, GoalStatus.AT_RISK})

VALUE_STEP = Decimal("0.000001")  # GoalProgress stores six decimals
ELAPSED_STEP = Decimal("0.00000001")
VALUE_LIMIT = Decimal("99999999999999")  # 14 integer digits fit max_digits=20 with 6 decimals


def kpi_of(goal: Goal) -> KPI:
    """The KPI a goal measures; manual goals measure their reported value."""
    return MANUAL_KPI if goal.kind == GoalKind.MANUAL else REGISTRY[goal.kpi]


def _stored(value: Decimal | None, step: Decimal = VALUE_STEP) -> Decimal | None:
    """A value as the database keeps it, so a recomputed value compares equal to the stored one."""
    if value is None:
        return None
    value = max(-VALUE_LIMIT, min(VALUE_LIMIT, Decimal(value)))
    return value.quantize(step, ROUND_HALF_UP)


@dataclass(frozen=True)
class ProgressValues:
    """A goal's computed state in both views; field names match GoalProgress."""

    value_provisional: Decimal | None
    value_confirmed: Decimal | None
    progress_provisional: Decimal | None
    progress_confirmed: Decimal | None
    volume: int
    elapsed: Decimal
    expected_now: Decimal | None
    projection: Decimal | None
    status: str
    status_confirmed: str

    def differs_from(self, stored: GoalProgress) -> bool:
        return any(getattr(self, field.name) != getattr(stored, field.name) for field in fields(self))


PROGRESS_FIELDS = [field.name for field in fields(ProgressValues)]


def compute_progress(
    goal: Goal, *, provisional: Counters | None, confirmed: Counters | None, elapsed: Decimal
) -> ProgressValues:
    """A goal's state from its affiliate's month counters in both views (None: no rollup rows yet)."""
    kpi = kpi_of(goal)
    if goal.kind == GoalKind.MANUAL:
        values = (goal.manual_value, goal.manual_value if goal.manual_confirmed else None)
        volumes = (Decimal(0), Decimal(0))
        min_volume = None
    else:
        provisional = provisional or empty_counters()
        confirmed = confirmed or empty_counters()
        values = (kpi.value(provisional), kpi.value(confirmed))
        volumes = (provisional[kpi.volume_counter], confirmed[kpi.volume_counter])
        min_volume = goal.min_volume
    live, final = (
        evaluate_goal(kpi=kpi, target=goal.target, value=value, volume=volume, min_volume=min_volume, elapsed=elapsed)
        for value, volume in zip(values, volumes, strict=True)
    )
    return ProgressValues(
        value_provisional=_stored(live.value),
        value_confirmed=_stored(final.value),
        progress_provisional=_stored(live.progress),
        progress_confirmed=_stored(final.progress),
        volume=int(volumes[0]),
        elapsed=_stored(elapsed, ELAPSED_STEP),
        expected_now=_stored(live.expected_now),
        projection=_stored(live.projection),
        status=str(live.status),
        status_confirmed=str(final.status),
    )


def goal_states(
    *, program: Program, month: date, goals: Iterable[Goal], now: datetime | None = None
) -> dict[int, ProgressValues]:
    """Computed state per goal id for goals of one month; two queries (provisional and confirmed counters)."""
    goals = list(goals)
    if not goals:
        return {}
    period = Period.month(month)
    affiliate_ids = sorted({goal.affiliate_id for goal in goals if goal.kind == GoalKind.KPI})
    provisional, confirmed = {}, {}
    if affiliate_ids:
        provisional = counters_for(program=program, period=period, affiliate_ids=affiliate_ids, view=View.PROVISIONAL)
        confirmed = counters_for(program=program, period=period, affiliate_ids=affiliate_ids, view=View.CONFIRMED)
    elapsed = elapsed_share(program, month, now)
    return {
        goal.pk: compute_progress(
            goal,
            provisional=provisional.get(goal.affiliate_id),
            confirmed=confirmed.get(goal.affiliate_id),
            elapsed=elapsed,
        )
        for goal in goals
    }


def stored_progress(goal: Goal) -> GoalProgress | None:
    """The goal's stored progress row, or None (works with and without select_related)."""
    try:
        return goal.progress
    except GoalProgress.DoesNotExist:
        return None


def write_progress(
    *,
    program: Program,
    month: date,
    goals: Iterable[Goal],
    now: datetime | None = None,
    final: bool = False,
    notify: bool = True,
) -> int:
    """Compute and upsert the progress of goals of one month; returns how many rows changed.

    ``final`` rows are the month close's frozen results: nothing rewrites them, so a close that is run
    again after a crash keeps the results its first run froze (and awarded bonuses on). Goals of a month
    that has not begun get no progress yet.
    """
    goals = list(goals)
    if not goals:
        return 0
    moment = now or timezone.now()
    if moment < day_start(program, month_start(month)):
        return 0
    states = goal_states(program=program, month=month, goals=goals, now=moment)
    changed: list[GoalProgress] = []
    transitions: list[tuple[Goal, ProgressValues]] = []
    for goal in goals:
        old, new = stored_progress(goal), states[goal.pk]
        if old is not None and (old.final or (not new.differs_from(old) and not final)):
            continue
        changed.append(
            GoalProgress(
                program=program,
                goal=goal,
                month=goal.month,
                kpi=goal.kpi,
                final=final,
                updated_at=timezone.now(),
                **asdict(new),
            )
        )
        if notify and new.status in NOTIFY_STATUSES and (old is None or old.status != new.status):
            transitions.append((goal, new))
    with transaction.atomic():
        # One upsert keyed by the goal: concurrent refreshes both write absolute values, the last one wins.
        GoalProgress.objects.bulk_create(
            changed,
            update_conflicts=True,
            unique_fields=["goal"],
            # month and kpi are the goal's and never change; written again, a row that ever drifted is put right.
            update_fields=[*PROGRESS_FIELDS, "month", "kpi", "final", "updated_at"],
        )
        for goal, state in transitions:
            record_transition(program=program, goal=goal, state=state)
    return len(changed)


def record_transition(*, program: Program, goal: Goal, state: ProgressValues) -> bool:
    """Record that a goal reached a status and notify, unless it was recorded before (then nothing happens)."""
    from goals.notifications import notify_goal_status

    with transaction.atomic():
        _transition, created = GoalTransition.objects.get_or_create(program=program, goal=goal, status=state.status)
        if created:
            notify_goal_status(program=program, goal=goal, state=state)
    return created


def refresh_goal_progress(
    *,
    program: Program,
    month: date,
    affiliate_ids: Iterable[int] | None = None,
    now: datetime | None = None,
) -> int:
    """Recompute the stored progress of a month's goals from DailyStats; returns how many rows changed.

    The rollups call this after recomputing days (``affiliate_ids`` limits it to the affected affiliates);
    the periodic refresh calls it so elapsed share, pace and projection move with time. For a closed month
    the frozen results stay as they are and the bonuses of the month are checked for clawbacks instead.
    """
    month = month_start(month)
    if month_is_closed(program=program, month=month):
        from goals.closing import record_clawbacks_for_closed_months

        record_clawbacks_for_closed_months(program=program, months=[month], affiliate_ids=affiliate_ids)
        return 0
    goals = Goal.objects.filter(program=program, month=month).select_related("affiliate", "progress")
    if affiliate_ids is not None:
        goals = goals.filter(affiliate_id__in=list(affiliate_ids))
    return write_progress(program=program, month=month, goals=goals, now=now)


def refresh_open_months(*, program: Program, now: datetime | None = None) -> int:
    """Refresh every goal of the program's open months up to the current local month; returns rows changed.

    The periodic refresh: even without new events, elapsed share, expected-by-now and projection move.
    """
    moment = now or timezone.now()
    current = month_start(local_date(program, moment))
    closed = MonthClose.objects.filter(program=program).values_list("month", flat=True)
    months = (
        Goal.objects.filter(program=program, month__lte=current)
        .exclude(month__in=closed)
        .values_list("month", flat=True)
        .distinct()
        .order_by("month")
    )
    return sum(refresh_goal_progress(program=program, month=month, now=moment) for month in list(months))
