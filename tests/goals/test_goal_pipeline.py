"""The whole goal pipeline from raw conversions: rollups → progress → close → bonus → reversal → clawback.

Raw conversion rows and their dirty marks are written the way tracking stores them; the rollup loop
recomputes DailyStats and calls goals.services.refresh_goal_progress, as in production.
"""

from datetime import date
from decimal import Decimal

import pytest
import time_machine
from django.db import transaction
from django_scopes import scope, scopes_disabled

from goals.models import BonusEntry, ClawbackEntry, DailyStats, GoalProgress, Notification
from goals.periods import Period
from goals.rollups import process_dirty_keys
from goals.selectors import kpi_values
from goals.services import close_due_months, set_goal
from tracking.dirty import mark_conversions_dirty
from tracking.models import ConversionStatus

from .conftest import utc

pytestmark = pytest.mark.django_db

MAY = date(2026, 5, 1)


def bonuses_on(program, affiliate, day: date) -> Decimal | None:
    with scopes_disabled():
        return (
            DailyStats.objects.filter(program=program, affiliate=affiliate, day=day)
            .values_list("bonuses", flat=True)
            .first()
        )


def test_from_conversions_to_bonus_and_clawback(events, bob_events, django_capture_on_commit_callbacks):
    program, affiliate = events.program, events.affiliate
    with time_machine.travel(utc("2026-04-02 08:00"), tick=False), scope(program=program):
        goal, _created = set_goal(
            program=program,
            affiliate=affiliate,
            month=date(2026, 4, 1),
            kpi="conversions",
            target=3,
            bonus_type="fixed",
            bonus_amount=Decimal(50),
            actor=None,
        )
    # bob's affiliate converts too: nothing of it may reach alice's goal.
    bob_sale = bob_events.conversion("2026-04-03 10:00", status=ConversionStatus.APPROVED, commission="9.00")
    sales = [
        events.conversion(f"2026-04-0{day} 10:00", status=ConversionStatus.APPROVED, commission="10.00")
        for day in (2, 3, 4, 5)
    ]
    with transaction.atomic():
        mark_conversions_dirty(program=program, conversions=sales)
        mark_conversions_dirty(program=bob_events.program, conversions=[bob_sale])

    with time_machine.travel(utc("2026-04-16 10:00"), tick=False), django_capture_on_commit_callbacks(execute=True):
        process_dirty_keys()

    with scopes_disabled():
        progress = GoalProgress.objects.get(goal=goal)
        told = Notification.objects.filter(program=program, goal=goal).count()
    assert (progress.value_confirmed, progress.status_confirmed, told) == (Decimal(4), "met", 3)

    with time_machine.travel(utc("2026-05-06 10:00"), tick=False), scope(program=program):
        [month_close] = close_due_months(program=program)
    with scopes_disabled():
        assert list(BonusEntry.objects.filter(program=program).values_list("goal_id", "amount", "day")) == [
            (goal.pk, Decimal("50.00"), date(2026, 5, 6))
        ]
    assert month_close.status == "done"
    assert bonuses_on(program, affiliate, date(2026, 5, 6)) == Decimal(50)

    # Two April sales are refunded on 10 May: April falls to 2 of 3 after its close.
    with time_machine.travel(utc("2026-05-10 09:00"), tick=False):
        with transaction.atomic():
            for sale in sales[:2]:
                events.change_status(sale, ConversionStatus.REVERSED, "2026-05-10 09:00")
            mark_conversions_dirty(program=program, conversions=sales[:2], moments=[utc("2026-05-10 09:00")])
        with django_capture_on_commit_callbacks(execute=True):
            process_dirty_keys()
            process_dirty_keys()

    with scopes_disabled():
        clawbacks = list(ClawbackEntry.objects.values_list("program_id", "bonus__goal_id", "amount", "month", "day"))
    assert clawbacks == [(program.pk, goal.pk, Decimal("50.00"), MAY, date(2026, 5, 10))]
    assert bonuses_on(program, affiliate, date(2026, 5, 10)) == Decimal(-50)
    with scope(program=program):
        may = kpi_values(program=program, period=Period.month(MAY), kpis=["commission"], affiliate_ids=[affiliate.pk])
    assert may == {affiliate.pk: {"commission": Decimal(0)}}  # the bonus paid in May and taken back in May
