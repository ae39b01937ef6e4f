"""Goal-setting pages: one goal, a template for many, a copy of last month, suggestions, manual values.

Bad input re-renders the form with the service's message (status 400) and saves nothing.
"""

from datetime import date
from decimal import Decimal

import pytest
import time_machine
from django.conf import settings
from django.contrib.messages import get_messages
from django.urls import reverse
from django_scopes import scopes_disabled

from affiliates.models import AffiliateStatus, Tier
from goals.models import Goal, GoalProgress, MonthClose
from tests.factories import AffiliateFactory
from tests.goals.builders import APRIL, MARCH, make_goal, utc
from tests.goals.pages import MID_APRIL, goal_with_stats, progress_of, stats

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _mid_april():
    with time_machine.travel(MID_APRIL, tick=False):
        yield


@pytest.fixture
def manager(client, alice, bob):
    """alice's manager, signed in; bob's program holds goals of its own that must never change."""
    goal_with_stats(bob.affiliate, kpi="clicks", target=10)
    client.force_login(alice.manager)
    return client


def url(name: str, program, **kwargs) -> str:
    return reverse(f"manage:{name}", kwargs={"program_slug": program.slug, **kwargs})


def flashed(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def goals_of(program) -> list[tuple]:
    with scopes_disabled():
        return list(
            Goal.objects.filter(program=program)
            .order_by("affiliate__name", "kpi", "label")
            .values_list("affiliate__name", "month", "kpi", "label", "target")
        )


def test_set_a_goal_creates_it_with_progress(manager, alice):
    stats(alice.affiliate, date(2026, 4, 2), clicks=250)

    response = manager.post(
        url("goal_create", alice.program, month=APRIL),
        {
            "affiliate": alice.affiliate.pk,
            "kpi": "clicks",
            "target": "500",
            "bonus_type": "fixed",
            "bonus_amount": "100",
        },
    )

    assert response.status_code == 302
    assert response["Location"] == "/p/alice/goals/2026-04/"
    assert goals_of(alice.program) == [("alice partner one", APRIL, "clicks", "", Decimal(500))]
    with scopes_disabled():
        goal = Goal.objects.get(program=alice.program)
    assert (goal.bonus_type, goal.bonus_amount, goal.created_by) == ("fixed", Decimal(100), alice.manager)
    assert progress_of(goal).value_provisional == Decimal(250)


def test_set_a_manual_goal_and_tiered_bonus(manager, alice):
    response = manager.post(
        url("goal_create", alice.program, month=APRIL),
        {
            "affiliate": alice.affiliate.pk,
            "kpi": "manual",
            "label": "Publish 4 reviews",
            "target": "4",
            "bonus_type": "tiers",
            "bonus_tiers": "100: 100, 120 %: 250",
        },
    )

    assert response.status_code == 302
    with scopes_disabled():
        goal = Goal.objects.get(program=alice.program)
    assert (goal.kind, goal.label, goal.bonus_tiers) == (
        "manual",
        "Publish 4 reviews",
        [{"progress": "100", "amount": "100.00"}, {"progress": "120", "amount": "250.00"}],
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kpi": "clicks", "target": "0"}, "The target must be greater than zero."),
        ({"kpi": "clicks", "target": "-5"}, "The target must be greater than zero."),
        ({"kpi": "conversions", "target": "2.5"}, "Conversions are counted in whole numbers."),
        ({"kpi": "conversion_rate", "target": "120"}, "A Conversion rate target cannot be above 100."),
        ({"kpi": "no_such_kpi", "target": "5"}, "Select a valid choice. no_such_kpi is not one of the"),
        ({"kpi": "manual", "target": "4"}, "Describe the activity of a manual goal, e.g. “Publish 4 reviews”."),
        ({"kpi": "clicks", "target": "5", "bonus_type": "fixed"}, "Enter the bonus amount."),
        ({"kpi": "clicks", "target": "5", "bonus_type": "tiers", "bonus_tiers": "lots"}, "Write each tier as"),
        ({"kpi": "clicks", "target": "NaN"}, "Enter a number."),
    ],
)
def test_set_a_goal_refuses_bad_input_with_400_and_saves_nothing(manager, alice, fields, message):
    response = manager.post(
        url("goal_create", alice.program, month=APRIL), {"affiliate": alice.affiliate.pk, "bonus_type": "", **fields}
    )

    assert response.status_code == 400
    assert message in response.content.decode()
    assert goals_of(alice.program) == []


def test_set_a_goal_for_another_programs_affiliate_is_refused(manager, alice, bob):
    response = manager.post(
        url("goal_create", alice.program, month=APRIL),
        {"affiliate": bob.affiliate.pk, "kpi": "clicks", "target": "5", "bonus_type": ""},
    )

    assert response.status_code == 400
    assert "Select a valid choice." in response.content.decode()
    assert goals_of(alice.program) == []
    assert goals_of(bob.program) == [("bob partner one", APRIL, "clicks", "", Decimal(10))]


def test_set_a_goal_in_a_closed_month_is_refused(manager, alice):
    with scopes_disabled():
        MonthClose.objects.create(program=alice.program, month=MARCH)

    response = manager.post(
        url("goal_create", alice.program, month=MARCH),
        {"affiliate": alice.affiliate.pk, "kpi": "clicks", "target": "5", "bonus_type": ""},
    )

    assert response.status_code == 400
    assert "March 2026 is closed; its goals can no longer be changed." in response.content.decode()
    assert goals_of(alice.program) == []


def test_goal_form_shows_the_affiliates_last_three_months(manager, alice):
    stats(alice.affiliate, date(2026, 1, 10), clicks=100)
    stats(alice.affiliate, date(2026, 3, 10), clicks=300, conversions_approved=6)

    page = manager.get(url("goal_create", alice.program, month=APRIL), {"affiliate": alice.affiliate.pk})
    partial = manager.get(
        url("goal_create", alice.program, month=APRIL),
        {"affiliate": alice.affiliate.pk},
        headers={"HX-Request": "true"},
    )

    assert page.context["history"]["months"] == [date(2026, 1, 1), date(2026, 2, 1), MARCH]
    rows = dict(page.context["history"]["rows"])
    assert rows["clicks"] == [Decimal(100), Decimal(0), Decimal(300)]
    assert rows["conversion_rate"] == [Decimal(0), None, Decimal(2)]
    html = partial.content.decode()
    assert html.lstrip().startswith('<aside id="history" class="card">')
    assert '<td class="num" title="Conversions / clicks × 100, both in the same period.">2.00 %</td>' in html
    assert '<td class="num" title="Conversions / clicks × 100, both in the same period.">—</td>' in html


def test_edit_a_goal_keeps_its_affiliate_and_kpi(manager, alice):
    goal = goal_with_stats(alice.affiliate, kpi="clicks", target=500)

    page = manager.get(url("goal_edit", alice.program, goal_id=goal.pk))
    response = manager.post(
        url("goal_edit", alice.program, goal_id=goal.pk),
        {"target": "700", "bonus_type": "percent", "bonus_percent": "5", "note": "stretch"},
    )

    assert 'value="500"' in page.content.decode()
    assert response.status_code == 302
    with scopes_disabled():
        stored = Goal.objects.get(pk=goal.pk)
    assert (stored.kpi, stored.target, stored.bonus_type, stored.bonus_percent, stored.note) == (
        "clicks",
        Decimal(700),
        "percent",
        Decimal(5),
        "stretch",
    )


def test_delete_a_goal(manager, alice):
    goal = goal_with_stats(alice.affiliate, kpi="clicks", target=500)

    response = manager.post(url("goal_delete", alice.program, goal_id=goal.pk))

    assert response["Location"] == "/p/alice/goals/2026-04/"
    assert goals_of(alice.program) == []
    with scopes_disabled():
        assert not GoalProgress.objects.filter(goal_id=goal.pk).exists()


def lines(*items: dict) -> dict:
    data = {"lines-TOTAL_FORMS": "4", "lines-INITIAL_FORMS": "0"}
    for index, item in enumerate(items):
        data |= {f"lines-{index}-{name}": value for name, value in item.items()}
    return data


def test_template_sets_goals_for_every_affiliate_of_a_tier(manager, alice):
    with scopes_disabled():
        gold = [
            AffiliateFactory(program=alice.program, status=AffiliateStatus.APPROVED, tier=Tier.GOLD, name=f"Gold {n}")
            for n in (1, 2)
        ]
        AffiliateFactory(program=alice.program, status=AffiliateStatus.PENDING, tier=Tier.GOLD, name="Gold pending")

    response = manager.post(
        url("goal_bulk", alice.program, month=APRIL),
        {"tier": "gold", **lines({"kpi": "clicks", "target": "500"}, {"kpi": "conversion_rate", "target": "5"})},
    )

    assert response.status_code == 302
    assert flashed(response) == ["4 goals set or updated."]
    assert goals_of(alice.program) == [
        (gold[0].name, APRIL, "clicks", "", Decimal(500)),
        (gold[0].name, APRIL, "conversion_rate", "", Decimal(5)),
        (gold[1].name, APRIL, "clicks", "", Decimal(500)),
        (gold[1].name, APRIL, "conversion_rate", "", Decimal(5)),
    ]


def test_template_for_affiliates_without_goals_only(manager, alice):
    make_goal(alice.affiliate, kpi="clicks", target=Decimal(50))

    manager.post(
        url("goal_bulk", alice.program, month=APRIL),
        {"only_without_goals": "on", **lines({"kpi": "leads", "target": "7"})},
    )

    assert goals_of(alice.program) == [
        ("alice partner one", APRIL, "clicks", "", Decimal(50)),
        ("alice partner two", APRIL, "leads", "", Decimal(7)),
    ]


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (({"kpi": "clicks", "target": "500"}, {"kpi": "conversion_rate", "target": "150"}), "cannot be above 100"),
        (({"kpi": "clicks"},), "Enter a target for this KPI."),
        ((), "Fill in at least one line: a KPI and its target."),
    ],
)
def test_template_with_a_bad_line_saves_nothing(manager, alice, items, message):
    response = manager.post(url("goal_bulk", alice.program, month=APRIL), {"tier": "", **lines(*items)})

    assert response.status_code == 400
    assert message in response.content.decode()
    assert goals_of(alice.program) == []


def test_copy_last_month_shows_what_it_copies_then_copies(manager, alice):
    make_goal(alice.affiliate, kpi="clicks", target=Decimal(300), month=MARCH)
    make_goal(alice.affiliate, kpi="leads", target=Decimal(3), month=MARCH)
    make_goal(alice.affiliate, kpi="leads", target=Decimal(9), month=APRIL)

    page = manager.get(url("goal_copy", alice.program, month=APRIL))
    response = manager.post(url("goal_copy", alice.program, month=APRIL))

    assert (page.context["source_goals"], page.context["to_copy"]) == (2, 1)
    assert response["Location"] == "/p/alice/goals/2026-04/"
    assert flashed(response) == ["1 goal copied from last month."]
    assert goals_of(alice.program) == [
        ("alice partner one", MARCH, "clicks", "", Decimal(300)),
        ("alice partner one", APRIL, "clicks", "", Decimal(300)),
        ("alice partner one", MARCH, "leads", "", Decimal(3)),
        ("alice partner one", APRIL, "leads", "", Decimal(9)),
    ]


def test_suggestions_show_history_and_median_times_growth(manager, alice):
    for month_day, clicks in ((date(2026, 1, 5), 100), (date(2026, 2, 5), 300), (date(2026, 3, 5), 200)):
        stats(alice.affiliate, month_day, clicks=clicks)

    response = manager.get(
        url("goal_suggest", alice.program, month=APRIL), {"kpis": ["clicks", "conversion_rate"], "growth": "1.10"}
    )

    row = next(row for row in response.context["rows"] if row["affiliate"] == alice.affiliate)
    assert [(cell["kpi"], cell["history"], cell["suggestion"]) for cell in row["cells"]] == [
        ("clicks", [Decimal(100), Decimal(300), Decimal(200)], Decimal(220)),
        ("conversion_rate", [Decimal(0), Decimal(0), Decimal(0)], None),
    ]
    html = response.content.decode()
    assert f'name="target-{alice.affiliate.pk}-clicks" value="220"' in html


def test_accepting_suggestions_sets_the_edited_targets(manager, alice):
    response = manager.post(
        url("goal_suggest", alice.program, month=APRIL) + "?kpis=clicks&growth=1.10",
        {f"target-{alice.affiliate.pk}-clicks": "250", f"target-{alice.other_affiliate.pk}-clicks": ""},
    )

    assert response.status_code == 302
    assert flashed(response) == ["1 suggested goal accepted."]
    assert goals_of(alice.program) == [("alice partner one", APRIL, "clicks", "", Decimal(250))]


@pytest.mark.parametrize(
    ("language", "count", "message"),
    [
        ("pl", 1, "Skopiowano 1 cel z poprzedniego miesiąca."),
        ("pl", 3, "Skopiowano 3 cele z poprzedniego miesiąca."),
        ("pl", 5, "Skopiowano 5 celów z poprzedniego miesiąca."),
        ("ru", 1, "Из прошлого месяца скопирована 1 цель."),
        ("ru", 3, "Из прошлого месяца скопировано 3 цели."),
        ("ru", 5, "Из прошлого месяца скопировано 5 целей."),
        ("sv", 1, "1 mål kopierat från förra månaden."),
        ("sv", 3, "3 mål kopierade från förra månaden."),
    ],
)
def test_copy_reports_its_count_in_the_plural_form_of_the_language(manager, alice, language, count, message):
    for kpi in ["clicks", "unique_clicks", "impressions", "conversions", "leads"][:count]:
        make_goal(alice.affiliate, kpi=kpi, target=Decimal(3), month=MARCH)
    manager.cookies[settings.LANGUAGE_COOKIE_NAME] = language

    response = manager.post(url("goal_copy", alice.program, month=APRIL))

    assert flashed(response) == [message]


@pytest.mark.parametrize(
    ("target", "message"),
    [("0", "The target must be greater than zero."), ("abc", "Enter a number."), ("", "There is no target to accept.")],
)
def test_accepting_bad_suggestions_saves_nothing(manager, alice, target, message):
    response = manager.post(
        url("goal_suggest", alice.program, month=APRIL) + "?kpis=clicks&growth=1.10",
        {f"target-{alice.affiliate.pk}-clicks": target},
    )

    assert response.status_code == 400
    assert message in response.content.decode()
    assert goals_of(alice.program) == []


def test_accepting_a_suggestion_for_another_programs_affiliate_is_refused(manager, alice, bob):
    response = manager.post(
        url("goal_suggest", alice.program, month=APRIL), {f"target-{bob.other_affiliate.pk}-clicks": "5"}
    )

    assert response.status_code == 400
    assert "This affiliate does not exist in this program." in response.content.decode()
    assert goals_of(bob.program) == [("bob partner one", APRIL, "clicks", "", Decimal(10))]


def test_manager_enters_a_manual_value_confirmed_at_once(manager, alice):
    goal = make_goal(alice.affiliate, kind="manual", kpi="manual", label="Publish 4 reviews", target=Decimal(4))

    response = manager.post(url("goal_manual", alice.program, goal_id=goal.pk), {"value": "3", "note": "Three live"})

    assert response.status_code == 302
    with scopes_disabled():
        stored = Goal.objects.get(pk=goal.pk)
    assert (stored.manual_value, stored.manual_note, stored.manual_confirmed) == (Decimal(3), "Three live", True)
    assert (progress_of(goal).value_provisional, progress_of(goal).value_confirmed) == (Decimal(3), Decimal(3))


def test_manager_confirms_the_affiliates_report(manager, alice):
    goal = make_goal(
        alice.affiliate, kind="manual", kpi="manual", label="Publish 4 reviews", target=Decimal(4), manual_value=2
    )

    board = manager.get(url("goal_board", alice.program, month=APRIL)).content.decode()
    response = manager.post(url("goal_confirm", alice.program, goal_id=goal.pk))

    assert "Reported by the affiliate, waiting for confirmation" in board
    assert response.status_code == 302
    with scopes_disabled():
        assert Goal.objects.get(pk=goal.pk).manual_confirmed is True
    assert progress_of(goal).value_confirmed == Decimal(2)


def test_manual_value_needs_a_note(manager, alice):
    goal = make_goal(alice.affiliate, kind="manual", kpi="manual", label="Publish 4 reviews", target=Decimal(4))

    response = manager.post(url("goal_manual", alice.program, goal_id=goal.pk), {"value": "3", "note": ""})

    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    with scopes_disabled():
        assert Goal.objects.get(pk=goal.pk).manual_value is None


def test_analyst_cannot_open_setting_pages(client, alice):
    client.force_login(alice.analyst)
    for name in ("goal_create", "goal_bulk", "goal_copy", "goal_suggest"):
        assert client.get(url(name, alice.program, month=APRIL)).status_code == 404
    assert utc("2026-04-16 10:00") == MID_APRIL
