"""KPI.md's worked examples, each reproduced exactly through the one registry and the goal arithmetic."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from affiliates.models import Program
from goals.kpis import REGISTRY, empty_counters, evaluate
from goals.pace import evaluate_goal
from goals.periods import elapsed_share, month_of

TWO = Decimal("0.01")


def counters(**values):
    data = empty_counters()
    data.update({name: Decimal(value) for name, value in values.items()})
    return data


def shown(value: Decimal | None) -> str | None:
    """How the UI shows a ratio: two decimals, or None (rendered "—")."""
    return None if value is None else str(value.quantize(TWO))


def test_example_1_conversion_rate():
    assert shown(REGISTRY["conversion_rate"].value(counters(clicks=1000, conversions=50))) == "5.00"


def test_example_2_cpa():
    assert shown(REGISTRY["cpa"].value(counters(commission_conversions=1000, new_customers=20))) == "50.00"


def test_example_3_roi():
    assert shown(REGISTRY["roi"].value(counters(commission_conversions=1000, revenue=3000))) == "200.00"


def test_example_4_ltv():
    values = counters(customer_revenue_to_date=500 * 37, customers_acquired_to_date=37)
    assert shown(REGISTRY["ltv"].value(values)) == "500.00"


def test_example_5_engagement_rate():
    assert shown(REGISTRY["engagement_rate"].value(counters(clicks=1000, engagements=100))) == "10.00"


def test_example_6_churn_rate():
    values = counters(customers_acquired_before=230, customers_lost_before=30, customers_lost=10)
    assert shown(REGISTRY["churn_rate"].value(values)) == "5.00"


def test_example_7_pace_on_day_10_of_a_30_day_month():
    program = Program(timezone="Europe/Warsaw")
    now = datetime(2026, 4, 9, 22, 0, tzinfo=UTC)  # 10 April 00:00 in Warsaw (UTC+2): 9 days gone
    elapsed = elapsed_share(program, date(2026, 4, 1), now)
    state = evaluate_goal(
        kpi=REGISTRY["conversions"],
        target=Decimal(100),
        value=Decimal(40),
        volume=Decimal(40),
        min_volume=None,
        elapsed=elapsed,
    )
    assert shown(elapsed) == "0.30"
    assert shown(state.expected_now) == "30.00"
    assert shown(state.projection) == "133.33"
    assert state.status == "on_track"
    assert shown(state.progress) == "40.00"


def test_example_8_zero_clicks_is_undefined_and_not_enough_data():
    values = evaluate(counters(clicks=0, commission_conversions=12), ["conversion_rate", "epc", "cpc"])
    assert values == {"conversion_rate": None, "epc": None, "cpc": None}
    state = evaluate_goal(
        kpi=REGISTRY["conversion_rate"],
        target=Decimal(5),
        value=None,
        volume=Decimal(0),
        min_volume=None,
        elapsed=Decimal("0.5"),
    )
    assert state.status == "not_enough_data"
    assert state.progress is None


def test_example_9_warsaw_conversion_at_month_end_counts_in_april():
    moment = datetime(2026, 3, 31, 22, 30, tzinfo=UTC)
    assert month_of(Program(timezone="Europe/Warsaw"), moment) == date(2026, 4, 1)
    assert month_of(Program(timezone="UTC"), moment) == date(2026, 3, 1)


@pytest.mark.parametrize(
    ("value", "status"),
    [(Decimal(100), "met"), (Decimal(31), "on_track"), (Decimal(25), "at_risk"), (Decimal(20), "behind")],
)
def test_status_thresholds_for_a_count_goal(value, status):
    state = evaluate_goal(
        kpi=REGISTRY["clicks"], target=Decimal(100), value=value, volume=value, min_volume=None, elapsed=Decimal("0.3")
    )
    assert state.status == status


@pytest.mark.parametrize(
    ("value", "status", "progress"),
    [
        (Decimal(40), "met", "125.00"),
        (Decimal(0), "met", "100.00"),
        (Decimal(60), "at_risk", "83.33"),
        (Decimal(80), "behind", "62.50"),
    ],
)
def test_lower_is_better_mirrors(value, status, progress):
    state = evaluate_goal(
        kpi=REGISTRY["cpa"],
        target=Decimal(50),
        value=value,
        volume=Decimal(10),
        min_volume=None,
        elapsed=Decimal("0.5"),
    )
    assert (state.status, shown(state.progress)) == (status, progress)


def test_ratio_below_minimum_volume_is_not_enough_data():
    state = evaluate_goal(
        kpi=REGISTRY["conversion_rate"],
        target=Decimal(5),
        value=Decimal(50),
        volume=Decimal(2),
        min_volume=None,
        elapsed=Decimal("0.5"),
    )
    assert state.status == "not_enough_data"


def test_elapsed_is_wall_clock_across_the_dst_change():
    program = Program(timezone="Europe/Warsaw")
    # Summer time starts 29 March 2026: the local month has 743 real hours, but day 10 is still 9/31.
    now = datetime(2026, 3, 9, 23, 0, tzinfo=UTC)  # 10 March 00:00 local (UTC+1)
    assert elapsed_share(program, date(2026, 3, 1), now) == Decimal(9) / Decimal(31)
    later = datetime(2026, 3, 30, 22, 0, tzinfo=UTC)  # 31 March 00:00 local (UTC+2)
    assert elapsed_share(program, date(2026, 3, 1), later) == Decimal(30) / Decimal(31)


def test_every_kpi_of_kpi_md_is_registered():
    assert set(REGISTRY) >= {
        "clicks",
        "unique_clicks",
        "impressions",
        "conversions",
        "sales",
        "leads",
        "revenue",
        "commission",
        "new_customers",
        "active_affiliates",
        "reversals",
        "ctr",
        "conversion_rate",
        "aov",
        "epc",
        "cost",
        "cpc",
        "cpl",
        "cpa",
        "roi",
        "ltv",
        "churn_rate",
        "engagement_rate",
        "reversal_rate",
    }
