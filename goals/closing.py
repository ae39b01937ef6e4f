"""Month close: freeze a month's goal results, award bonuses once, write monthly reviews; later, claw back.

The close is a sequence of idempotent steps, each safe to repeat and each committed on its own:

1. claim   MonthClose(program, month) is created (unique) with status ``running``; from now on the month's
           goals are read-only. A close that is already ``done`` returns at once.
2. freeze  every goal's progress is recomputed from DailyStats at the month's end and stored ``final``;
           a final row is never rewritten, so a resumed close decides on what the first run froze.
3. award   bonuses are decided on the frozen confirmed values and inserted in batches; BonusEntry is unique
           per goal, so a batch that runs again inserts nothing (``ON CONFLICT DO NOTHING``).
4. book    the award day's DailyStats cells are recomputed through the rollups (absolute, so repeatable).
5. review  one MonthlyReview per affiliate is upserted, keeping a manager's feedback and sharing.
6. done    the close is marked ``done`` by a conditional update.

A worker killed anywhere in between leaves committed steps behind and ``running`` status; running the close
again (the periodic task does) repeats the steps and reaches the same result as a clean run. Two closes running
at once are safe for the same reason.

Bonus decisions (docs/goals.md):
- fixed: the amount when the goal is met in the confirmed view;
- percent: the percentage of the affiliate's confirmed commission on conversions in the month, excluding
  bonuses and clawbacks (so bonuses never compound and the amount does not depend on the order of awards);
- tiers: the amount of the highest tier whose progress the confirmed progress reached (a tier may sit below
  100 %); nothing when no tier is reached.
Bonuses count on the local day of the close (an open month): the closed month's figures stay as frozen.
"""

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from affiliates.models import Affiliate, Program, User
from goals.access import require_manager
from goals.kpis import HUNDRED, REGISTRY, ZERO, View
from goals.locks import lock_program_goals
from goals.models import (
    BonusEntry,
    BonusType,
    ClawbackEntry,
    DailyStats,
    Goal,
    GoalKind,
    GoalStatus,
    MonthClose,
    MonthlyReview,
)
from goals.notifications import goal_name, month_name, notify, notify_about_affiliate, number, portal_path
from goals.periods import Period, day_start, local_date, month_start, next_month, previous_month
from goals.progress import PROGRESS_FIELDS, ProgressValues, goal_states, write_progress
from goals.rollups import recompute_days
from goals.selectors import (
    benchmarks_for,
    counters_for,
    goal_settings_for,
    kpi_values,
)

logger = logging.getLogger(__name__)

CENTS = Decimal("0.01")
CLOSE_BATCH_SIZE = 500
TREND_MONTHS = 3
# The KPIs every review shows, in this order; KPIs with a goal that month are added after them.
REVIEW_KPIS = [
    "clicks",
    "conversions",
    "conversion_rate",
    "revenue",
    "aov",
    "commission",
    "epc",
    "new_customers",
    "cpa",
    "roi",
    "ltv",
    "engagement_rate",
    "churn_rate",
    "reversal_rate",
]


# --- Bonus arithmetic -----------------------------------------------------------------------------------------


def tiers_of(goal: Goal) -> list[tuple[Decimal, Decimal]]:
    """A goal's bonus tiers as (progress %, amount), lowest first."""
    return sorted((Decimal(str(tier["progress"])), Decimal(str(tier["amount"]))) for tier in goal.bonus_tiers or [])


def bonus_due(goal: Goal, state: ProgressValues, commission: Decimal) -> tuple[Decimal, str]:
    """The bonus a goal earns on its confirmed results, with the reason in words (amount 0: nothing earned).

    ``commission`` is the affiliate's confirmed commission on conversions in the goal's month.
    """
    values = {
        "goal": goal_name(goal),
        "month": month_name(goal.month),
        "value": number(state.value_confirmed),
        "target": number(goal.target),
        "progress": number(state.progress_confirmed),
    }
    met = state.status_confirmed == GoalStatus.MET
    if goal.bonus_type == BonusType.FIXED and met and goal.bonus_amount:
        reason = _("Goal “%(goal)s” for %(month)s met with %(value)s of %(target)s (%(progress)s %%): fixed bonus.")
        return goal.bonus_amount.quantize(CENTS, ROUND_HALF_UP), reason % values
    if goal.bonus_type == BonusType.PERCENT and met and goal.bonus_percent:
        amount = (commission * goal.bonus_percent / HUNDRED).quantize(CENTS, ROUND_HALF_UP)
        values |= {"percent": number(goal.bonus_percent), "commission": number(commission)}
        reason = _(
            "Goal “%(goal)s” for %(month)s met with %(value)s of %(target)s (%(progress)s %%): "
            "%(percent)s %% of the month's confirmed commission of %(commission)s."
        )
        return amount, reason % values
    if goal.bonus_type == BonusType.TIERS and state.progress_confirmed is not None:
        reached = [(progress, amount) for progress, amount in tiers_of(goal) if state.progress_confirmed >= progress]
        if reached:
            tier_progress, amount = reached[-1]  # the highest tier reached pays, alone
            values |= {"tier": number(tier_progress)}
            reason = _(
                "Goal “%(goal)s” for %(month)s reached %(progress)s %% (%(value)s of %(target)s): "
                "bonus of the %(tier)s %% tier."
            )
            return amount.quantize(CENTS, ROUND_HALF_UP), reason % values
    return ZERO, ""


def _confirmed_commission(program: Program, month: date, affiliate_ids: Iterable[int]) -> dict[int, Decimal]:
    """Confirmed commission on conversions per affiliate in a month, without bonuses (one query)."""
    counters = counters_for(
        program=program, period=Period.month(month), affiliate_ids=list(affiliate_ids), view=View.CONFIRMED
    )
    return {affiliate_id: values["commission_conversions"] for affiliate_id, values in counters.items()}


# --- Booking ledger entries into DailyStats -------------------------------------------------------------------


def book_ledger_days(*, program: Program, keys: Iterable[tuple[int, date]]) -> None:
    """Bring DailyStats of (affiliate id, local day) keys up to date with the bonus and clawback ledger.

    The rollups compute DailyStats.bonuses from the ledger (bonuses on their award day, clawbacks on their
    booking day), so the keys are recomputed through them, in the caller's transaction: the program's rollup
    lock orders this against the rollup loop, and an absolute recompute cannot count an entry twice.
    """
    keys = sorted(set(keys))
    if keys:
        recompute_days(program=program, keys=keys)


# --- Close ----------------------------------------------------------------------------------------------------


def month_has_ended(program: Program, month: date, now: datetime) -> bool:
    return now >= day_start(program, next_month(month_start(month)))


def close_month(
    *,
    program: Program,
    month: date,
    now: datetime | None = None,
    batch_size: int = CLOSE_BATCH_SIZE,
    after_bonus_batch: Callable[[int], None] | None = None,
) -> MonthClose:
    """Close a program-local month: freeze results, award bonuses once, write reviews; idempotent and resumable.

    ``after_bonus_batch`` is called with the number of bonuses committed so far after each batch (the
    close_month command uses it to let a test kill the process mid-close).
    """
    month = month_start(month)
    now = now or timezone.now()
    if not month_has_ended(program, month, now):
        raise ValidationError(
            _("%(month)s has not ended yet; it can be closed from its last day on.") % {"month": month_name(month)}
        )
    with transaction.atomic():
        # Exclusive: goal changes that checked the month was open commit first; later ones see it closed.
        lock_program_goals(program, exclusive=True)
        close, _created = MonthClose.objects.get_or_create(program=program, month=month, defaults={"started_at": now})
    if close.status == MonthClose.Status.DONE:
        return close
    goals = Goal.objects.filter(program=program, month=month).select_related("affiliate", "progress").order_by("pk")
    write_progress(program=program, month=month, goals=goals, now=now, final=True, notify=False)
    awarded_goals = _award_bonuses(program=program, close=close, batch_size=batch_size, after_batch=after_bonus_batch)
    _write_reviews(program=program, month=month)
    MonthClose.objects.filter(pk=close.pk, status=MonthClose.Status.RUNNING).update(
        status=MonthClose.Status.DONE, closed_at=timezone.now()
    )
    close.refresh_from_db()
    logger.info("Closed %s %s: %s goals with a bonus.", program.slug, f"{month:%Y-%m}", awarded_goals)
    return close


def _award_bonuses(
    *, program: Program, close: MonthClose, batch_size: int, after_batch: Callable[[int], None] | None
) -> int:
    """Award the bonuses of a closing month in committed batches; returns how many goals hold a bonus."""
    goals = list(
        Goal.objects.filter(program=program, month=close.month)
        .exclude(bonus_type="")
        .select_related("affiliate", "progress")
        .order_by("pk")
    )
    if not goals:
        return 0
    commission = _confirmed_commission(program, close.month, {goal.affiliate_id for goal in goals})
    day = local_date(program, close.started_at)  # the same day however often the close runs
    total = 0
    for start in range(0, len(goals), batch_size):
        entries = []
        for goal in goals[start : start + batch_size]:
            state = ProgressValues(**{name: getattr(goal.progress, name) for name in PROGRESS_FIELDS})
            amount, reason = bonus_due(goal, state, commission.get(goal.affiliate_id, ZERO))
            if amount > 0:
                entries.append(
                    BonusEntry(
                        program=program,
                        affiliate_id=goal.affiliate_id,
                        goal=goal,
                        month=close.month,
                        day=day,
                        amount=amount,
                        explanation=reason,
                        awarded_at=close.started_at,
                    )
                )
        with transaction.atomic():
            # The unique goal of BonusEntry makes a repeated batch a no-op: a bonus is never awarded twice.
            BonusEntry.objects.bulk_create(entries, ignore_conflicts=True)
            book_ledger_days(program=program, keys={(entry.affiliate_id, day) for entry in entries})
        total += len(entries)
        if after_batch is not None:
            after_batch(total)
    return total


def close_due_months(*, program: Program, now: datetime | None = None) -> list[MonthClose]:
    """Close every month of the program whose grace period is over and that is not closed yet, oldest first.

    Candidates are the previous local month and any earlier month that has goals; a close left ``running``
    by a killed worker is a candidate again and resumes.
    """
    now = now or timezone.now()
    today = local_date(program, now)
    current = month_start(today)
    grace = timedelta(days=goal_settings_for(program).month_close_grace_days)
    candidates = {previous_month(current)}
    candidates |= set(Goal.objects.filter(program=program, month__lt=current).values_list("month", flat=True))
    done = set(
        MonthClose.objects.filter(program=program, status=MonthClose.Status.DONE).values_list("month", flat=True)
    )
    due = sorted(month for month in candidates - done if today >= next_month(month) + grace)
    return [close_month(program=program, month=month, now=now) for month in due]


# --- Clawbacks ------------------------------------------------------------------------------------------------


def clawback_month(program: Program, month: date, today: date) -> tuple[date, date]:
    """Where a clawback of a closed month is booked: the first open month after it, and a day in that month.

    The day is today when today falls in that month, else that month's first day (the month is still in its
    grace period, so it is open and will close with the clawback in it). Both are stored on the ClawbackEntry;
    goals.rollups does not work the day out again but subtracts the amount from DailyStats.bonuses on the
    stored day, and recording the clawback recomputes that cell at once (book_ledger_days).
    """
    booked = next_month(month)
    closed = set(MonthClose.objects.filter(program=program, month__gt=month).values_list("month", flat=True))
    while booked in closed:
        booked = next_month(booked)
    day = today if month_start(today) == booked else booked
    return booked, day


def record_clawbacks_for_closed_months(
    *,
    program: Program,
    months: Iterable[date] | None = None,
    affiliate_ids: Iterable[int] | None = None,
    now: datetime | None = None,
) -> int:
    """Claw back bonuses whose closed month fell below what earned them; returns how many were recorded.

    Confirmed values are recomputed from DailyStats as they are now. A fixed or percentage bonus is taken
    back in full when its goal is no longer met; a tier bonus by the difference to the tier now reached.
    Each bonus is clawed back at most once (ClawbackEntry is unique per bonus), booked in the next open month.
    """
    now = now or timezone.now()
    bonuses = BonusEntry.objects.filter(program=program, clawback__isnull=True).select_related(
        "goal", "goal__affiliate"
    )
    if months is not None:
        bonuses = bonuses.filter(month__in=[month_start(month) for month in months])
    if affiliate_ids is not None:
        bonuses = bonuses.filter(affiliate_id__in=list(affiliate_ids))
    by_month: dict[date, list[BonusEntry]] = defaultdict(list)
    for bonus in bonuses.order_by("month", "pk"):
        by_month[bonus.month].append(bonus)
    recorded = 0
    for month, entries in by_month.items():
        end = day_start(program, next_month(month))
        states = goal_states(program=program, month=month, goals=[entry.goal for entry in entries], now=max(now, end))
        for entry in entries:
            amount = clawback_due(entry, states[entry.goal_id])
            if amount > 0 and _record_clawback(
                program=program, bonus=entry, amount=amount, state=states[entry.goal_id], now=now
            ):
                recorded += 1
    return recorded


def clawback_due(bonus: BonusEntry, state: ProgressValues) -> Decimal:
    """How much of an awarded bonus its goal's current confirmed results no longer support."""
    goal = bonus.goal
    if goal.bonus_type == BonusType.TIERS:
        # The percentage base does not matter for tiers; only the tier now reached does.
        due, _reason = bonus_due(goal, state, ZERO)
        return max(ZERO, bonus.amount - due)
    # Fixed and percentage bonuses stand while the goal is met, whatever else the reversals changed.
    return ZERO if state.status_confirmed == GoalStatus.MET else bonus.amount


def _record_clawback(
    *, program: Program, bonus: BonusEntry, amount: Decimal, state: ProgressValues, now: datetime
) -> bool:
    goal = bonus.goal
    booked, day = clawback_month(program, bonus.month, local_date(program, now))
    values = {
        "goal": goal_name(goal),
        "month": month_name(bonus.month),
        "value": number(state.value_confirmed),
        "target": number(goal.target),
        "amount": number(amount),
        "booked": month_name(booked),
    }
    explanation = (
        _(
            "Reversals after the close of %(month)s brought the goal “%(goal)s” to %(value)s of %(target)s, "
            "below what earned its bonus: %(amount)s is taken back in %(booked)s."
        )
        % values
    )
    with transaction.atomic():
        _clawback, created = ClawbackEntry.objects.get_or_create(
            program=program,
            bonus=bonus,
            defaults={
                "affiliate_id": bonus.affiliate_id,
                "month": booked,
                "day": day,
                "amount": amount.quantize(CENTS, ROUND_HALF_UP),
                "explanation": explanation,
                "created_at": now,
            },
        )
        if created:
            book_ledger_days(program=program, keys={(bonus.affiliate_id, day)})
            notify_about_affiliate(
                program=program, affiliate=goal.affiliate, message=explanation, goal=goal, month=booked
            )
    return created


# --- Monthly reviews ------------------------------------------------------------------------------------------


def _text(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.quantize(Decimal('0.000001'), ROUND_HALF_UP):f}"


def _trend(kpi_name: str, value: Decimal | None, previous: list[Decimal | None]) -> dict:
    """The value against the average of the previous months: change in % and whether that is better."""
    known = [past for past in previous if past is not None]
    average = sum(known, ZERO) / len(known) if known else None
    change = None if value is None or not average else (value - average) / abs(average) * HUNDRED
    better = None
    if change is not None and change != 0:
        better = (change < 0) if REGISTRY[kpi_name].lower_is_better else (change > 0)
    return {
        "previous": [_text(past) for past in previous],
        "average": _text(average),
        "change": _text(change),
        "better": better,
    }


def _review_rows(
    *,
    kpis: list[str],
    values: dict[str, Decimal | None],
    previous: list[dict[str, Decimal | None]],
    goals: dict[str, Goal],
    benchmarks: dict,
) -> list[dict]:
    rows = []
    for name in kpis:
        kpi, value, goal = REGISTRY[name], values.get(name), goals.get(name)
        progress = getattr(goal, "progress", None) if goal else None
        benchmark = benchmarks.get(name)
        rows.append(
            {
                "kpi": name,
                "value": _text(value),
                "goal": None
                if goal is None
                else {
                    "target": _text(goal.target),
                    "progress": _text(progress.progress_confirmed) if progress else None,
                    "status": progress.status_confirmed if progress else GoalStatus.NOT_ENOUGH_DATA.value,
                },
                "benchmark": None
                if benchmark is None
                else {
                    "average_low": _text(benchmark.average_low),
                    "average_high": _text(benchmark.average_high),
                    "optimal": _text(benchmark.optimal),
                    "rating": benchmark.rating(value, lower_is_better=kpi.lower_is_better),
                },
                "trend": _trend(name, value, [month.get(name) for month in previous]),
            }
        )
    return rows


def best_and_worst(rows: list[dict]) -> tuple[str, str]:
    """The best and worst KPI of a review: by goal progress when goals have one, else by trend.

    Progress is already direction-adjusted (lower-is-better goals invert it); the trend's change is
    direction-adjusted here. With a single candidate there is a best and no worst.
    """
    scored = [(Decimal(row["goal"]["progress"]), row["kpi"]) for row in rows if row["goal"] and row["goal"]["progress"]]
    if not scored:
        for row in rows:
            change = row["trend"]["change"]
            if change is not None:
                sign = -1 if REGISTRY[row["kpi"]].lower_is_better else 1
                scored.append((sign * Decimal(change), row["kpi"]))
    if not scored:
        return "", ""
    scored.sort()
    best, worst = scored[-1][1], scored[0][1]
    return best, worst if len(scored) > 1 else ""


def _write_reviews(*, program: Program, month: date) -> int:
    """Upsert one review per affiliate with goals or activity in the month; feedback and sharing are kept."""
    goals_by_affiliate: dict[int, list[Goal]] = defaultdict(list)
    for goal in Goal.objects.filter(program=program, month=month).select_related("progress").order_by("pk"):
        goals_by_affiliate[goal.affiliate_id].append(goal)
    active = set(
        DailyStats.objects.filter(program=program, day__gte=month, day__lt=next_month(month))
        .values_list("affiliate_id", flat=True)
        .distinct()
    )
    affiliate_ids = sorted(set(goals_by_affiliate) | active)
    if not affiliate_ids:
        return 0
    kpis = list(
        dict.fromkeys(
            [*REVIEW_KPIS, *(g.kpi for gs in goals_by_affiliate.values() for g in gs if g.kind == GoalKind.KPI)]
        )
    )
    current = kpi_values(
        program=program, period=Period.month(month), kpis=kpis, affiliate_ids=affiliate_ids, view=View.CONFIRMED
    )
    previous_months, past = [], month
    for _step in range(TREND_MONTHS):
        past = previous_month(past)
        previous_months.insert(
            0,
            kpi_values(
                program=program, period=Period.month(past), kpis=kpis, affiliate_ids=affiliate_ids, view=View.CONFIRMED
            ),
        )
    benchmarks = benchmarks_for(program)
    bonuses = defaultdict(list)
    for entry in BonusEntry.objects.filter(program=program, month=month).order_by("pk"):
        bonuses[entry.affiliate_id].append(
            {"goal": entry.goal_id, "amount": _text(entry.amount), "why": entry.explanation}
        )
    reviews = []
    for affiliate_id in affiliate_ids:
        goals = goals_by_affiliate.get(affiliate_id, [])
        rows = _review_rows(
            kpis=kpis,
            values=current[affiliate_id],
            previous=[values[affiliate_id] for values in previous_months],
            goals={goal.kpi: goal for goal in goals if goal.kind == GoalKind.KPI},
            benchmarks=benchmarks,
        )
        best, worst = best_and_worst(rows)
        manual = [
            {
                "label": goal.label,
                "target": _text(goal.target),
                "value": _text(goal.manual_value),
                "confirmed": goal.manual_confirmed,
                "note": goal.manual_note,
                "status": goal.progress.status_confirmed
                if hasattr(goal, "progress")
                else GoalStatus.NOT_ENOUGH_DATA.value,
            }
            for goal in goals
            if goal.kind == GoalKind.MANUAL
        ]
        data = {
            "month": f"{month:%Y-%m}",
            "rows": rows,
            "manual_goals": manual,
            "bonuses": bonuses.get(affiliate_id, []),
        }
        reviews.append(
            MonthlyReview(
                program=program, affiliate_id=affiliate_id, month=month, data=data, best_kpi=best, worst_kpi=worst
            )
        )
    MonthlyReview.objects.bulk_create(
        reviews,
        update_conflicts=True,
        unique_fields=["program", "affiliate", "month"],
        update_fields=["data", "best_kpi", "worst_kpi"],
    )
    return len(reviews)


def annotate_review(*, program: Program, review: MonthlyReview, feedback: str, actor: User | None) -> MonthlyReview:
    """Save a manager's feedback on a monthly review (the affiliate sees it once the review is shared)."""
    require_manager(program=program, actor=actor)
    if review.program_id != program.pk:
        raise ValidationError(_("This review does not exist."))
    review.feedback = feedback.strip()
    MonthlyReview.objects.filter(program=program, pk=review.pk).update(feedback=review.feedback)
    return review


def share_review(*, program: Program, review: MonthlyReview, actor: User | None) -> MonthlyReview:
    """Share a monthly review with its affiliate and notify them; sharing again changes nothing."""
    require_manager(program=program, actor=actor)
    if review.program_id != program.pk:
        raise ValidationError(_("This review does not exist."))
    with transaction.atomic():
        shared = MonthlyReview.objects.filter(program=program, pk=review.pk, shared_at__isnull=True).update(
            shared_at=timezone.now()
        )
        review.refresh_from_db()
        affiliate = Affiliate.objects.select_related("user").get(program=program, pk=review.affiliate_id)
        if shared and affiliate.user_id is not None:
            message = _("Your review of %(month)s from %(program)s is ready.") % {
                "month": month_name(review.month),
                "program": program.name,
            }
            notify(program=program, recipients=[(affiliate.user, portal_path(program))], message=message)
    return review
