"""Monthly reviews (managers annotate and share; affiliates read only shared ones) and in-app notifications."""

import re
from datetime import date
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from goals.closing import close_month
from goals.models import MonthlyReview, Notification
from tests.goals.builders import MARCH, make_goal, put_stats, utc

pytestmark = pytest.mark.django_db

EARLY_APRIL = utc("2026-04-08 10:00")


@pytest.fixture(autouse=True)
def _early_april():
    with time_machine.travel(EARLY_APRIL, tick=False):
        yield


@pytest.fixture
def reviews(alice, bob):
    """March closed in both programs: alice's two partners and bob's partner each have a review."""
    for world in (alice, bob):
        put_stats(world.affiliate, date(2026, 3, 5), clicks=1000, conversions_approved=50, revenue_approved="2500")
        put_stats(world.other_affiliate, date(2026, 3, 5), clicks=10)
        make_goal(world.affiliate, kpi="conversion_rate", target=Decimal(4), month=MARCH)
        make_goal(world.affiliate, kpi="clicks", target=Decimal(2000), month=MARCH)
        with scopes_disabled(), scope(program=world.program):
            close_month(program=world.program, month=MARCH)
    with scopes_disabled():
        return {
            review.affiliate_id: review
            for review in MonthlyReview.objects.filter(program=alice.program).select_related("affiliate")
        }


def text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def manage(name: str, **kwargs) -> str:
    return reverse(f"manage:{name}", kwargs={"program_slug": "alice", **kwargs})


def test_review_list_of_the_month(client, alice, reviews):
    client.force_login(alice.analyst)

    response = client.get(manage("review_list", month=MARCH))

    assert [review.affiliate.name for review in response.context["page"]] == ["alice partner one", "alice partner two"]
    assert "bob partner" not in response.content.decode()


def test_review_list_filters_and_sorts(client, alice, reviews):
    review = reviews[alice.affiliate.pk]
    with scopes_disabled():
        MonthlyReview.objects.filter(pk=review.pk).update(shared_at=timezone.now())
    client.force_login(alice.manager)

    def names(**params):
        return [r.affiliate.name for r in client.get(manage("review_list", month=MARCH), params).context["page"]]

    assert names(shared="yes") == ["alice partner one"]
    assert names(shared="no") == ["alice partner two"]
    assert names(sort="-name") == ["alice partner two", "alice partner one"]
    assert names(q="TWO") == ["alice partner two"]


def test_review_detail_shows_kpis_goals_benchmarks_and_trend(client, alice, reviews):
    review = reviews[alice.affiliate.pk]
    client.force_login(alice.manager)

    html = client.get(manage("review_detail", review_id=review.pk)).content.decode()

    row = re.search(
        r"<tr>\s*<th scope=\"row\" title=\"Conversions / clicks[^\"]*\">Conversion rate</th>(.*?)</tr>", html, re.S
    )
    assert text(row.group(1)) == (
        "5.00 % target 4.00 % · 125.00 % Met average 2.00 %–5.00 % · optimal 10.00 % average — · — · —"
    )
    assert "Best KPI" in html
    assert review.best_kpi == "conversion_rate"
    assert 'title="Conversions / clicks × 100, both in the same period.">Conversion rate</div>' in html


def test_manager_annotates_then_shares_a_review(client, alice, reviews, mailoutbox, django_capture_on_commit_callbacks):
    review = reviews[alice.affiliate.pk]
    client.force_login(alice.manager)

    saved = client.post(manage("review_feedback", review_id=review.pk), {"feedback": "  Great month!  "})
    with django_capture_on_commit_callbacks(execute=True):
        shared = client.post(manage("review_share", review_id=review.pk))
        again = client.post(manage("review_share", review_id=review.pk))

    assert saved["Location"] == shared["Location"] == again["Location"] == f"/p/alice/goals/reviews/{review.pk}/"
    with scopes_disabled():
        review.refresh_from_db()
        notified = list(Notification.objects.filter(program=alice.program, user=alice.affiliate_user))
    assert review.feedback == "Great month!"
    assert review.shared_at == EARLY_APRIL
    assert [notification.message for notification in notified] == ["Your review of March 2026 from Alice is ready."]
    assert [message.to for message in mailoutbox] == [[alice.affiliate_user.email]]


def test_analyst_reads_reviews_but_cannot_annotate_or_share(client, alice, reviews):
    review = reviews[alice.affiliate.pk]
    client.force_login(alice.analyst)

    page = client.get(manage("review_detail", review_id=review.pk)).content.decode()

    assert "Share with the affiliate" not in page
    assert client.post(manage("review_feedback", review_id=review.pk), {"feedback": "x"}).status_code == 404
    assert client.post(manage("review_share", review_id=review.pk)).status_code == 404
    with scopes_disabled():
        review.refresh_from_db()
    assert (review.feedback, review.shared_at) == ("", None)


def portal_review(review) -> str:
    return reverse("portal:review", kwargs={"program_slug": "alice", "review_id": review.pk})


def test_affiliate_reads_only_their_own_shared_review(client, alice, reviews):
    own, theirs = reviews[alice.affiliate.pk], reviews[alice.other_affiliate.pk]
    client.force_login(alice.affiliate_user)

    before_sharing = client.get(portal_review(own))
    with scopes_disabled():
        MonthlyReview.objects.filter(pk__in=[own.pk, theirs.pk]).update(shared_at=timezone.now(), feedback="Keep going")
    after_sharing = client.get(portal_review(own))

    assert before_sharing.status_code == 404
    assert after_sharing.status_code == 200
    assert "Your review of March 2026" in after_sharing.content.decode()
    assert "Keep going" in after_sharing.content.decode()
    assert client.get(portal_review(theirs)).status_code == 404


def test_notifications_list_unread_badge_and_mark_read(client, alice, bob):
    with scopes_disabled():
        for message in ("first", "second"):
            Notification.objects.create(program=alice.program, user=alice.manager, message=message, url="/p/alice/")
        Notification.objects.create(program=alice.program, user=alice.owner, message="the owner's")
        Notification.objects.create(program=bob.program, user=alice.manager, message="bob's program")
    client.force_login(alice.manager)

    listed = client.get(manage("notification_list"))
    badge = client.get(manage("notification_badge"), headers={"HX-Request": "true"})
    read = client.post(manage("notifications_read"))
    badge_after = client.get(manage("notification_badge"), headers={"HX-Request": "true"})

    assert [notification.message for notification in listed.context["page"]] == ["second", "first"]
    assert text(badge.content.decode()) == "2 2 unread notifications"
    assert read["Location"] == "/p/alice/notifications/"
    assert badge_after.content.decode().strip() == ""
    with scopes_disabled():
        unread = set(Notification.objects.filter(read_at__isnull=True).values_list("message", flat=True))
    assert unread == {"the owner's", "bob's program"}


def test_portal_notifications_are_the_affiliates_own(client, alice):
    with scopes_disabled():
        Notification.objects.create(program=alice.program, user=alice.affiliate_user, message="You met a goal")
        Notification.objects.create(program=alice.program, user=alice.other_affiliate_user, message="not yours")
    client.force_login(alice.affiliate_user)

    response = client.get(reverse("portal:notification_list", kwargs={"program_slug": "alice"}))

    assert [notification.message for notification in response.context["page"]] == ["You met a goal"]
    assert "not yours" not in response.content.decode()


def test_bell_loads_its_count_without_a_query_on_the_page(client, alice):
    client.force_login(alice.manager)
    html = client.get(manage("goals")).content.decode()
    assert (
        '<span id="bell-badge" hx-get="/p/alice/notifications/badge/" hx-trigger="load, every 60s" hx-swap="innerHTML">'
        in html
    )
