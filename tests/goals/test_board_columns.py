"""The goal board's columns (read one index probe per KPI) and its rows' tier labels."""

from decimal import Decimal

import pytest
import time_machine
from django_scopes import scope, scopes_disabled

from affiliates.models import Tier
from goals.board import board_columns
from goals.models import GoalKind
from tests.goals.builders import APRIL, MARCH, MAY, make_goal
from tests.goals.pages import MID_APRIL, board

pytestmark = pytest.mark.django_db


def columns_of(program, month) -> list[str]:
    with scope(program=program):
        return [column.key for column in board_columns(program=program, month=month)]


def manual_goal(affiliate, label: str, month=APRIL):
    return make_goal(affiliate, kpi="manual", kind=GoalKind.MANUAL, label=label, target=Decimal(4), month=month)


def test_board_columns_are_the_months_kpis_in_registry_order_with_manual_activities_last(alice, bob):
    manual_goal(alice.affiliate, "Publish 4 reviews")
    manual_goal(alice.other_affiliate, "Record a video")
    make_goal(alice.affiliate, kpi="conversion_rate", target=Decimal(5))
    make_goal(alice.other_affiliate, kpi="conversion_rate", target=Decimal(5))
    make_goal(alice.other_affiliate, kpi="revenue", target=Decimal(5000))
    make_goal(alice.affiliate, kpi="clicks", target=Decimal(1000))
    # Other months and other programs hold other KPIs; none of them is a column of alice's April.
    make_goal(alice.affiliate, kpi="epc", target=Decimal(1), month=MARCH)
    make_goal(bob.affiliate, kpi="cpa", target=Decimal(50))
    make_goal(bob.affiliate, kpi="sales", target=Decimal(50))

    assert columns_of(alice.program, APRIL) == ["clicks", "revenue", "conversion_rate", "manual"]
    assert columns_of(bob.program, APRIL) == ["sales", "cpa"]


def test_board_columns_of_a_month_without_goals_are_empty(alice, bob):
    make_goal(alice.affiliate, kpi="clicks", target=Decimal(1000))
    make_goal(bob.affiliate, kpi="clicks", target=Decimal(1000), month=MAY)

    assert columns_of(alice.program, MAY) == []


def test_board_rows_show_each_affiliates_tier(client, alice):
    with scopes_disabled():
        alice.affiliate.tier = Tier.GOLD
        alice.affiliate.save()
    make_goal(alice.affiliate, kpi="clicks", target=Decimal(1000))
    client.force_login(alice.manager)

    with time_machine.travel(MID_APRIL, tick=False):
        response = client.get(board(alice.program))

    assert [(row.affiliate.name, row.tier_label) for row in response.context["rows"]] == [
        ("alice partner one", "Gold"),
        ("alice partner two", "Standard"),
    ]
    html = response.content.decode()
    assert f'<tr id="board-row-{alice.affiliate.pk}">' in html
    assert "<td>Gold</td>" in html


@pytest.mark.parametrize("goals_each", [1, 3])
def test_board_reads_goals_without_progress_in_the_same_query(
    client, alice, bob, django_assert_num_queries, goals_each
):
    # May has not begun: its goals have no progress rows yet, and each cell says so without a query of its own.
    for affiliate in (alice.affiliate, alice.other_affiliate, bob.affiliate):
        for kpi in ["clicks", "conversions", "conversion_rate"][:goals_each]:
            make_goal(affiliate, kpi=kpi, target=Decimal(10), month=MAY)
    client.force_login(alice.manager)

    # session, user, program, membership; columns, page count, page rows, their goals with progress, closed?;
    # the program switcher's memberships
    with time_machine.travel(MID_APRIL, tick=False), django_assert_num_queries(10):
        response = client.get(board(alice.program, MAY))

    cells = [cell for row in response.context["rows"] for cell in row.cells]
    assert [len(cell.goals) for cell in cells] == [1] * (2 * goals_each)
    assert response.content.decode().count("No progress yet") == 2 * goals_each
