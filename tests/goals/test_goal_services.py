"""Setting goals: one, many, copied, suggested; manual values; and every bad input the issue lists."""

from datetime import date
from decimal import Decimal

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django_scopes import scope, scopes_disabled

from affiliates.models import Affiliate, AffiliateStatus, Tier
from goals.models import Goal, GoalKind, GoalProgress, MonthClose
from goals.selectors import goal_progress_for_month, suggest_targets
from goals.services import (
    accept_suggestions,
    confirm_manual_value,
    copy_goals_from_previous_month,
    delete_goal,
    report_manual_value,
    set_goal,
    set_goals_for_many,
    update_goal_settings,
)
from tests.factories import AffiliateFactory
from tests.goals.builders import APRIL, MARCH, MAY, make_goal, put_stats, utc

pytestmark = pytest.mark.django_db

MID_APRIL = utc("2026-04-16 10:00")


@pytest.fixture(autouse=True)
def _mid_april():
    with time_machine.travel(MID_APRIL, tick=False):
        yield


@pytest.fixture
def program(alice, bob):
    """alice's program, in its scope; bob's program exists beside it, full of its own goals."""
    with scopes_disabled():
        make_goal(bob.affiliate, kpi="clicks", target=Decimal(10))
        make_goal(bob.other_affiliate, kpi="clicks", target=Decimal(10))
    with scope(program=alice.program):
        yield alice.program


def goal(program, affiliate, **fields):
    values = {"month": APRIL, "kpi": "clicks", "target": Decimal(500), "actor": None} | fields
    return set_goal(program=program, affiliate=affiliate, **values)


def test_set_goal_creates_goal_and_its_progress(program, alice):
    put_stats(alice.affiliate, date(2026, 4, 3), clicks=120)

    created_goal, created = goal(program, alice.affiliate, actor=alice.manager)

    assert created is True
    assert (created_goal.kind, created_goal.kpi, created_goal.target, created_goal.created_by) == (
        GoalKind.KPI,
        "clicks",
        Decimal(500),
        alice.manager,
    )
    progress = GoalProgress.objects.get(goal=created_goal)
    assert (progress.value_provisional, progress.progress_provisional) == (Decimal(120), Decimal(24))


def test_set_goal_twice_updates_instead_of_duplicating(program, alice):
    first, created_first = goal(program, alice.affiliate, target=500)
    second, created_second = goal(program, alice.affiliate, target=800, note="stretch")

    assert (created_first, created_second) == (True, False)
    assert first.pk == second.pk
    assert list(Goal.objects.filter(program=program).values_list("target", "note")) == [(Decimal(800), "stretch")]


def test_set_goal_normalizes_any_day_of_the_month(program, alice):
    created_goal, _ = goal(program, alice.affiliate, month=date(2026, 4, 17))
    assert created_goal.month == APRIL


@pytest.mark.parametrize("target", [0, -5, "-0.5"])
def test_set_goal_refuses_target_not_above_zero_for_a_count_kpi(program, alice, target):
    with pytest.raises(ValidationError) as error:
        goal(program, alice.affiliate, target=target)
    assert error.value.message_dict == {"target": ["The target must be greater than zero."]}
    assert not Goal.objects.filter(program=program).exists()


def test_set_goal_refuses_fractional_count(program, alice):
    with pytest.raises(ValidationError) as error:
        goal(program, alice.affiliate, target="10.5")
    assert error.value.message_dict == {"target": ["Clicks are counted in whole numbers."]}


@pytest.mark.parametrize("target", ["", "abc", "NaN", "Infinity", None])
def test_set_goal_refuses_non_numbers(program, alice, target):
    with pytest.raises(ValidationError) as error:
        goal(program, alice.affiliate, target=target)
    assert error.value.message_dict == {"target": ["Enter the target as a number."]}


@pytest.mark.parametrize("kpi", ["click", "DROP TABLE", "", "cost", "active_affiliates"])
def test_set_goal_refuses_unknown_kpi(program, alice, kpi):
    with pytest.raises(ValidationError) as error:
        goal(program, alice.affiliate, kpi=kpi)
    assert error.value.message_dict == {"kpi": [f"“{kpi}” is not a KPI a goal can be set on."]}
    assert not Goal.objects.filter(program=program).exists()


def test_set_goal_refuses_affiliate_of_another_program(program, alice, bob):
    with pytest.raises(ValidationError) as error:
        goal(program, bob.affiliate, actor=alice.manager)

    assert error.value.message_dict == {"affiliate": ["This affiliate does not exist in this program."]}
    with scopes_disabled():
        assert Goal.objects.filter(program=alice.program).count() == 0
        assert Goal.objects.filter(affiliate=bob.affiliate).count() == 1  # only bob's own goal


def test_set_goal_refuses_a_closed_month(program, alice):
    MonthClose.objects.create(program=program, month=MARCH)

    with pytest.raises(ValidationError) as error:
        goal(program, alice.affiliate, month=date(2026, 3, 31))

    assert error.value.messages == ["March 2026 is closed; its goals can no longer be changed."]
    assert not Goal.objects.filter(program=program).exists()


def test_a_closed_month_of_another_program_does_not_close_ours(program, alice, bob):
    with scopes_disabled():
        MonthClose.objects.create(program=bob.program, month=MARCH)
    _goal, created = goal(program, alice.affiliate, month=MARCH)
    assert created is True


def test_percentage_target_over_100_is_refused_where_impossible(program, alice):
    with pytest.raises(ValidationError) as error:
        goal(program, alice.affiliate, kpi="conversion_rate", target="100.01")
    assert error.value.message_dict == {"target": ["A Conversion rate target cannot be above 100."]}

    at_max, _ = goal(program, alice.affiliate, kpi="conversion_rate", target=100)
    # Engagement events per click may exceed one: no maximum there.
    engagement, _ = goal(program, alice.affiliate, kpi="engagement_rate", target=150)
    assert (at_max.target, engagement.target) == (Decimal(100), Decimal(150))


def test_only_managers_set_goals(program, alice):
    for person in (alice.analyst, alice.affiliate_user):
        with pytest.raises(ValidationError) as error:
            goal(program, alice.affiliate, actor=person)
        assert error.value.messages == ["Only the program's owners and managers can do this."]
    assert goal(program, alice.affiliate, actor=alice.owner)[1] is True


def test_bonus_fields_are_validated_and_normalized(program, alice):
    fixed, _ = goal(program, alice.affiliate, bonus_type="fixed", bonus_amount="100")
    assert (fixed.bonus_amount, fixed.bonus_percent, fixed.bonus_tiers) == (Decimal("100.00"), None, [])

    tiers, _ = goal(
        program,
        alice.affiliate,
        bonus_type="tiers",
        bonus_tiers=[{"progress": 120, "amount": "250"}, {"progress": "100", "amount": 100}],
    )
    assert tiers.bonus_tiers == [{"progress": "100", "amount": "100.00"}, {"progress": "120", "amount": "250.00"}]
    assert tiers.bonus_amount is None

    bad_inputs = [
        ({"bonus_type": "fixed", "bonus_amount": 0}, "bonus_amount"),
        ({"bonus_type": "percent", "bonus_percent": 101}, "bonus_percent"),
        ({"bonus_type": "percent", "bonus_percent": 0}, "bonus_percent"),
        ({"bonus_type": "tiers", "bonus_tiers": []}, "bonus_tiers"),
        ({"bonus_type": "tiers", "bonus_tiers": [{"progress": 100, "amount": 5}] * 2}, "bonus_tiers"),
        ({"bonus_type": "tiers", "bonus_tiers": [{"progress": -1, "amount": 5}]}, "bonus_tiers"),
        ({"bonus_type": "jackpot"}, "bonus_type"),
    ]
    for fields, field in bad_inputs:
        with pytest.raises(ValidationError) as error:
            goal(program, alice.affiliate, **fields)
        assert list(error.value.message_dict) == [field]


def test_set_goals_for_many_applies_a_template_to_gold_affiliates(program, alice):
    with scopes_disabled():
        gold = [AffiliateFactory(program=program, status=AffiliateStatus.APPROVED, tier=Tier.GOLD) for _ in range(3)]
    template = [{"kpi": "clicks", "target": 500}, {"kpi": "conversion_rate", "target": 5}]

    written = set_goals_for_many(
        program=program,
        affiliates=Affiliate.objects.filter(program=program, tier=Tier.GOLD),
        month=APRIL,
        goals=template,
        actor=alice.manager,
    )
    again = set_goals_for_many(
        program=program, affiliates=[a.pk for a in gold], month=APRIL, goals=template, actor=alice.manager
    )

    assert (written, again) == (6, 6)
    rows = Goal.objects.filter(program=program).order_by("affiliate_id", "kpi")
    assert [(g.affiliate_id, g.kpi, g.target) for g in rows] == [
        (a.pk, kpi, Decimal(target)) for a in gold for kpi, target in (("clicks", 500), ("conversion_rate", 5))
    ]


def test_set_goals_for_many_validates_everything_before_writing(program, alice):
    with pytest.raises(ValidationError):
        set_goals_for_many(
            program=program,
            affiliates=[alice.affiliate.pk, alice.other_affiliate.pk],
            month=APRIL,
            goals=[{"kpi": "clicks", "target": 500}, {"kpi": "clicks_per_hour", "target": 5}],
            actor=alice.manager,
        )
    assert not Goal.objects.filter(program=program).exists()


def test_set_goals_for_many_refuses_ids_of_another_program(program, alice, bob):
    with pytest.raises(ValidationError) as error:
        set_goals_for_many(
            program=program,
            affiliates=[alice.affiliate.pk, bob.affiliate.pk],
            month=APRIL,
            goals=[{"kpi": "clicks", "target": 500}],
            actor=alice.manager,
        )
    assert error.value.message_dict == {"affiliate": ["This affiliate does not exist in this program."]}
    assert not Goal.objects.filter(program=program).exists()


def test_copy_goals_from_previous_month(program, alice):
    make_goal(alice.affiliate, month=MARCH, kpi="clicks", target=Decimal(400), bonus_type="fixed", bonus_amount=50)
    make_goal(
        alice.affiliate,
        month=MARCH,
        kind=GoalKind.MANUAL,
        kpi="manual",
        label="Publish 4 reviews",
        target=Decimal(4),
        manual_value=Decimal(4),
        manual_confirmed=True,
    )
    make_goal(alice.other_affiliate, month=MARCH, kpi="clicks", target=Decimal(300))
    make_goal(alice.other_affiliate, month=APRIL, kpi="clicks", target=Decimal(999))  # already set: kept
    with scopes_disabled():
        suspended = AffiliateFactory(program=program, status=AffiliateStatus.SUSPENDED)
    make_goal(suspended, month=MARCH, kpi="clicks", target=Decimal(1))

    created = copy_goals_from_previous_month(program=program, month=APRIL, actor=alice.manager)
    again = copy_goals_from_previous_month(program=program, month=APRIL, actor=alice.manager)

    assert (created, again) == (2, 0)
    april = Goal.objects.filter(program=program, month=APRIL).order_by("affiliate_id", "kpi")
    assert [(g.affiliate_id, g.kpi, g.label, g.target, g.bonus_type, g.manual_value) for g in april] == [
        (alice.affiliate.pk, "clicks", "", Decimal(400), "fixed", None),
        (alice.affiliate.pk, "manual", "Publish 4 reviews", Decimal(4), "", None),
        (alice.other_affiliate.pk, "clicks", "", Decimal(999), "", None),
    ]


def test_copy_into_a_closed_month_is_refused(program, alice):
    make_goal(alice.affiliate, month=MARCH, kpi="clicks")
    MonthClose.objects.create(program=program, month=APRIL)
    with pytest.raises(ValidationError):
        copy_goals_from_previous_month(program=program, month=APRIL, actor=alice.manager)


def test_suggest_targets_takes_the_median_of_three_months_times_growth(program, alice, bob):
    affiliate = alice.affiliate
    for month, clicks, conversions in ((1, 1000, 10), (2, 400, 40), (3, 700, 14)):
        put_stats(affiliate, date(2026, month, 10), clicks=clicks, conversions_approved=conversions)
        put_stats(affiliate, date(2026, month, 11), conversions_pending=100)  # confirmed view ignores these
    put_stats(alice.other_affiliate, date(2026, 3, 5), clicks=0)
    put_stats(bob.affiliate, date(2026, 3, 5), clicks=99999)  # another program: never counted
    put_stats(affiliate, date(2025, 12, 10), clicks=1_000_000)  # four months back: outside the window

    suggestions = suggest_targets(
        program=program,
        month=APRIL,
        kpis=["clicks", "conversion_rate", "cpa"],
        growth=Decimal("1.10"),
        affiliate_ids=[affiliate.pk, alice.other_affiliate.pk],
    )

    # clicks: median(1000, 400, 700) = 700 × 1.1; conversion rate: median(1, 10, 2) = 2 × 1.1; no cost: no CPA.
    assert suggestions == {
        affiliate.pk: {"clicks": Decimal(770), "conversion_rate": Decimal("2.20"), "cpa": None},
        alice.other_affiliate.pk: {"clicks": None, "conversion_rate": None, "cpa": None},
    }


def test_suggest_targets_lower_is_better_divides_and_percentages_are_capped(program, alice):
    for month in (1, 2, 3):
        put_stats(
            alice.affiliate,
            date(2026, month, 10),
            clicks=100,
            conversions_approved=95,
            commission_approved="1100.00",
            new_customers_approved=10,
        )
    suggestions = suggest_targets(
        program=program,
        month=APRIL,
        kpis=["cpa", "conversion_rate"],
        growth=Decimal("1.10"),
        affiliate_ids=[alice.affiliate.pk],
    )
    assert suggestions == {alice.affiliate.pk: {"cpa": Decimal("100.00"), "conversion_rate": Decimal(100)}}


def test_accept_suggestions_sets_goals_and_keeps_bonuses(program, alice):
    goal(program, alice.affiliate, kpi="clicks", target=100, bonus_type="fixed", bonus_amount=20)
    written = accept_suggestions(
        program=program,
        month=APRIL,
        suggestions={
            alice.affiliate.pk: {"clicks": Decimal(770), "cpa": None},
            alice.other_affiliate.pk: {"conversion_rate": Decimal("2.20")},
        },
        actor=alice.manager,
    )
    assert written == 2
    rows = Goal.objects.filter(program=program).order_by("affiliate_id")
    assert [(g.affiliate_id, g.kpi, g.target, g.bonus_amount) for g in rows] == [
        (alice.affiliate.pk, "clicks", Decimal(770), Decimal(20)),
        (alice.other_affiliate.pk, "conversion_rate", Decimal("2.20"), None),
    ]


def manual_goal(program, alice):
    return goal(program, alice.affiliate, kpi="manual", label="Publish 4 reviews", target=4)[0]


def test_manual_goal_needs_a_label(program, alice):
    with pytest.raises(ValidationError) as error:
        goal(program, alice.affiliate, kpi="manual", target=4)
    assert list(error.value.message_dict) == ["label"]


def test_manual_value_by_affiliate_waits_for_confirmation(program, alice):
    reviews = manual_goal(program, alice)

    report_manual_value(program=program, goal=reviews, value=4, note="4 reviews live", actor=alice.affiliate_user)
    progress = GoalProgress.objects.get(goal=reviews)
    assert (progress.value_provisional, progress.value_confirmed, progress.status, progress.status_confirmed) == (
        Decimal(4),
        None,
        "met",
        "not_enough_data",
    )

    confirm_manual_value(program=program, goal=reviews, actor=alice.manager)
    progress.refresh_from_db()
    reviews.refresh_from_db()
    assert (reviews.manual_note, reviews.manual_confirmed) == ("4 reviews live", True)
    assert (progress.value_confirmed, progress.status_confirmed) == (Decimal(4), "met")


def test_manual_value_by_manager_counts_as_confirmed(program, alice):
    reviews = manual_goal(program, alice)
    report_manual_value(program=program, goal=reviews, value=2, note="two so far", actor=alice.manager)
    progress = GoalProgress.objects.get(goal=reviews)
    assert (progress.value_confirmed, progress.progress_confirmed) == (Decimal(2), Decimal(50))


def test_manual_value_bad_inputs(program, alice):
    reviews = manual_goal(program, alice)
    measured, _ = goal(program, alice.affiliate, kpi="clicks")
    cases = [
        ({"goal": reviews, "value": -1, "note": "x", "actor": alice.manager}, ["The value cannot be negative."]),
        ({"goal": reviews, "value": 1, "note": " ", "actor": alice.manager}, ["Add a note saying what was done."]),
        (
            {"goal": reviews, "value": 1, "note": "x", "actor": alice.other_affiliate_user},
            ["Only the affiliate of this goal or a manager can report its value."],
        ),
        (
            {"goal": measured, "value": 1, "note": "x", "actor": alice.manager},
            ["Only manual goals take a reported value; this one is measured."],
        ),
    ]
    for arguments, messages in cases:
        with pytest.raises(ValidationError) as error:
            report_manual_value(program=program, **arguments)
        assert error.value.messages == messages
    with pytest.raises(ValidationError) as error:
        confirm_manual_value(program=program, goal=reviews, actor=alice.manager)
    assert error.value.messages == ["Nothing has been reported for this goal yet."]
    with pytest.raises(ValidationError):
        confirm_manual_value(program=program, goal=reviews, actor=alice.affiliate_user)


def test_manual_value_of_a_closed_month_is_refused(program, alice):
    reviews = manual_goal(program, alice)
    MonthClose.objects.create(program=program, month=APRIL)
    with pytest.raises(ValidationError) as error:
        report_manual_value(program=program, goal=reviews, value=4, note="done", actor=alice.manager)
    assert error.value.messages == ["April 2026 is closed; its goals can no longer be changed."]


def test_delete_goal_only_in_open_months(program, alice):
    april_goal, _ = goal(program, alice.affiliate)
    march_goal = make_goal(alice.affiliate, month=MARCH)
    MonthClose.objects.create(program=program, month=MARCH)

    delete_goal(program=program, goal=april_goal, actor=alice.manager)
    with pytest.raises(ValidationError):
        delete_goal(program=program, goal=march_goal, actor=alice.manager)

    assert list(Goal.objects.filter(program=program).values_list("pk", flat=True)) == [march_goal.pk]


def test_goal_progress_for_month_lists_only_the_programs_goals(program, alice, django_assert_num_queries):
    goal(program, alice.affiliate, kpi="clicks")
    goal(program, alice.affiliate, kpi="conversions", target=10)
    goal(program, alice.other_affiliate, kpi="clicks")
    goal(program, alice.other_affiliate, kpi="clicks", month=MAY)

    with django_assert_num_queries(1):
        rows = [
            (g.affiliate.name, g.kpi, g.progress.status) for g in goal_progress_for_month(program=program, month=APRIL)
        ]

    assert rows == [
        ("alice partner one", "clicks", "behind"),
        ("alice partner one", "conversions", "behind"),
        ("alice partner two", "clicks", "behind"),
    ]


def test_update_goal_settings(program, alice):
    settings = update_goal_settings(program=program, actor=alice.owner, month_close_grace_days=2, notify_managers=False)
    assert (settings.month_close_grace_days, settings.notify_affiliates, settings.notify_managers) == (2, True, False)
    with pytest.raises(ValidationError):
        update_goal_settings(program=program, actor=alice.owner, month_close_grace_days=40)
