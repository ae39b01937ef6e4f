"""The board's goal-column sort, read from GoalProgress's own month and KPI (progress_board_idx)."""

from decimal import Decimal

import pytest
from django_scopes import scope, scopes_disabled

from affiliates.models import AffiliateStatus, Tier
from goals.board import BoardColumn, BoardFilters, filtered_affiliates, sorted_affiliates
from goals.models import GoalProgress
from tests.factories import AffiliateFactory
from tests.goals.builders import APRIL, MARCH, make_goal

pytestmark = pytest.mark.django_db

MISSING = ["alice partner one", "alice partner two", "no progress", "not enough data", "other kpi only"]


def approved(program, name: str, tier: str = Tier.STANDARD):
    with scopes_disabled():
        return AffiliateFactory(program=program, name=name, status=AffiliateStatus.APPROVED, tier=tier)


def clicks_goal(affiliate, progress: Decimal | None, *, kpi: str = "clicks", month=APRIL):
    goal = make_goal(affiliate, kpi=kpi, target=Decimal(1000), month=month)
    with scopes_disabled():
        GoalProgress.objects.create(
            program=affiliate.program, goal=goal, month=goal.month, kpi=goal.kpi, progress_provisional=progress
        )
    return goal


@pytest.fixture
def ranked(alice, bob):
    """alice's program: clicks progress of 120, 50 and 50 (names differing in case), and four kinds of missing."""
    program = alice.program
    clicks_goal(approved(program, "top", tier=Tier.GOLD), Decimal(120))
    clicks_goal(approved(program, "Tie beta"), Decimal(50))
    clicks_goal(approved(program, "tie alpha"), Decimal(50))
    clicks_goal(approved(program, "not enough data"), None)
    make_goal(approved(program, "no progress"), kpi="clicks", target=Decimal(1000))
    other = approved(program, "other kpi only", tier=Tier.GOLD)
    clicks_goal(other, Decimal(10), kpi="conversions")
    clicks_goal(other, Decimal(1), month=MARCH)  # another month's clicks
    # bob's program holds the lowest clicks progress of all; alice's board never sees it.
    clicks_goal(approved(bob.program, "bob's best"), Decimal(0))
    return program


def names(program, sort: str, **filters) -> list[str]:
    columns = [BoardColumn("clicks"), BoardColumn("conversions")]
    with scope(program=program):
        listed = filtered_affiliates(program=program, month=APRIL, filters=BoardFilters(**filters))
        ordered = sorted_affiliates(listed, program=program, month=APRIL, sort=sort, columns=columns)
        return [affiliate.name for affiliate in ordered]


def test_goal_column_sorts_ascending_with_ties_by_lowercased_name_and_missing_goals_last(ranked):
    assert names(ranked, "goal:clicks") == ["tie alpha", "Tie beta", "top", *MISSING]


def test_goal_column_sorts_descending_with_missing_goals_still_last(ranked):
    assert names(ranked, "-goal:clicks") == ["top", "tie alpha", "Tie beta", *MISSING]


def test_goal_column_sort_keeps_the_filters(ranked):
    assert names(ranked, "-goal:clicks", tier=Tier.GOLD) == ["top", "other kpi only"]
    assert names(ranked, "goal:clicks", q="tie") == ["tie alpha", "Tie beta"]
    # Only one affiliate holds a conversions goal; everyone else follows by name, however clicks went.
    by_name = [*MISSING[:4], "tie alpha", "Tie beta", "top"]
    assert names(ranked, "goal:conversions") == ["other kpi only", *by_name]
