"""Builders for goal tests: DailyStats rows written directly (what the rollups produce), goals and times.

Goal tests feed kpi_values through real DailyStats rows rather than raw events, so they test the goal
logic alone; the rollups have their own tests from raw events.
"""

from datetime import UTC, date, datetime
from decimal import Decimal

import factory
from django_scopes import scopes_disabled

from goals.models import DailyStats, Goal
from tests.factories import AffiliateFactory, ProgramFactory

APRIL = date(2026, 4, 1)
MARCH = date(2026, 3, 1)
MAY = date(2026, 5, 1)


def utc(text: str) -> datetime:
    """'2026-04-09 22:00' as an aware UTC instant."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class DailyStatsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DailyStats

    program = factory.SubFactory(ProgramFactory)
    affiliate = factory.SubFactory(AffiliateFactory, program=factory.SelfAttribute("..program"))
    day = APRIL


class GoalFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Goal

    program = factory.SubFactory(ProgramFactory)
    affiliate = factory.SubFactory(AffiliateFactory, program=factory.SelfAttribute("..program"))
    month = APRIL
    kpi = "conversions"
    target = Decimal(100)


def put_stats(affiliate, day: date, **counters) -> DailyStats:
    """Set one affiliate's counters on one local day (absolute values, like a rollup recompute)."""
    values = {name: Decimal(str(value)) if isinstance(value, str) else value for name, value in counters.items()}
    with scopes_disabled():
        row, _created = DailyStats.objects.update_or_create(
            program_id=affiliate.program_id, affiliate=affiliate, day=day, defaults=values
        )
    return row


def make_goal(affiliate, **fields) -> Goal:
    with scopes_disabled():
        return GoalFactory(program=affiliate.program, affiliate=affiliate, **fields)
