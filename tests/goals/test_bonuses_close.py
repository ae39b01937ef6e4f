"""Month close: frozen results, bonuses decided once on confirmed values, reviews, grace periods, clawbacks."""

from datetime import date
from decimal import Decimal

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django_scopes import scope, scopes_disabled

from goals.closing import close_due_months, close_month, record_clawbacks_for_closed_months
from goals.models import (
    BonusEntry,
    ClawbackEntry,
    DailyStats,
    GoalProgress,
    MonthClose,
    MonthlyReview,
    Notification,
)
from goals.progress import refresh_goal_progress
from goals.selectors import bonus_total_by_day
from goals.services import annotate_review, set_goal, share_review, update_goal_settings
from goals.tasks import close_due_months_task
from tests.goals.builders import APRIL, MARCH, MAY, make_goal, put_stats, utc

pytestmark = pytest.mark.django_db

CLOSE_TIME = utc("2026-05-06 10:00")  # 6 May in Warsaw: after April's 5-day grace period
CLOSE_DAY = date(2026, 5, 6)


@pytest.fixture
def program(alice, bob):
    """alice's program in its scope; bob's has a met goal with a bonus in April too, which must stay his."""
    make_goal(bob.affiliate, kpi="conversions", target=Decimal(1), bonus_type="fixed", bonus_amount=Decimal(999))
    put_stats(bob.affiliate, date(2026, 4, 2), conversions_approved=5)
    with scope(program=alice.program):
        yield alice.program


def fixed_goal(affiliate, *, target=10, amount=100, **fields):
    return make_goal(
        affiliate, kpi="conversions", target=Decimal(target), bonus_type="fixed", bonus_amount=Decimal(amount), **fields
    )


def bonuses(program) -> list[tuple[int, Decimal]]:
    return list(BonusEntry.objects.filter(program=program).order_by("goal_id").values_list("goal_id", "amount"))


def close(program, now=CLOSE_TIME, **options):
    return close_month(program=program, month=APRIL, now=now, **options)


def test_close_awards_fixed_bonus_on_confirmed_values_only(program, alice, bob):
    met = fixed_goal(alice.affiliate)
    provisional_only = fixed_goal(alice.other_affiliate)
    without_bonus = make_goal(alice.affiliate, kpi="clicks", target=Decimal(10))
    put_stats(alice.affiliate, date(2026, 4, 20), conversions_approved=12, clicks=50)
    put_stats(alice.other_affiliate, date(2026, 4, 20), conversions_pending=8, conversions_approved=5)

    month_close = close(program)

    assert (month_close.status, month_close.month) == ("done", APRIL)
    assert bonuses(program) == [(met.pk, Decimal("100.00"))]
    entry = BonusEntry.objects.get(goal=met)
    assert (entry.month, entry.day, entry.affiliate_id) == (APRIL, CLOSE_DAY, alice.affiliate.pk)
    assert entry.explanation == "Goal “Conversions” for April 2026 met with 12 of 10 (120 %): fixed bonus."
    frozen = {p.goal_id: (p.final, p.status, p.status_confirmed, p.elapsed) for p in GoalProgress.objects.all()}
    assert frozen == {
        met.pk: (True, "met", "met", Decimal(1)),
        provisional_only.pk: (True, "met", "behind", Decimal(1)),
        without_bonus.pk: (True, "met", "met", Decimal(1)),
    }
    # The bonus counts in commission and cost on the day of the close, in May (an open month).
    stats = DailyStats.objects.get(program=program, affiliate=alice.affiliate, day=CLOSE_DAY)
    assert stats.bonuses == Decimal("100.00")
    assert bonus_total_by_day(program=program, affiliate_id=alice.affiliate.pk, day=CLOSE_DAY) == Decimal(100)
    with scopes_disabled():
        assert not BonusEntry.objects.filter(program=bob.program).exists()  # bob's month is not closed


def test_percent_bonus_is_of_confirmed_commission_without_bonuses(program, alice):
    goal = make_goal(
        alice.affiliate, kpi="conversions", target=Decimal(10), bonus_type="percent", bonus_percent=Decimal("12.5")
    )
    put_stats(
        alice.affiliate,
        date(2026, 4, 20),
        conversions_approved=10,
        commission_approved="1000.04",
        commission_pending="500.00",  # not confirmed: not in the base
        bonuses="300.00",  # a March bonus booked in April: bonuses never compound
    )

    close(program)

    entry = BonusEntry.objects.get(goal=goal)
    assert entry.amount == Decimal("125.01")  # 12.5 % of 1,000.04, rounded half up
    assert entry.explanation == (
        "Goal “Conversions” for April 2026 met with 10 of 10 (100 %): "
        "12.5 % of the month's confirmed commission of 1000.04."
    )


@pytest.mark.parametrize(
    ("approved", "amount"),
    [(9, None), (10, Decimal("100.00")), (12, Decimal("250.00")), (16, Decimal("500.00"))],
)
def test_tier_bonus_pays_the_highest_tier_reached_only(program, alice, approved, amount):
    tiers = [
        {"progress": "100", "amount": "100"},
        {"progress": "120", "amount": "250"},
        {"progress": "150", "amount": "500"},
    ]
    goal = make_goal(alice.affiliate, kpi="conversions", target=Decimal(10), bonus_type="tiers", bonus_tiers=tiers)
    put_stats(alice.affiliate, date(2026, 4, 20), conversions_approved=approved)

    close(program)

    assert bonuses(program) == ([] if amount is None else [(goal.pk, amount)])


def test_a_tier_below_100_percent_pays_without_the_goal_being_met(program, alice):
    tiers = [{"progress": "80", "amount": "40"}, {"progress": "100", "amount": "100"}]
    goal = make_goal(alice.affiliate, kpi="conversions", target=Decimal(10), bonus_type="tiers", bonus_tiers=tiers)
    put_stats(alice.affiliate, date(2026, 4, 20), conversions_approved=9)

    close(program)

    assert bonuses(program) == [(goal.pk, Decimal("40.00"))]


def test_close_run_twice_awards_once(program, alice):
    goal = fixed_goal(alice.affiliate)
    put_stats(alice.affiliate, date(2026, 4, 20), conversions_approved=12)

    first = close(program)
    second = close(program, now=utc("2026-05-07 10:00"))

    assert first.pk == second.pk
    assert bonuses(program) == [(goal.pk, Decimal("100.00"))]
    assert DailyStats.objects.get(program=program, affiliate=alice.affiliate, day=CLOSE_DAY).bonuses == Decimal(100)


def test_database_refuses_a_second_bonus_for_a_goal(program, alice):
    goal = fixed_goal(alice.affiliate)
    put_stats(alice.affiliate, date(2026, 4, 20), conversions_approved=12)
    close(program)

    with pytest.raises(IntegrityError), transaction.atomic():
        BonusEntry.objects.create(
            program=program,
            affiliate=alice.affiliate,
            goal=goal,
            month=APRIL,
            day=CLOSE_DAY,
            amount=Decimal(100),
            explanation="again",
        )


def test_close_interrupted_mid_award_resumes_to_the_clean_result(program, alice):
    goals = [fixed_goal(alice.affiliate, amount=10), fixed_goal(alice.other_affiliate, amount=20)]
    goals.append(fixed_goal(alice.affiliate, amount=30, label="second"))
    put_stats(alice.affiliate, date(2026, 4, 20), conversions_approved=12)
    put_stats(alice.other_affiliate, date(2026, 4, 20), conversions_approved=12)

    def crash(awarded: int) -> None:
        raise RuntimeError(f"worker died after {awarded} bonuses")

    with pytest.raises(RuntimeError):
        close(program, batch_size=1, after_bonus_batch=crash)
    assert MonthClose.objects.get(program=program, month=APRIL).status == "running"
    assert len(bonuses(program)) == 1
    assert not MonthlyReview.objects.filter(program=program).exists()

    resumed = close(program, now=utc("2026-05-06 11:00"), batch_size=1)

    assert resumed.status == "done"
    assert bonuses(program) == [(goal.pk, goal.bonus_amount) for goal in goals]
    assert set(BonusEntry.objects.values_list("day", flat=True)) == {CLOSE_DAY}  # the first run's day
    assert MonthlyReview.objects.filter(program=program).count() == 2


def test_a_resumed_close_keeps_the_results_its_first_run_froze(program, alice):
    first = fixed_goal(alice.affiliate, amount=10)
    second = fixed_goal(alice.other_affiliate, amount=20)
    put_stats(alice.affiliate, date(2026, 4, 20), conversions_approved=12)
    put_stats(alice.other_affiliate, date(2026, 4, 20), conversions_approved=12)

    def crash(awarded: int) -> None:
        raise RuntimeError("worker died")

    with pytest.raises(RuntimeError):
        close(program, batch_size=1, after_bonus_batch=crash)
    # A reversal lands while the close is down; the rerun decides on what the first run froze.
    put_stats(alice.other_affiliate, date(2026, 4, 20), conversions_approved=3)
    close(program, now=utc("2026-05-06 12:00"), batch_size=1)

    assert bonuses(program) == [(first.pk, Decimal("10.00")), (second.pk, Decimal("20.00"))]
    assert GoalProgress.objects.get(goal=second).value_confirmed == Decimal(12)
    # The reversal is not lost: the clawback check sees it.
    assert record_clawbacks_for_closed_months(program=program, now=utc("2026-05-07")) == 1


def test_only_an_ended_month_can_be_closed(program, alice):
    with pytest.raises(ValidationError) as error:
        close(program, now=utc("2026-04-30 21:59"))  # 23:59 on 30 April in Warsaw
    assert error.value.messages == ["April 2026 has not ended yet; it can be closed from its last day on."]
    assert not MonthClose.objects.exists()
    assert close(program, now=utc("2026-04-30 22:00")).status == "done"


def test_closed_month_goals_are_read_only_and_frozen(program, alice):
    goal = fixed_goal(alice.affiliate)
    put_stats(alice.affiliate, date(2026, 4, 20), conversions_approved=12)
    close(program)

    with pytest.raises(ValidationError):
        set_goal(program=program, affiliate=alice.affiliate, month=APRIL, kpi="clicks", target=5, actor=None)
    put_stats(alice.affiliate, date(2026, 4, 21), conversions_approved=50)
    assert refresh_goal_progress(program=program, month=APRIL, now=utc("2026-05-08")) == 0
    assert GoalProgress.objects.get(goal=goal).value_confirmed == Decimal(12)


def test_close_writes_reviews_with_goals_benchmarks_and_trend(program, alice, bob):
    make_goal(alice.affiliate, kpi="conversion_rate", target=Decimal(5))
    make_goal(alice.affiliate, kpi="clicks", target=Decimal(2000))
    make_goal(alice.affiliate, kind="manual", kpi="manual", label="Publish 4 reviews", target=Decimal(4))
    for month, clicks, conversions in ((1, 1000, 10), (2, 1000, 20), (3, 1000, 30)):
        put_stats(alice.affiliate, date(2026, month, 5), clicks=clicks, conversions_approved=conversions)
    put_stats(alice.affiliate, date(2026, 4, 5), clicks=1000, conversions_approved=60)
    put_stats(alice.other_affiliate, date(2026, 4, 5), clicks=10)  # activity, no goals: a review too

    close(program)

    reviews = {review.affiliate_id: review for review in MonthlyReview.objects.filter(program=program)}
    assert set(reviews) == {alice.affiliate.pk, alice.other_affiliate.pk}
    review = reviews[alice.affiliate.pk]
    rows = {row["kpi"]: row for row in review.data["rows"]}
    assert rows["conversion_rate"] == {
        "kpi": "conversion_rate",
        "value": "6.000000",
        "goal": {"target": "5.000000", "progress": "120.000000", "status": "met"},
        "benchmark": {
            "average_low": "2.000000",
            "average_high": "5.000000",
            "optimal": "10.000000",
            "rating": "average",
        },
        "trend": {
            "previous": ["1.000000", "2.000000", "3.000000"],
            "average": "2.000000",
            "change": "200.000000",
            "better": True,
        },
    }
    assert rows["clicks"]["goal"] == {"target": "2000.000000", "progress": "50.000000", "status": "behind"}
    assert (review.best_kpi, review.worst_kpi) == ("conversion_rate", "clicks")
    assert review.data["manual_goals"] == [
        {
            "label": "Publish 4 reviews",
            "target": "4.000000",
            "value": None,
            "confirmed": False,
            "note": "",
            "status": "not_enough_data",
        }
    ]
    assert review.data["month"] == "2026-04"
    with scopes_disabled():
        assert not MonthlyReview.objects.filter(program=bob.program).exists()


def test_review_without_goals_ranks_by_trend(program, alice):
    for month in (1, 2, 3):
        put_stats(alice.other_affiliate, date(2026, month, 5), clicks=100, conversions_approved=10)
    put_stats(alice.other_affiliate, date(2026, 4, 5), clicks=150, conversions_approved=5)

    close(program)

    review = MonthlyReview.objects.get(program=program, affiliate=alice.other_affiliate)
    # Clicks +50 % is the best move; conversion rate 10 % → 3.33 % (−67 %) is worse than conversions (−50 %).
    assert (review.best_kpi, review.worst_kpi) == ("clicks", "conversion_rate")


def test_managers_annotate_and_share_reviews(program, alice, django_capture_on_commit_callbacks):
    put_stats(alice.affiliate, date(2026, 4, 5), clicks=10)
    close(program)
    review = MonthlyReview.objects.get(program=program, affiliate=alice.affiliate)

    with pytest.raises(ValidationError):
        annotate_review(program=program, review=review, feedback="Great", actor=alice.analyst)
    annotate_review(
        program=program, review=review, feedback="  Strong month, keep the newsletter.  ", actor=alice.manager
    )
    with django_capture_on_commit_callbacks(execute=True):
        share_review(program=program, review=review, actor=alice.manager)
        share_review(program=program, review=review, actor=alice.manager)

    review.refresh_from_db()
    assert review.feedback == "Strong month, keep the newsletter."
    assert review.shared_at is not None
    assert list(Notification.objects.filter(program=program).values_list("user_id", "message", "url")) == [
        (alice.affiliate_user.pk, "Your review of April 2026 from Alice is ready.", "/portal/alice/goals/")
    ]


def test_annotating_a_review_of_another_program_is_refused(program, alice, bob):
    with scope(program=bob.program):
        put_stats(bob.affiliate, date(2026, 4, 5), clicks=10)
        close_month(program=bob.program, month=APRIL, now=CLOSE_TIME)
        bobs_review = MonthlyReview.objects.get(program=bob.program)
    with pytest.raises(ValidationError):
        annotate_review(program=program, review=bobs_review, feedback="mine now", actor=alice.manager)
    with scopes_disabled():
        bobs_review.refresh_from_db()
    assert bobs_review.feedback == ""


# --- Grace period, time zones ---------------------------------------------------------------------------------


def closed_months(program) -> list[date]:
    return list(MonthClose.objects.filter(program=program, status="done").values_list("month", flat=True))


def test_previous_month_closes_after_the_grace_period_in_program_time(program, alice):
    fixed_goal(alice.affiliate)
    put_stats(alice.affiliate, date(2026, 4, 20), conversions_approved=12)

    assert close_due_months(program=program, now=utc("2026-05-05 21:59")) == []  # 5 May 23:59 in Warsaw
    assert closed_months(program) == []
    closes = close_due_months(program=program, now=utc("2026-05-05 22:00"))  # 6 May 00:00 in Warsaw
    assert [c.month for c in closes] == [APRIL]
    assert bonuses(program)[0][1] == Decimal(100)


def test_grace_period_is_a_program_setting(program, alice):
    update_goal_settings(program=program, actor=None, month_close_grace_days=0)
    # 30 April 23:59 in Warsaw: March is due at once, April is not over yet.
    assert [c.month for c in close_due_months(program=program, now=utc("2026-04-30 21:59"))] == [MARCH]
    assert [c.month for c in close_due_months(program=program, now=utc("2026-04-30 22:00"))] == [APRIL]


def test_close_after_the_autumn_dst_change(program, alice):
    """Winter time starts 25 October 2026 in Warsaw (UTC+1): October's close waits for 6 Nov 00:00 local."""
    make_goal(alice.affiliate, kpi="clicks", target=Decimal(10), month=date(2026, 10, 1))
    assert close_due_months(program=program, now=utc("2026-11-05 22:59")) == []
    closes = close_due_months(program=program, now=utc("2026-11-05 23:00"))
    assert [c.month for c in closes] == [date(2026, 10, 1)]


def test_missed_months_with_goals_are_caught_up_oldest_first(program, alice):
    make_goal(alice.affiliate, kpi="clicks", target=Decimal(10), month=MARCH)
    make_goal(alice.affiliate, kpi="clicks", target=Decimal(10), month=APRIL)
    closes = close_due_months(program=program, now=utc("2026-06-10 10:00"))
    assert [c.month for c in closes] == [MARCH, APRIL, MAY]
    assert close_due_months(program=program, now=utc("2026-06-10 11:00")) == []


def test_periodic_close_task_closes_each_program_in_its_scope(program, alice, bob):
    fixed_goal(alice.affiliate)
    put_stats(alice.affiliate, date(2026, 4, 20), conversions_approved=12)

    with time_machine.travel(utc("2026-05-05 22:00"), tick=False):
        close_due_months_task.delay()

    with scopes_disabled():
        closed = sorted(MonthClose.objects.values_list("program__slug", "month", "status"))
        awarded = sorted(BonusEntry.objects.values_list("program__slug", "amount"))
    assert closed == [("alice", APRIL, "done"), ("bob", APRIL, "done")]
    assert awarded == [("alice", Decimal("100.00")), ("bob", Decimal("999.00"))]


def test_close_month_command(program, alice):
    fixed_goal(alice.affiliate)
    put_stats(alice.affiliate, date(2026, 4, 20), conversions_approved=12)

    with scopes_disabled(), time_machine.travel(CLOSE_TIME, tick=False):
        call_command("close_month", "--program", "alice", "--month", "2026-04")
        call_command("close_month", "--program", "alice", "--month", "2026-04")
        for arguments, message in (
            (["--program", "nobody", "--month", "2026-04"], "No program with the slug 'nobody'."),
            (["--program", "alice", "--month", "April"], "The month must be written YYYY-MM, not 'April'."),
            (
                ["--program", "alice", "--month", "2026-05"],
                "May 2026 has not ended yet; it can be closed from its last day on.",
            ),
        ):
            with pytest.raises(CommandError) as error:
                call_command("close_month", *arguments)
            assert str(error.value) == message
    assert len(bonuses(program)) == 1


# --- Clawbacks ------------------------------------------------------------------------------------------------


@pytest.fixture
def closed_with_bonus(program, alice):
    goal = fixed_goal(alice.affiliate)
    put_stats(alice.affiliate, date(2026, 4, 20), conversions_approved=12)
    close(program)
    return goal


def test_reversal_below_target_claws_back_once_in_the_next_open_month(
    program, alice, closed_with_bonus, django_capture_on_commit_callbacks
):
    # Three April sales are refunded in May: the rollups recompute April 20 with 9 approved.
    put_stats(alice.affiliate, date(2026, 4, 20), conversions_approved=9)
    now = utc("2026-05-20 08:00")

    with django_capture_on_commit_callbacks(execute=True):
        first = record_clawbacks_for_closed_months(program=program, now=now)
        second = record_clawbacks_for_closed_months(program=program, now=now)
        # The rollups' refresh of the closed month runs the same check: still once.
        refresh_goal_progress(program=program, month=APRIL, now=now)

    assert (first, second) == (1, 0)
    clawback = ClawbackEntry.objects.get(program=program)
    assert (clawback.bonus.goal_id, clawback.month, clawback.day, clawback.amount) == (
        closed_with_bonus.pk,
        MAY,
        date(2026, 5, 20),
        Decimal("100.00"),
    )
    assert clawback.explanation == (
        "Reversals after the close of April 2026 brought the goal “Conversions” to 9 of 10, "
        "below what earned its bonus: 100 is taken back in May 2026."
    )
    assert DailyStats.objects.get(program=program, affiliate=alice.affiliate, day=date(2026, 5, 20)).bonuses == -100
    assert bonus_total_by_day(program=program, affiliate_id=alice.affiliate.pk, day=date(2026, 5, 20)) == -100
    # The frozen result stays as it was; the clawback says why the money moved.
    assert GoalProgress.objects.get(goal=closed_with_bonus).value_confirmed == Decimal(12)
    told = set(Notification.objects.filter(program=program).values_list("user_id", flat=True))
    assert told == {alice.affiliate_user.pk, alice.owner.pk, alice.manager.pk}


def test_reversal_that_keeps_the_goal_met_claws_nothing_back(program, alice, closed_with_bonus):
    put_stats(alice.affiliate, date(2026, 4, 20), conversions_approved=10)
    assert record_clawbacks_for_closed_months(program=program, now=utc("2026-05-20")) == 0
    assert not ClawbackEntry.objects.exists()


def test_tier_clawback_takes_back_the_difference(program, alice):
    tiers = [{"progress": "100", "amount": "100"}, {"progress": "120", "amount": "250"}]
    goal = make_goal(alice.affiliate, kpi="conversions", target=Decimal(10), bonus_type="tiers", bonus_tiers=tiers)
    put_stats(alice.affiliate, date(2026, 4, 20), conversions_approved=13)
    close(program)
    put_stats(alice.affiliate, date(2026, 4, 20), conversions_approved=11)

    assert record_clawbacks_for_closed_months(program=program, now=utc("2026-05-20")) == 1
    assert list(ClawbackEntry.objects.values_list("bonus__goal_id", "amount")) == [(goal.pk, Decimal("150.00"))]


def test_clawback_skips_closed_months_to_the_next_open_one(program, alice, closed_with_bonus):
    close_month(program=program, month=MAY, now=utc("2026-06-06 10:00"))
    put_stats(alice.affiliate, date(2026, 4, 20), conversions_approved=1)

    # 3 July: June is over but still in its grace period, so still open: booked on its first day.
    record_clawbacks_for_closed_months(program=program, now=utc("2026-07-03 10:00"))

    clawback = ClawbackEntry.objects.get(program=program)
    assert (clawback.month, clawback.day) == (date(2026, 6, 1), date(2026, 6, 1))


def test_clawbacks_stay_in_their_program(program, alice, bob, closed_with_bonus):
    with scope(program=bob.program):
        close_month(program=bob.program, month=APRIL, now=CLOSE_TIME)
        put_stats(bob.affiliate, date(2026, 4, 2), conversions_approved=0)
    put_stats(alice.affiliate, date(2026, 4, 20), conversions_approved=0)

    assert record_clawbacks_for_closed_months(program=program, now=utc("2026-05-20")) == 1

    with scopes_disabled():
        assert list(ClawbackEntry.objects.values_list("program__slug", flat=True)) == ["alice"]
