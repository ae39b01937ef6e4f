"""Playwright harness: Debian's Chromium driving pytest-django's live server, a screenshot on failure."""

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from django_scopes import scopes_disabled

from affiliates.models import AffiliateStatus, Role
from tests.factories import AffiliateFactory, MembershipFactory, ProgramFactory

# The sync Playwright API runs an event loop in the test thread; Django would otherwise refuse the ORM
# calls the tests make there to arrange and inspect rows.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT_DIR = Path("test-results")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    # Playwright cannot download its own browsers here, so a missing system Chromium must fail loudly:
    # a skip would let CI go green without ever running these tests.
    if not CHROMIUM.exists():
        pytest.fail(f"The e2e tests need Chromium at {CHROMIUM}; install it (apt-get install chromium).")
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "headless": True, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def base_url(live_server):
    """Let tests call page.goto("/accounts/login/") against the live server."""
    return live_server.url


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Save test-results/<test name>.png when a test that drives a page fails."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    page = getattr(item, "funcargs", {}).get("page")
    if page is None:
        return
    SCREENSHOT_DIR.mkdir(exist_ok=True)
    path = SCREENSHOT_DIR / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', item.name)}.png"
    try:
        page.screenshot(path=str(path), full_page=True)
    except Exception as error:  # A closed or crashed page must not hide the test's own failure.
        report.sections.append(("screenshot", f"could not save {path}: {error}"))
    else:
        report.sections.append(("screenshot", f"saved {path.resolve()}"))


@dataclass
class Onboarding:
    """A program with a manager, two approved partners and two applicants, one of whom has an account."""

    program: object
    manager: object
    applicant_user: object
    applicant: object


@pytest.fixture
def onboarding(transactional_db) -> Onboarding:
    with scopes_disabled():
        program = ProgramFactory(slug="meadow", name="Meadow Deals")
        manager = MembershipFactory(program=program, role=Role.MANAGER).user
        for name in ("Approved Alpha", "Approved Beta"):
            AffiliateFactory(program=program, status=AffiliateStatus.APPROVED, name=name)
        AffiliateFactory(program=program, status=AffiliateStatus.PENDING, name="Pending Without Account")
        applicant_user = MembershipFactory(program=program, role=Role.AFFILIATE, user__name="Nadia Novak").user
        applicant = AffiliateFactory(
            program=program,
            user=applicant_user,
            email=applicant_user.email,
            name="Nadia Novak Media",
            status=AffiliateStatus.PENDING,
        )
        # Another program's applicant with the same name must never show up in Meadow's list.
        other_program = ProgramFactory(slug="orchard", name="Orchard")
        AffiliateFactory(program=other_program, status=AffiliateStatus.PENDING, name="Nadia Novak Media")
    return Onboarding(program=program, manager=manager, applicant_user=applicant_user, applicant=applicant)
