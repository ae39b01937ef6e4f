"""Portal pages of goals (/portal/<program_slug>/…): the signed-in affiliate's own goals, reviews and
notifications. The affiliate always comes from request.user; an id in a URL only ever finds their own rows.
"""

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from affiliates.portal_views import own_affiliate
from affiliates.tenancy import affiliate_view, get_in_program_or_404
from goals import services
from goals.closing import bonus_due, tiers_of
from goals.forms import ManualValueForm
from goals.kpis import ZERO, View
from goals.models import BonusType, Goal, GoalKind, GoalProgress, GoalStatus, MonthlyReview
from goals.pace import remaining_per_day
from goals.periods import Period, local_date, month_start, next_month
from goals.progress import PROGRESS_FIELDS, ProgressValues, kpi_of, stored_progress
from goals.selectors import counters_for, goal_progress_for_month
from goals.views import (
    add_service_error,
    badge,
    mark_read,
    month_label,
    notification_page,
    plain,
    poll_seconds,
    program_time,
    since_param,
    since_value,
)

HISTORY_MONTHS = 12


@dataclass(frozen=True)
class GoalCard:
    """One goal on the portal with what the affiliate wants to know: what is left per day, what it pays."""

    goal: Goal
    left_per_day: Decimal | None
    bonus_at_stake: Decimal | None  # fixed and percentage bonuses: the amount if the goal is met
    tiers: list[tuple[Decimal, Decimal, bool]]  # (progress %, amount, reached now)

    @property
    def dom_id(self) -> str:
        return f"portal-goal-{self.goal.pk}"


def _state(progress: GoalProgress, **changes) -> ProgressValues:
    return ProgressValues(**({name: getattr(progress, name) for name in PROGRESS_FIELDS} | changes))


def goal_card(goal: Goal, *, days_left: int, commission: Decimal) -> GoalCard:
    """A goal's card; the bonus amounts come from the month close's own rule (goals.closing.bonus_due)."""
    progress = stored_progress(goal)
    left = None
    if progress is not None:
        left = remaining_per_day(
            kpi=kpi_of(goal), target=goal.target, value=progress.value_provisional, days_left=days_left
        )
    at_stake, tiers = None, []
    if goal.bonus_type in (BonusType.FIXED, BonusType.PERCENT) and progress is not None:
        at_stake, _reason = bonus_due(goal, _state(progress, status_confirmed=GoalStatus.MET), commission)
    elif goal.bonus_type == BonusType.FIXED:
        at_stake = goal.bonus_amount
    if goal.bonus_type == BonusType.TIERS:
        # The highest tier reached pays, alone: that is the one marked.
        reached = progress.progress_provisional if progress is not None else None
        levels = tiers_of(goal)
        paying = max((level for level, _amount in levels if reached is not None and reached >= level), default=None)
        tiers = [(level, amount, level == paying) for level, amount in levels]
    return GoalCard(goal=goal, left_per_day=left, bonus_at_stake=at_stake, tiers=tiers)


def goal_cards(program, affiliate, month: date, goals: list[Goal]) -> list[GoalCard]:
    today = local_date(program, timezone.now())
    days_left = (next_month(month) - max(today, month)).days if today < next_month(month) else 0
    commission = ZERO
    if any(goal.bonus_type == BonusType.PERCENT for goal in goals):
        counters = counters_for(
            program=program, period=Period.month(month), affiliate_ids=[affiliate.pk], view=View.CONFIRMED
        )
        commission = counters.get(affiliate.pk, {}).get("commission_conversions", ZERO)
    return [goal_card(goal, days_left=days_left, commission=commission) for goal in goals]


def past_months(program, affiliate, month: date) -> list[dict]:
    """The affiliate's goals of earlier months with their results, bonuses, clawbacks and shared review."""
    goals = (
        Goal.objects.filter(program=program, affiliate=affiliate, month__lt=month, month__gte=_months_back(month))
        .select_related("progress", "bonus_entry", "bonus_entry__clawback")
        .order_by("-month", "kind", "kpi", "label")
    )
    reviews = {
        review.month: review
        for review in MonthlyReview.objects.filter(
            program=program, affiliate=affiliate, month__lt=month, shared_at__isnull=False
        )
    }
    months: dict[date, dict] = {}
    for goal in goals:
        entry = months.setdefault(
            goal.month, {"month": goal.month, "label": month_label(goal.month), "goals": [], "review": None}
        )
        entry["goals"].append(goal)
    for review_month, review in reviews.items():
        months.setdefault(
            review_month, {"month": review_month, "label": month_label(review_month), "goals": [], "review": None}
        )["review"] = review
    return sorted(months.values(), key=lambda entry: entry["month"], reverse=True)


def _months_back(month: date) -> date:
    first = month
    for _step in range(HISTORY_MONTHS):
        first = month_start(first - timedelta(days=1))
    return first


@affiliate_view
@program_time
def portal_goals(request: HttpRequest, program_slug: str) -> HttpResponse:
    """This month's goals with progress, pace, what is left per day and the bonus at stake; then the history.

    An htmx poll with ``since`` gets only the goals whose progress changed since then (or 204).
    """
    program, started = request.program, timezone.now()
    affiliate = own_affiliate(request)
    month = month_start(local_date(program, started))
    goals = goal_progress_for_month(program=program, month=month, affiliate_ids=[affiliate.pk])
    since = since_param(request)
    if request.htmx and since is not None:
        changed = list(goals.filter(progress__updated_at__gt=since))
        if not changed:
            return HttpResponse(status=204)
        context = {"cards": goal_cards(program, affiliate, month, changed), "since": since_value(started)}
        return render(request, "goals/portal_goals.html#live", context | {"poll_seconds": poll_seconds()})
    context = {
        "affiliate": affiliate,
        "month": month,
        "month_label": month_label(month),
        "cards": goal_cards(program, affiliate, month, list(goals)),
        "history": past_months(program, affiliate, month),
        "since": since_value(started),
        "poll_seconds": poll_seconds(),
    }
    response = render(request, "goals/portal_goals.html", context)
    patch_vary_headers(response, ["HX-Request"])
    return response


def own_goal_or_404(request: HttpRequest, goal_id: int) -> Goal:
    affiliate = own_affiliate(request)
    return get_in_program_or_404(
        Goal.objects.select_related("affiliate", "progress"), request.program, pk=goal_id, affiliate=affiliate
    )


@affiliate_view
def portal_goal_report(request: HttpRequest, program_slug: str, goal_id: int) -> HttpResponse:
    """The affiliate reports the value of one of their manual goals; a manager confirms it."""
    goal = own_goal_or_404(request, goal_id)
    if goal.kind != GoalKind.MANUAL:
        return redirect(reverse("portal:goals", kwargs={"program_slug": program_slug}))
    initial = {"value": plain(goal.manual_value) if goal.manual_value is not None else None}
    form = ManualValueForm(request.POST or None, initial=initial | {"note": goal.manual_note})
    if request.method == "POST" and form.is_valid():
        try:
            services.report_manual_value(program=request.program, goal=goal, **form.cleaned_data, actor=request.user)
        except ValidationError as error:
            add_service_error(form, error)
        else:
            messages.success(request, _("Thank you: your manager will confirm “%(goal)s”.") % {"goal": goal.label})
            return redirect(reverse("portal:goals", kwargs={"program_slug": program_slug}))
    context = {"form": form, "goal": goal, "month_label": month_label(goal.month)}
    return render(request, "goals/portal_goal_report.html", context, status=400 if form.errors else 200)


@affiliate_view
@program_time
def portal_review(request: HttpRequest, program_slug: str, review_id: int) -> HttpResponse:
    """One of the affiliate's own monthly reviews, once the manager has shared it."""
    affiliate = own_affiliate(request)
    review = get_in_program_or_404(
        MonthlyReview.objects.select_related("affiliate"),
        request.program,
        pk=review_id,
        affiliate=affiliate,
        shared_at__isnull=False,
    )
    context = {"review": review, "portal": True, "month": review.month, "month_label": month_label(review.month)}
    return render(request, "goals/review_detail.html", context)


@affiliate_view
def portal_notification_list(request: HttpRequest, program_slug: str) -> HttpResponse:
    return notification_page(request, "portal")


@require_POST
@affiliate_view
def portal_notifications_read(request: HttpRequest, program_slug: str) -> HttpResponse:
    return mark_read(request, "portal")


@affiliate_view
def portal_notification_badge(request: HttpRequest, program_slug: str) -> HttpResponse:
    return badge(request)
