"""The affiliate's goals in the portal: only their own, with progress, pace, what is left per day, the bonus
at stake, live updates, manual reports, and the history of earlier months with bonuses and shared reviews."""

import re
from datetime import date
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone
from django_scopes import scopes_disabled

from goals.models import BonusEntry, ClawbackEntry, Goal, MonthlyReview
from tests.goals.builders import APRIL, MARCH, make_goal, utc
from tests.goals.pages import MID_APRIL, goal_with_stats, progress_of, refresh, stats

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _mid_april():
    with time_machine.travel(MID_APRIL, tick=False):
        yield


def portal(program) -> str:
    return reverse("portal:goals", kwargs={"program_slug": program.slug})


def text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def card(html: str, goal) -> str:
    start = html.index(f'id="portal-goal-{goal.pk}"')
    return text(html[html.index(">", start) + 1 : html.index("</article>", start)])


@pytest.fixture
def mine(alice, bob):
    """alice's partner one with two goals; partner two and bob's partner have goals that must not show."""
    stats(alice.affiliate, date(2026, 4, 3), clicks=400, commission_approved="80", commission_pending="20")
    clicks = goal_with_stats(alice.affiliate, kpi="clicks", target=1000, bonus_type="fixed", bonus_amount=Decimal(100))
    commission = goal_with_stats(
        alice.affiliate, kpi="commission", target=500, bonus_type="percent", bonus_percent=Decimal(10)
    )
    goal_with_stats(alice.other_affiliate, kpi="leads", target=77, note="partner two's secret")
    goal_with_stats(bob.affiliate, kpi="sales", target=88, note="bob's secret")
    return {"clicks": clicks, "commission": commission}


def test_portal_shows_only_the_affiliates_own_goals(client, alice, mine):
    client.force_login(alice.affiliate_user)

    response = client.get(portal(alice.program))

    assert [card.goal.pk for card in response.context["cards"]] == [mine["clicks"].pk, mine["commission"].pk]
    html = response.content.decode()
    assert "secret" not in html
    assert "Your goals for April 2026" in html


def test_portal_card_shows_progress_pace_left_per_day_and_bonus(client, alice, mine):
    client.force_login(alice.affiliate_user)

    html = client.get(portal(alice.program)).content.decode()

    # 600 clicks to go over 15 days left (16–30 April, today included): 40 a day.
    assert card(html, mine["clicks"]) == (
        "Clicks Provisional value 400 / of the target 1,000 Behind confirmed 400 · expected 517 · projection 774"
        " · 40.00 % Left per remaining day 40 Bonus if you make it €100.00"
    )
    # A percentage bonus: 10 % of the confirmed commission on conversions so far (80).
    assert card(html, mine["commission"]).endswith(
        "Left per remaining day €26.67 Bonus if you make it €8.00"
        " (10 % of your confirmed commission this month, so far)"
    )


def test_portal_shows_tiers_with_the_one_reached(client, alice):
    stats(alice.affiliate, date(2026, 4, 3), clicks=1100)
    goal = goal_with_stats(
        alice.affiliate,
        kpi="clicks",
        target=1000,
        bonus_type="tiers",
        bonus_tiers=[{"progress": "100", "amount": "100"}, {"progress": "120", "amount": "250"}],
    )
    client.force_login(alice.affiliate_user)

    html = client.get(portal(alice.program)).content.decode()

    assert card(html, goal).endswith("Bonus tiers 100 % → €100.00 reached 120 % → €250.00")


def test_portal_history_with_bonus_clawback_and_only_shared_reviews(client, alice):
    march = make_goal(alice.affiliate, kpi="clicks", target=Decimal(100), month=MARCH)
    february = make_goal(alice.affiliate, kpi="clicks", target=Decimal(100), month=date(2026, 2, 1))
    with scopes_disabled():
        bonus = BonusEntry.objects.create(
            program=alice.program,
            affiliate=alice.affiliate,
            goal=march,
            month=MARCH,
            day=APRIL,
            amount=50,
            explanation="Goal met.",
        )
        ClawbackEntry.objects.create(
            program=alice.program,
            affiliate=alice.affiliate,
            bonus=bonus,
            month=APRIL,
            day=APRIL,
            amount=50,
            explanation="Refunds took March below its target.",
        )
        shared = MonthlyReview.objects.create(
            program=alice.program, affiliate=alice.affiliate, month=MARCH, shared_at=timezone.now()
        )
        MonthlyReview.objects.create(program=alice.program, affiliate=alice.affiliate, month=date(2026, 2, 1))
    client.force_login(alice.affiliate_user)

    response = client.get(portal(alice.program))

    history = response.context["history"]
    assert [(entry["month"], [g.pk for g in entry["goals"]], entry["review"]) for entry in history] == [
        (MARCH, [march.pk], shared),
        (date(2026, 2, 1), [february.pk], None),
    ]
    html = response.content.decode()
    assert "+€50.00" in html
    assert "−€50.00 clawed back" in html
    assert "Refunds took March below its target." in html
    assert html.count("Read your review") == 1


def test_portal_poll_sends_only_changed_goals(client, alice, mine):
    client.force_login(alice.affiliate_user)
    with time_machine.travel(utc("2026-04-16 10:00:05"), tick=False):
        since = client.get(portal(alice.program)).context["since"]

    with time_machine.travel(utc("2026-04-16 10:00:10"), tick=False):
        nothing = client.get(portal(alice.program), {"since": since}, headers={"HX-Request": "true"})
        stats(alice.affiliate, date(2026, 4, 16), clicks=100)
        stats(alice.other_affiliate, date(2026, 4, 16), clicks=100)
        refresh(alice.program, affiliate_ids=[alice.affiliate.pk, alice.other_affiliate.pk])
        changed = client.get(portal(alice.program), {"since": since}, headers={"HX-Request": "true"})

    assert nothing.status_code == 204
    html = changed.content.decode()
    assert re.findall(r'<article id="(portal-goal-\d+)" class="card goal-card" hx-swap-oob="true">', html) == [
        f"portal-goal-{mine['clicks'].pk}",
        f"portal-goal-{mine['commission'].pk}",
    ]
    assert card(html, mine["clicks"]).startswith("Clicks Provisional value 500 / of the target 1,000")
    assert re.search(r'<div id="portal-poll" hx-get="/portal/alice/goals/\?since=\d+"[^>]*hx-swap-oob="true">', html)


@pytest.mark.parametrize("goals", [1, 3])
def test_portal_query_count_is_constant(client, alice, django_assert_num_queries, goals):
    for kpi in ["clicks", "sales", "leads"][:goals]:
        make_goal(alice.affiliate, kpi=kpi, target=Decimal(10), bonus_type="fixed", bonus_amount=Decimal(5))
        make_goal(alice.affiliate, kpi=kpi, target=Decimal(10), month=MARCH)
    refresh(alice.program)
    client.force_login(alice.affiliate_user)

    # session, user, program, membership; own affiliate, goals with progress, history goals, shared reviews;
    # the program switcher's memberships
    with django_assert_num_queries(9):
        response = client.get(portal(alice.program))
    assert len(response.context["cards"]) == goals


def report_url(goal) -> str:
    return reverse("portal:goal_report", kwargs={"program_slug": goal.program.slug, "goal_id": goal.pk})


def test_affiliate_reports_a_manual_value_that_waits_for_the_manager(client, alice):
    goal = make_goal(alice.affiliate, kind="manual", kpi="manual", label="Publish 4 reviews", target=Decimal(4))
    client.force_login(alice.affiliate_user)

    response = client.post(report_url(goal), {"value": "2", "note": "Two reviews are live"})

    assert response["Location"] == "/portal/alice/goals/"
    with scopes_disabled():
        stored = Goal.objects.get(pk=goal.pk)
    assert (stored.manual_value, stored.manual_note, stored.manual_confirmed) == (
        Decimal(2),
        "Two reviews are live",
        False,
    )
    assert (progress_of(goal).value_provisional, progress_of(goal).value_confirmed) == (Decimal(2), None)
    html = client.get(portal(alice.program)).content.decode()
    assert "Reported 2 · waiting for your manager" in card(html, goal)


@pytest.mark.parametrize(
    ("data", "message"),
    [({"value": "-1", "note": "x"}, "The value cannot be negative."), ({"value": "2"}, "This field is required.")],
)
def test_manual_report_with_bad_input_saves_nothing(client, alice, data, message):
    goal = make_goal(alice.affiliate, kind="manual", kpi="manual", label="Publish 4 reviews", target=Decimal(4))
    client.force_login(alice.affiliate_user)

    response = client.post(report_url(goal), data)

    assert response.status_code == 400
    assert message in response.content.decode()
    with scopes_disabled():
        assert Goal.objects.get(pk=goal.pk).manual_value is None


def test_another_affiliates_goal_is_404(client, alice):
    theirs = make_goal(alice.other_affiliate, kind="manual", kpi="manual", label="Their reviews", target=Decimal(4))
    client.force_login(alice.affiliate_user)

    assert client.get(report_url(theirs)).status_code == 404
    assert client.post(report_url(theirs), {"value": "4", "note": "mine now"}).status_code == 404
    with scopes_disabled():
        assert Goal.objects.get(pk=theirs.pk).manual_value is None


def test_portal_goals_are_for_affiliates_only(client, alice):
    client.force_login(alice.manager)
    assert client.get(portal(alice.program)).status_code == 404
