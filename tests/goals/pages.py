"""Helpers of the goal page tests: goals with stored progress, laid out the way the pipeline leaves them."""

import re
from datetime import date
from decimal import Decimal

from django.urls import reverse
from django_scopes import scope, scopes_disabled

from goals.models import Goal, GoalProgress
from goals.progress import refresh_goal_progress
from tests.goals.builders import APRIL, make_goal, put_stats, utc

# Mid-April in Warsaw (UTC+2): 15 days and 12 hours of 30 are gone, elapsed share 0.5166…
MID_APRIL = utc("2026-04-16 10:00")


def goal_with_stats(affiliate, *, kpi: str = "clicks", target, month: date = APRIL, **fields) -> Goal:
    """A goal of ``affiliate`` whose stored progress reflects the DailyStats written so far."""
    goal = make_goal(affiliate, kpi=kpi, target=Decimal(str(target)), month=month, **fields)
    refresh(affiliate.program, month)
    return goal


def refresh(program, month: date = APRIL, affiliate_ids=None) -> None:
    """What the rollups do after recomputing days: refresh the stored progress (of some affiliates)."""
    with scopes_disabled(), scope(program=program):
        refresh_goal_progress(program=program, month=month, affiliate_ids=affiliate_ids)


def progress_of(goal: Goal) -> GoalProgress:
    with scopes_disabled():
        return GoalProgress.objects.get(goal=goal)


def board(program, month: date = APRIL) -> str:
    return reverse("manage:goal_board", kwargs={"program_slug": program.slug, "month": month})


def cell_ids(html: str) -> list[str]:
    """The ids of goal cells in a response, in order."""
    return re.findall(r'<td id="(goal-cell-[^"]+)"', html)


def stats(affiliate, day: date, **counters) -> None:
    put_stats(affiliate, day, **counters)
