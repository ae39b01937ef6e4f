"""kpi_values over real DailyStats rows: every grouping in one query, and nothing from another program."""

from datetime import date
from decimal import Decimal

import pytest
from django_scopes import scope

from goals.periods import Period
from goals.selectors import GroupBy, counters_for, kpi_values
from tests.goals.builders import APRIL, put_stats

pytestmark = pytest.mark.django_db


@pytest.fixture
def stats(alice, bob):
    put_stats(alice.affiliate, date(2026, 3, 31), clicks=500, new_customers_approved=20)  # before April
    put_stats(alice.affiliate, date(2026, 4, 1), clicks=1000, conversions_approved=30, conversions_pending=20)
    put_stats(alice.affiliate, date(2026, 4, 30), clicks=0, customers_lost=2)
    put_stats(alice.other_affiliate, date(2026, 4, 15), clicks=10)
    put_stats(alice.affiliate, date(2026, 5, 1), clicks=7777)  # after April
    put_stats(bob.affiliate, date(2026, 4, 10), clicks=99999, conversions_approved=999)


def test_kpi_values_per_affiliate_in_one_query(alice, stats, django_assert_num_queries):
    with scope(program=alice.program), django_assert_num_queries(1):
        values = kpi_values(
            program=alice.program, period=Period.month(APRIL), kpis=["clicks", "conversion_rate", "churn_rate"]
        )
    assert values == {
        alice.affiliate.pk: {"clicks": Decimal(1000), "conversion_rate": Decimal(5), "churn_rate": Decimal(10)},
        alice.other_affiliate.pk: {"clicks": Decimal(10), "conversion_rate": Decimal(0), "churn_rate": None},
    }


def test_kpi_values_confirmed_view_counts_approved_only(alice, stats):
    with scope(program=alice.program):
        values = kpi_values(
            program=alice.program,
            period=Period.month(APRIL),
            kpis=["conversions"],
            affiliate_ids=[alice.affiliate.pk],
            view="confirmed",
        )
    assert values == {alice.affiliate.pk: {"conversions": Decimal(30)}}


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        (GroupBy.NONE, {None: Decimal(1010)}),
        (GroupBy.DAY, {date(2026, 4, 1): Decimal(1000), date(2026, 4, 15): Decimal(10), date(2026, 4, 30): 0}),
        (GroupBy.MONTH, {APRIL: Decimal(1010)}),
    ],
)
def test_counters_for_every_grouping(alice, stats, group_by, expected, django_assert_num_queries):
    with scope(program=alice.program), django_assert_num_queries(1):
        counters = counters_for(program=alice.program, period=Period.month(APRIL), group_by=group_by)
    assert {key: values["clicks"] for key, values in counters.items()} == expected
