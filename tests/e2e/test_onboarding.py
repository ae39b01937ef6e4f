"""A manager approves an applicant in the browser, and the applicant sees it in the partner portal."""

import re

import pytest
from django_scopes import scopes_disabled
from playwright.sync_api import Page, expect

from affiliates.models import Affiliate, AffiliateStatus, AffiliateStatusChange
from tests.factories import PASSWORD

pytestmark = pytest.mark.e2e


def log_in(page: Page, email: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_onboarding_manager_approval_reaches_applicant_portal(page: Page, onboarding, mailoutbox):
    log_in(page, onboarding.manager.email)
    expect(page).to_have_url(re.compile(r"/p/meadow/$"))

    page.goto("/p/meadow/affiliates/")
    names = page.locator("#results tbody td:first-child a")
    expect(names).to_have_count(4)
    page.get_by_label("Status").select_option("pending")
    expect(names).to_have_text(["Nadia Novak Media", "Pending Without Account"])
    expect(page).to_have_url(re.compile(r"[?&]status=pending(&|$)"))

    names.get_by_text("Nadia Novak Media").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Nadia Novak Media")
    expect(page.locator("#affiliate-status")).to_have_text("Pending")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#affiliate-status")).to_have_text("Approved")
    expect(page.get_by_role("status")).to_have_text("Nadia Novak Media is now approved.")
    history = page.locator("table tbody tr")
    expect(history).to_have_count(1)
    expect(history.locator("td").nth(1)).to_have_text("Pending → Approved")
    expect(history.locator("td").nth(2)).to_have_text(onboarding.manager.email)

    with scopes_disabled():
        applicant = Affiliate.objects.get(pk=onboarding.applicant.pk)
        changes = list(AffiliateStatusChange.objects.filter(affiliate=applicant))
        still_pending = list(
            Affiliate.objects.filter(program=onboarding.program, status=AffiliateStatus.PENDING).values_list(
                "name", flat=True
            )
        )
    assert applicant.status == AffiliateStatus.APPROVED
    assert [(c.from_status, c.to_status, c.changed_by_id) for c in changes] == [
        (AffiliateStatus.PENDING, AffiliateStatus.APPROVED, onboarding.manager.pk)
    ]
    assert still_pending == ["Pending Without Account"]
    assert [(message.to, message.subject) for message in mailoutbox] == [
        ([onboarding.applicant_user.email], "Meadow Deals: your partner account is Approved")
    ]

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))

    log_in(page, onboarding.applicant_user.email)
    expect(page).to_have_url(re.compile(r"/portal/meadow/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Your partnership with Meadow Deals")
    expect(page.locator("#affiliate-status")).to_have_text("Approved")
    expect(page.get_by_text("You are approved.")).to_be_visible()


def test_affiliate_search_swaps_rows_and_pushes_url_without_reload(page: Page, onboarding):
    log_in(page, onboarding.manager.email)
    expect(page).to_have_url(re.compile(r"/p/meadow/$"))
    page.goto("/p/meadow/affiliates/")
    names = page.locator("#results tbody td:first-child a")
    expect(names).to_have_count(4)
    # A full reload would start a new document and lose this marker; an htmx swap keeps it.
    page.evaluate("window.searchMarker = 'same document'")

    with page.expect_response(lambda response: "q=nadia" in response.url) as search:
        page.get_by_label("Search").fill("nadia")

    response = search.value
    assert response.request.header_value("hx-request") == "true"
    assert "<html" not in response.text()
    expect(names).to_have_text(["Nadia Novak Media"])
    expect(page.locator("#results > p.muted")).to_have_text("1 affiliate")
    expect(page).to_have_url(re.compile(r"/p/meadow/affiliates/\?(.*&)?q=nadia(&|$)"))
    expect(page.get_by_label("Search")).to_have_value("nadia")
    assert page.evaluate("window.searchMarker") == "same document"
