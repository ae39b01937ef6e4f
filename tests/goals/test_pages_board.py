"""The manager goal board: rows, columns, units, filters, sorting, paging, totals, live cells, inline edit."""

import re
from datetime import date
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse
from django_scopes import scope, scopes_disabled

from affiliates.models import Affiliate, AffiliateStatus, Tier
from goals import board as board_selectors
from goals.board import BoardFilters
from goals.models import Goal, GoalProgress, MonthClose
from tests.factories import AffiliateFactory
from tests.goals.builders import APRIL, MARCH, make_goal, utc
from tests.goals.pages import MID_APRIL, board, cell_ids, goal_with_stats, progress_of, refresh, stats

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _mid_april():
    with time_machine.travel(MID_APRIL, tick=False):
        yield


@pytest.fixture
def goals(alice, bob):
    """alice's two partners with goals in April (and bob's program full of its own goals and names)."""
    stats(alice.affiliate, date(2026, 4, 3), clicks=600, conversions_pending=20, conversions_approved=10)
    stats(alice.other_affiliate, date(2026, 4, 3), clicks=100)
    one = goal_with_stats(alice.affiliate, kpi="clicks", target=1000)
    rate = goal_with_stats(alice.affiliate, kpi="conversion_rate", target=5)
    two = goal_with_stats(alice.other_affiliate, kpi="clicks", target=1000)
    stats(bob.affiliate, date(2026, 4, 3), clicks=999)
    goal_with_stats(bob.affiliate, kpi="revenue", target=5000)
    return {"one": one, "rate": rate, "two": two}


def rows(response) -> list[tuple[str, list[int]]]:
    return [(row.affiliate.name, [len(cell.goals) for cell in row.cells]) for row in response.context["rows"]]


def test_board_has_a_row_per_affiliate_and_a_column_per_goal_kpi(client, alice, goals):
    client.force_login(alice.manager)

    response = client.get(board(alice.program))

    assert response.status_code == 200
    assert [column.key for column in response.context["columns"]] == ["clicks", "conversion_rate"]
    # Approved affiliates are listed whether or not they have goals; others only when they hold goals.
    assert rows(response) == [("alice partner one", [1, 1]), ("alice partner two", [1, 0])]
    html = response.content.decode()
    assert cell_ids(html) == [
        f"goal-cell-{alice.affiliate.pk}-clicks",
        f"goal-cell-{alice.affiliate.pk}-conversion_rate",
        f"goal-cell-{alice.other_affiliate.pk}-clicks",
        f"goal-cell-{alice.other_affiliate.pk}-conversion_rate",
    ]
    assert "bob partner one" not in html


def test_board_shows_values_with_units_pace_and_definitions(client, alice, goals):
    client.force_login(alice.manager)

    html = client.get(board(alice.program)).content.decode()

    cell = cell_html(html, f"goal-cell-{alice.affiliate.pk}-conversion_rate")
    # 30 conversions of 600 clicks provisional (5.00 %), 10 confirmed (1.67 %): both with two decimals.
    assert 'title="Conversions / clicks × 100, both in the same period.">' in cell
    assert visible_text(cell) == (
        "Provisional value 5.00 % / of the target 5.00 % Met confirmed 1.67 % · projection 5.00 % · 100.00 %"
        " Edit target"
    )
    # Ratios have no pace marker: expected-by-now is the target itself.
    assert 'class="pace"' not in cell
    clicks = cell_html(html, f"goal-cell-{alice.affiliate.pk}-clicks")
    assert visible_text(clicks) == (
        "Provisional value 600 / of the target 1,000 On track confirmed 600 · expected 517 · projection 1,161"
        " · 60.00 % Edit target"
    )
    assert 'title="Redirects served through the affiliate&#x27;s links, excluding bots.">' in clicks
    # Fills: 60 % provisional and confirmed; pace marker at the elapsed share of April in Warsaw (51.7 %).
    assert re.findall(r'(provisional|confirmed|pace)" style="(?:width|left): ([\d.]+)%', clicks) == [
        ("provisional", "60.0"),
        ("confirmed", "60.0"),
        ("pace", "51.7"),
    ]


def cell_html(html: str, dom_id: str) -> str:
    start = html.index(">", html.index(f'id="{dom_id}"')) + 1
    return html[start : html.index("</td>", start)]


def visible_text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_board_shows_dash_for_undefined_values(client, alice, goals):
    stats(alice.other_affiliate, date(2026, 4, 3), clicks=0)
    goal_with_stats(alice.other_affiliate, kpi="conversion_rate", target=5)
    client.force_login(alice.manager)

    html = client.get(board(alice.program)).content.decode()

    cell = visible_text(cell_html(html, f"goal-cell-{alice.other_affiliate.pk}-conversion_rate"))
    assert cell.startswith("Provisional value — / of the target 5.00 % Not enough data")


def test_board_revenue_goal_is_in_the_program_currency(client, alice):
    stats(alice.affiliate, date(2026, 4, 2), revenue_pending="300.50", revenue_approved="900")
    goal_with_stats(alice.affiliate, kpi="revenue", target=5000)
    client.force_login(alice.manager)

    html = client.get(board(alice.program)).content.decode()

    cell = visible_text(cell_html(html, f"goal-cell-{alice.affiliate.pk}-revenue"))
    assert cell.startswith("Provisional value €1,200.50 / of the target €5,000.00")


@pytest.mark.parametrize("month", ["2026-13", "2026-00", "1999-04"])
def test_board_of_a_month_that_does_not_exist_is_404(client, alice, month):
    client.force_login(alice.manager)
    assert client.get(f"/p/{alice.program.slug}/goals/{month}/").status_code == 404


def test_goals_home_opens_the_programs_local_month(client, alice):
    client.force_login(alice.manager)
    # 22:30 UTC on 31 March is already April in Warsaw (KPI.md example 9).
    with time_machine.travel(utc("2026-03-31 22:30"), tick=False):
        response = client.get(reverse("manage:goals", kwargs={"program_slug": alice.program.slug}))
    assert response.status_code == 200
    assert response.context["month"] == APRIL
    assert "<title>Goals for April 2026 · Alice · Goalpost</title>" in response.content.decode()


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("goal:clicks", ["low", "high", "alice partner one", "alice partner two"]),
        ("-goal:clicks", ["high", "low", "alice partner one", "alice partner two"]),
        ("name", ["alice partner one", "alice partner two", "high", "low"]),
        ("-name", ["low", "high", "alice partner two", "alice partner one"]),
        ("-tier", ["high", "alice partner one", "alice partner two", "low"]),
        ("no-such-column", ["alice partner one", "alice partner two", "high", "low"]),
    ],
)
def test_board_sorts_by_any_column_with_missing_goals_last(client, alice, sort, expected):
    with scopes_disabled():
        high = AffiliateFactory(program=alice.program, status=AffiliateStatus.APPROVED, name="high", tier=Tier.GOLD)
        low = AffiliateFactory(program=alice.program, status=AffiliateStatus.APPROVED, name="low")
    stats(high, date(2026, 4, 2), clicks=900)
    stats(low, date(2026, 4, 2), clicks=100)
    goal_with_stats(high, kpi="clicks", target=1000)
    goal_with_stats(low, kpi="clicks", target=1000)
    client.force_login(alice.analyst)

    response = client.get(board(alice.program), {"sort": sort})

    assert [row.affiliate.name for row in response.context["rows"]] == expected


def test_board_views_and_filters(client, alice, goals):
    with scopes_disabled():
        gold = AffiliateFactory(program=alice.program, status=AffiliateStatus.APPROVED, name="Gold Without Goals")
        gold.tier = Tier.GOLD
        gold.save()
    client.force_login(alice.manager)

    def names(**params):
        response = client.get(board(alice.program), params)
        return [row.affiliate.name for row in response.context["rows"]]

    # alice partner one: clicks on track, rate met; partner two: clicks 100 of 1,000 at 52 % of April: behind.
    assert progress_of(goals["two"]).status == "behind"
    assert names(view="at_risk") == ["alice partner two"]
    assert names(view="not_set") == ["Gold Without Goals"]
    assert names(view="not_set", kpi="conversion_rate") == ["alice partner two", "Gold Without Goals"]
    assert names(status="met") == ["alice partner one"]
    assert names(kpi="conversion_rate") == ["alice partner one"]
    assert names(kpi="clicks", status="behind") == ["alice partner two"]
    assert names(kpi="conversion_rate", view="at_risk") == []
    assert names(tier="gold") == ["Gold Without Goals"]
    assert names(q="TWO") == ["alice partner two"]
    assert names(status="not-a-status") == ["alice partner one", "alice partner two", "Gold Without Goals"]
    assert tab_counts(summary(client, alice.program, q="alice")) == {"all": 2, "at_risk": 1, "not_set": 0}
    assert tab_counts(summary(client, alice.program, q="Gold")) == {"all": 1, "at_risk": 0, "not_set": 1}


def test_board_kpi_filter_shows_that_column_only(client, alice, goals):
    client.force_login(alice.manager)
    response = client.get(board(alice.program), {"kpi": "conversion_rate"})
    assert [column.key for column in response.context["columns"]] == ["conversion_rate"]


def summary(client, program, **params):
    return client.get(board(program), {"part": "summary", **params}, headers={"HX-Request": "true"})


def tab_counts(response) -> dict[str, int]:
    found = re.findall(
        r'<span class="count" id="tab-count-(\w+)" hx-swap-oob="true">(\d+)</span>', response.content.decode()
    )
    return {view: int(count) for view, count in found}


def totals_of(program, **filters) -> dict:
    with scope(program=program):
        columns = board_selectors.board_columns(program=program, month=APRIL, kpi=filters.get("kpi", ""))
        totals = board_selectors.column_totals(
            program=program, month=APRIL, filters=BoardFilters(**filters), columns=columns
        )
    return {total.column.key: total for total in totals}


def test_board_loads_its_summary_after_the_rows(client, alice, goals):
    client.force_login(alice.manager)

    html = client.get(board(alice.program), {"sort": "-name", "page": "1"}).content.decode()
    answer = summary(client, alice.program, sort="-name").content.decode()

    assert (
        '<div id="board-summary" hx-get="/p/alice/goals/2026-04/?sort=-name&amp;part=summary" hx-trigger="load"'
        ' hx-swap="none"></div>'
    ) in html
    assert '<tfoot id="board-totals"></tfoot>' in html
    assert '<span class="count" id="tab-count-at_risk"></span>' in html
    assert tab_counts(summary(client, alice.program)) == {"all": 2, "at_risk": 1, "not_set": 0}
    assert '<template>\n<tfoot id="board-totals" hx-swap-oob="true">' in answer
    assert "<html" not in answer


def test_board_totals_cover_every_listed_affiliate(client, alice, goals):
    client.force_login(alice.manager)

    totals = totals_of(alice.program)

    clicks = totals["clicks"]
    statuses = (clicks.statuses["on_track"], clicks.statuses["behind"])
    assert (clicks.goals, clicks.target, clicks.provisional, statuses) == (2, Decimal(2000), Decimal(700), (1, 1))
    assert clicks.progress_provisional == Decimal(35)
    # A sum of ratios means nothing: the rate column counts statuses only.
    rate = totals["conversion_rate"]
    assert (rate.goals, rate.target, rate.provisional, rate.statuses["met"]) == (1, None, None, 1)


def test_board_totals_follow_the_view_and_filters(alice, goals):
    at_risk = totals_of(alice.program, view="at_risk")
    met = totals_of(alice.program, status="met")
    clicks_met = totals_of(alice.program, status="met", kpi="clicks")
    searched = totals_of(alice.program, q="partner two")

    assert (at_risk["clicks"].goals, at_risk["clicks"].provisional, at_risk["conversion_rate"].goals) == (
        1,
        Decimal(100),
        0,
    )
    # partner one holds a met goal (the rate), so their clicks goal counts under "met" too...
    assert (met["clicks"].goals, met["clicks"].provisional, met["conversion_rate"].goals) == (1, Decimal(600), 1)
    # ...but with the clicks column chosen, "met" means a met clicks goal: nobody's yet
    assert [total.goals for total in clicks_met.values()] == [0]
    assert (searched["clicks"].goals, searched["clicks"].target) == (1, Decimal(1000))
    assert [total.goals for total in totals_of(alice.program, view="not_set").values()] == [0, 0]


def test_board_paginates_fifty_affiliates_per_page(client, alice):
    with scopes_disabled():
        AffiliateFactory.create_batch(55, program=alice.program, status=AffiliateStatus.APPROVED)
    client.force_login(alice.manager)

    first = client.get(board(alice.program))
    second = client.get(board(alice.program), {"page": 2})

    assert (len(first.context["rows"]), len(second.context["rows"])) == (50, 7)
    assert first.context["page"].paginator.count == 57


def test_board_htmx_request_gets_the_board_partial(client, alice, goals):
    client.force_login(alice.manager)

    response = client.get(board(alice.program), {"sort": "-name"}, headers={"HX-Request": "true"})

    html = response.content.decode()
    assert html.lstrip().startswith('<div id="board">')
    assert "<html" not in html
    # The filter form outside the partial learns the new sort through out-of-band hidden inputs.
    assert '<input type="hidden" name="sort" id="board-sort" value="-name" hx-swap-oob="true">' in html
    assert response["Vary"] == "Cookie, HX-Request" or "HX-Request" in response["Vary"]


def poll(client, program, since: str, ids, **params):
    """What a board page's poller asks: what changed since then among the affiliates it shows."""
    ids = ",".join(str(affiliate_id) for affiliate_id in ids)
    return client.get(board(program), {"since": since, "ids": ids, **params}, headers={"HX-Request": "true"})


def test_poll_sends_only_cells_whose_progress_changed(client, alice, goals):
    client.force_login(alice.manager)
    with time_machine.travel(utc("2026-04-16 10:00:05"), tick=False):
        page = client.get(board(alice.program))
    since = str(page.context["since"])
    shown = [alice.affiliate.pk, alice.other_affiliate.pk]
    assert page.context["page_ids"] == f"{shown[0]},{shown[1]}"
    assert (
        f'hx-get="/p/alice/goals/2026-04/?since={since}&amp;ids={shown[0]}%2C{shown[1]}" hx-trigger="every 5s"'
        in page.content.decode()
    )

    with time_machine.travel(utc("2026-04-16 10:00:10"), tick=False):
        nothing = poll(client, alice.program, since, shown)
        stats(alice.other_affiliate, date(2026, 4, 16), clicks=400)
        refresh(alice.program, affiliate_ids=[alice.other_affiliate.pk])
        changed = poll(client, alice.program, since, shown)
        not_shown = poll(client, alice.program, since, [alice.affiliate.pk])

    assert nothing.status_code == not_shown.status_code == 204
    assert nothing.content == b""
    html = changed.content.decode()
    assert cell_ids(html) == [f"goal-cell-{alice.other_affiliate.pk}-clicks"]
    assert f'<td id="goal-cell-{alice.other_affiliate.pk}-clicks" class="goal-cell" hx-swap-oob="true">' in html
    assert visible_text(cell_html(html, f"goal-cell-{alice.other_affiliate.pk}-clicks")).startswith(
        "Provisional value 500 / of the target 1,000"
    )
    # The totals may have moved too: the summary is asked for again.
    assert re.search(r'<div id="board-summary" hx-get="[^"]*part=summary" [^>]*hx-swap-oob="true">', html)
    assert re.search(
        rf'<div id="board-poll" hx-get="[^"]*since=\d+&amp;ids={shown[0]}%2C{shown[1]}" [^>]*hx-swap-oob="true">', html
    )


def test_poll_never_reaches_another_programs_goals(client, alice, bob, goals):
    client.force_login(alice.manager)
    since = str(int(utc("2026-04-16 09:00").timestamp() * 1_000_000))
    with scopes_disabled():
        foreign = GoalProgress.objects.filter(program=bob.program).count()

    response = poll(client, alice.program, since, [bob.affiliate.pk, bob.other_affiliate.pk, 10**13])

    assert foreign == 1
    assert response.status_code == 204


def test_poll_of_a_closed_month_is_not_offered(client, alice, goals):
    with scopes_disabled():
        make_goal(alice.affiliate, kpi="clicks", target=Decimal(10), month=MARCH)
        MonthClose.objects.create(program=alice.program, month=MARCH, status=MonthClose.Status.DONE)
    client.force_login(alice.manager)

    html = client.get(board(alice.program, MARCH)).content.decode()

    assert 'id="board-poll"' not in html
    assert "Edit target" not in html
    assert "This month is closed" in html


@pytest.mark.parametrize(("affiliates", "goals_each"), [(1, 1), (3, 1), (1, 3), (3, 3)])
def test_board_query_count_is_constant(client, alice, bob, django_assert_num_queries, affiliates, goals_each):
    with scopes_disabled():
        for affiliate in AffiliateFactory.create_batch(
            affiliates, program=alice.program, status=AffiliateStatus.APPROVED
        ):
            for kpi in ["clicks", "conversions", "conversion_rate"][:goals_each]:
                make_goal(affiliate, kpi=kpi, target=Decimal(50))
    refresh(alice.program)
    client.force_login(alice.manager)

    # session, user, program, membership (middleware); columns, page count, page rows, their goals with
    # progress, closed?; the program switcher's memberships (context processor)
    with django_assert_num_queries(10):
        response = client.get(board(alice.program), {"sort": "-goal:clicks"})
    assert len(response.context["rows"]) == affiliates + 2
    # the same four, columns, tab counts, totals, closed?, switcher
    with django_assert_num_queries(9):
        response = summary(client, alice.program, sort="-goal:clicks", view="at_risk", tier="standard")
    assert tab_counts(response)["all"] == affiliates + 2


@pytest.mark.parametrize("affiliates", [1, 3])
def test_poll_query_count_is_constant(client, alice, django_assert_num_queries, affiliates):
    with scopes_disabled():
        for affiliate in AffiliateFactory.create_batch(
            affiliates, program=alice.program, status=AffiliateStatus.APPROVED
        ):
            make_goal(affiliate, kpi="clicks", target=Decimal(50))
    refresh(alice.program)
    client.force_login(alice.manager)
    with scopes_disabled():
        GoalProgress.objects.update(updated_at=utc("2026-04-16 10:00"))

    with scopes_disabled():
        ids = list(Affiliate.objects.filter(program=alice.program).values_list("pk", flat=True))
    # session, user, program, membership; columns, changed cells, their goals, closed?, switcher: whatever the
    # program's size, a poll reads only the affiliates its page shows
    with django_assert_num_queries(9):
        response = poll(client, alice.program, str(int(utc("2026-04-16 09:00").timestamp() * 1_000_000)), ids)
    assert len(cell_ids(response.content.decode())) == affiliates


def target_url(goal) -> str:
    return reverse("manage:goal_target", kwargs={"program_slug": goal.program.slug, "goal_id": goal.pk})


def test_inline_edit_of_a_target_saves_through_the_service_and_returns_the_cell(client, alice, goals):
    goal = goals["one"]
    with scopes_disabled():
        Goal.objects.filter(pk=goal.pk).update(bonus_type="fixed", bonus_amount=Decimal(100), note="keep me")
    client.force_login(alice.manager)

    form = client.get(target_url(goal), headers={"HX-Request": "true"})
    saved = client.post(target_url(goal), {"target": "600"}, headers={"HX-Request": "true"})

    assert f'<td id="goal-edit-{alice.affiliate.pk}-clicks" class="goal-cell editing">' in form.content.decode()
    assert 'value="1000"' in form.content.decode()
    assert saved.status_code == 200
    html = saved.content.decode()
    assert html.lstrip().startswith(f'<td id="goal-cell-{alice.affiliate.pk}-clicks" class="goal-cell">')
    assert visible_text(html).startswith("Provisional value 600 / of the target 600 Met")
    with scopes_disabled():
        stored = Goal.objects.get(pk=goal.pk)
    assert (stored.target, stored.bonus_type, stored.bonus_amount, stored.note) == (
        Decimal(600),
        "fixed",
        Decimal(100),
        "keep me",
    )


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("0", "The target must be greater than zero."),
        ("12.5", "Clicks are counted in whole numbers."),
        ("x", "Enter a number."),
    ],
)
def test_inline_edit_refuses_bad_targets_with_400_and_saves_nothing(client, alice, goals, target, message):
    client.force_login(alice.manager)

    response = client.post(target_url(goals["one"]), {"target": target}, headers={"HX-Request": "true"})

    assert response.status_code == 400
    assert message in response.content.decode()
    assert 'class="goal-cell editing"' in response.content.decode()
    with scopes_disabled():
        assert Goal.objects.get(pk=goals["one"].pk).target == Decimal(1000)


def test_inline_edit_of_a_closed_month_is_refused(client, alice):
    goal = make_goal(alice.affiliate, kpi="clicks", target=Decimal(10), month=MARCH)
    with scopes_disabled():
        MonthClose.objects.create(program=alice.program, month=MARCH)
    client.force_login(alice.manager)

    response = client.post(target_url(goal), {"target": "20"}, headers={"HX-Request": "true"})

    assert response.status_code == 400
    assert "March 2026 is closed; its goals can no longer be changed." in response.content.decode()
    with scopes_disabled():
        assert Goal.objects.get(pk=goal.pk).target == Decimal(10)


def test_target_edit_without_htmx_is_a_page_of_its_own(client, alice, goals):
    client.force_login(alice.manager)

    page = client.get(target_url(goals["one"]))
    refused = client.post(target_url(goals["one"]), {"target": "-1"})
    saved = client.post(target_url(goals["one"]), {"target": "1200"})

    assert "<html" in page.content.decode()
    assert 'name="target"' in page.content.decode()
    assert refused.status_code == 400
    assert "The target must be greater than zero." in refused.content.decode()
    assert saved["Location"] == "/p/alice/goals/2026-04/"
    with scopes_disabled():
        assert Goal.objects.get(pk=goals["one"].pk).target == Decimal(1200)


def test_analyst_reads_the_board_without_edit_controls(client, alice, goals):
    client.force_login(alice.analyst)
    html = client.get(board(alice.program)).content.decode()
    assert "Edit target" not in html
    assert "+ Set" not in html
    assert client.post(target_url(goals["one"]), {"target": "5"}).status_code == 404
    with scopes_disabled():
        assert Goal.objects.get(pk=goals["one"].pk).target == Decimal(1000)


def test_board_of_another_programs_goal_is_404(client, alice, bob):
    foreign = goal_with_stats(bob.affiliate, kpi="clicks", target=10)
    client.force_login(alice.manager)
    response = client.post(
        reverse("manage:goal_target", kwargs={"program_slug": "alice", "goal_id": foreign.pk}),
        {"target": "5"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 404
    with scopes_disabled():
        assert Goal.objects.get(pk=foreign.pk).target == Decimal(10)


def test_board_of_a_future_month_shows_goals_without_progress(client, alice):
    make_goal(alice.affiliate, kpi="clicks", target=Decimal(10), month=date(2026, 5, 1))
    client.force_login(alice.manager)
    html = client.get(board(alice.program, date(2026, 5, 1))).content.decode()
    assert visible_text(cell_html(html, f"goal-cell-{alice.affiliate.pk}-clicks")).startswith(
        "Provisional value — / of the target 10 No progress yet"
    )
    assert 'id="board-poll"' not in html
