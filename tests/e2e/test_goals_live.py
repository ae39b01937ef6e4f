"""A manager sets a goal, traffic arrives, and the board and the portal show the progress move without a reload."""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from django.utils import timezone
from django_scopes import scopes_disabled
from playwright.sync_api import Browser, Page, expect

from affiliates.models import AffiliateStatus, Role
from goals.models import Goal
from goals.periods import month_of
from goals.rollups import process_dirty_keys
from tests.e2e.test_onboarding import log_in
from tests.factories import AffiliateFactory, MembershipFactory, ProgramFactory
from tracking.clicks import buffering, drain_buffer
from tracking.links import create_link, create_offer

pytestmark = pytest.mark.e2e

BROWSER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"


@dataclass
class Partners:
    program: object
    manager: object
    affiliate_user: object
    affiliate: object
    code: str


@pytest.fixture
def partners(transactional_db, settings) -> Partners:
    """A program with a manager and an approved partner who has a tracking link; another program beside it."""
    settings.GOAL_POLL_SECONDS = 1
    with scopes_disabled():
        program = ProgramFactory(slug="harbor", name="Harbor Goods", timezone="Europe/Warsaw")
        manager = MembershipFactory(program=program, role=Role.MANAGER).user
        affiliate_user = MembershipFactory(program=program, role=Role.AFFILIATE).user
        affiliate = AffiliateFactory(
            program=program,
            user=affiliate_user,
            email=affiliate_user.email,
            name="Lighthouse Reviews",
            status=AffiliateStatus.APPROVED,
        )
        AffiliateFactory(program=program, name="Quiet Partner", status=AffiliateStatus.APPROVED)
        offer = create_offer(program=program, name="Harbor shop", destination_url="https://harbor.example/")
        link = create_link(program=program, offer=offer, affiliate=affiliate)
        other = ProgramFactory(slug="inland", name="Inland")
        AffiliateFactory(program=other, name="Lighthouse Reviews", status=AffiliateStatus.APPROVED)
    return Partners(program, manager, affiliate_user, affiliate, link.code)


# With SQLite, pytest-django's live server shares the test's one in-memory connection with every request
# thread, so nothing may use the database while another write is under way. The pages' polls (a browser
# feature, not the app's) are held while the test itself writes: a held poll is simply skipped, and the next
# one asks for everything since the last answer, so no change is lost.
TRACK_POLLS = """
window.e2eInFlight = 0;
document.body.addEventListener("htmx:beforeRequest", (event) => {
  if (window.e2eHeld) { event.preventDefault(); return; }
  event.detail.xhr.e2eCounted = true;
  window.e2eInFlight += 1;
});
document.body.addEventListener("htmx:afterRequest", (event) => {
  if (event.detail.xhr.e2eCounted) { window.e2eInFlight -= 1; }
});
"""


def watch_polls(page: Page) -> None:
    page.evaluate(TRACK_POLLS)


@contextmanager
def polls_held(*pages: Page) -> Iterator[None]:
    for page in pages:
        page.evaluate("window.e2eHeld = true")
    for page in pages:
        page.wait_for_function("window.e2eInFlight === 0")
    try:
        yield
    finally:
        for page in pages:
            page.evaluate("window.e2eHeld = false")


def send_clicks(page: Page, code: str, count: int) -> None:
    """Visitors follow the partner's link; the beat's rollup run then folds the clicks into the goal's progress."""
    for _ in range(count):
        response = page.request.get(f"/c/{code}", max_redirects=0, headers={"User-Agent": BROWSER_AGENT})
        assert response.status == 302
    if buffering():
        drain_buffer()
    assert process_dirty_keys() == 1


def test_goal_progress_moves_live_on_the_board_and_in_the_portal(page: Page, browser: Browser, partners, live_server):
    slug = partners.program.slug
    month = month_of(partners.program, timezone.now())
    board_path = f"/p/{slug}/goals/{month:%Y-%m}/"
    portal = browser.new_page(base_url=live_server.url)
    log_in(portal, partners.affiliate_user.email)
    expect(portal).to_have_url(re.compile(rf"/portal/{slug}/$"))

    # The manager sets a goal for the partner.
    log_in(page, partners.manager.email)
    page.goto(f"/p/{slug}/goals/")
    page.get_by_role("navigation", name="Goals").get_by_role("link", name="Set a goal").click()
    page.get_by_label("Affiliate").select_option(label="Lighthouse Reviews")
    page.get_by_label("KPI").select_option("clicks")
    page.get_by_label("Target").fill("10")
    page.get_by_role("button", name="Save goal").click()
    expect(page).to_have_url(re.compile(re.escape(board_path) + "$"))
    expect(page.get_by_role("status")).to_have_text("Goal set for Lighthouse Reviews.")
    watch_polls(page)
    cell = page.locator(f"#goal-cell-{partners.affiliate.pk}-clicks")
    expect(cell.locator(".goal-line .value")).to_have_text("Provisional value 0")
    expect(cell.locator(".goal-line .of")).to_have_text("/ of the target 10")
    # A full reload would start a new document and lose these markers; htmx swaps keep them.
    page.evaluate("window.boardMarker = 'same document'")

    # The partner watches their goals in the portal.
    with polls_held(page):
        portal.goto(f"/portal/{slug}/goals/")
        watch_polls(portal)
        with scopes_disabled():
            goal = Goal.objects.get(program=partners.program)
    assert (goal.affiliate_id, goal.kpi, goal.target) == (partners.affiliate.pk, "clicks", 10)
    card = portal.locator(f"#portal-goal-{goal.pk}")
    expect(card.locator(".goal-line .value")).to_have_text("Provisional value 0")
    portal.evaluate("window.portalMarker = 'same document'")

    # Traffic arrives: the board's next poll brings only the changed cell.
    with polls_held(page, portal):
        send_clicks(page, partners.code, 4)
    with page.expect_response(lambda response: "since=" in response.url and response.status == 200) as poll:
        expect(cell.locator(".goal-line .value")).to_have_text("Provisional value 4")
    body = poll.value.text()
    assert "<html" not in body
    assert re.findall(r'<td id="(goal-cell-[^"]+)"', body) == [f"goal-cell-{partners.affiliate.pk}-clicks"]
    expect(cell.locator(".goalbar .fill.provisional")).to_have_attribute("style", "width: 40.0%")
    expect(card.locator(".goal-line .value")).to_have_text("Provisional value 4")

    # More traffic reaches the target: both pages show it met, still without a reload.
    with polls_held(page, portal):
        send_clicks(page, partners.code, 6)
    expect(cell.locator(".goal-status")).to_have_text("Met")
    expect(cell.locator(".goal-line .value")).to_have_text("Provisional value 10")
    expect(card.locator(".goal-status")).to_have_text("Met")
    expect(page.locator("#board-totals .goal-line")).to_have_text("Provisional value 10 / of the target 10")
    assert page.evaluate("window.boardMarker") == "same document"
    assert portal.evaluate("window.portalMarker") == "same document"
    # The other program's partner of the same name never shows up here.
    expect(page.locator("#board tbody th")).to_have_text(["Lighthouse Reviews", "Quiet Partner"])
    portal.close()
