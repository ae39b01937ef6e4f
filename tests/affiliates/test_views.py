"""Manager pages, the portal and the account pages, as their users see them."""

import re

import pytest
from django.core import mail
from django.urls import reverse
from django_scopes import scopes_disabled

from affiliates.emails import invitation_token
from affiliates.models import Affiliate, AffiliateStatusChange, Invitation, Membership, Program, User
from tests.factories import PASSWORD, AffiliateFactory, MembershipFactory

pytestmark = pytest.mark.django_db


def url(name, world, **kwargs):
    return reverse(name, kwargs={"program_slug": world.program.slug, **kwargs})


def row_names(response) -> list[str]:
    return re.findall(r'/affiliates/\d+/">([^<]+)</a>', response.content.decode())


def test_login_with_email_lands_on_the_only_program(client, alice):
    response = client.post(
        reverse("login"), {"username": alice.manager.email.upper(), "password": PASSWORD}, follow=True
    )
    assert response.redirect_chain[-1][0] == url("manage:home", alice)
    assert "alice applicant" in response.content.decode()


def test_wrong_password_shows_an_error(client, alice):
    response = client.post(reverse("login"), {"username": alice.manager.email, "password": "nope"})
    assert response.status_code == 200
    assert "correct email address and password" in response.content.decode()


def test_program_switcher_lists_only_own_programs(client, alice, bob):
    with scopes_disabled():
        MembershipFactory(program=bob.program, user=alice.manager, role="analyst")
    client.force_login(alice.manager)
    body = client.get(reverse("home")).content.decode()
    assert url("manage:home", alice) in body
    assert url("manage:home", bob) in body
    with scopes_disabled():
        other = Program.objects.create(name="Hidden Co", slug="hidden")
    assert other.name not in client.get(reverse("home")).content.decode()


def test_affiliate_list_searches_filters_and_sorts(client, alice, bob):
    client.force_login(alice.manager)
    listing = url("manage:affiliate_list", alice)
    assert row_names(client.get(listing, {"sort": "name"})) == sorted(row_names(client.get(listing, {"sort": "name"})))
    assert row_names(client.get(listing, {"sort": "name"})) == [
        "alice applicant",
        "alice partner one",
        "alice partner two",
        "alice rejected",
        "alice suspended",
    ]
    assert row_names(client.get(listing, {"sort": "-name"}))[0] == "alice suspended"
    assert row_names(client.get(listing, {"status": "pending"})) == ["alice applicant"]
    assert row_names(client.get(listing, {"q": "PARTNER TWO"})) == ["alice partner two"]
    assert "bob" not in " ".join(row_names(client.get(listing, {"q": "bob"})))


def test_affiliate_list_ignores_bad_filter_values(client, alice):
    client.force_login(alice.manager)
    response = client.get(
        url("manage:affiliate_list", alice), {"status": "nonsense", "sort": "password", "page": "999"}
    )
    assert response.status_code == 200
    assert len(row_names(response)) == 5


def test_affiliate_list_paginates(client, alice):
    with scopes_disabled():
        AffiliateFactory.create_batch(30, program=alice.program, name="zz bulk")
    client.force_login(alice.manager)
    first = client.get(url("manage:affiliate_list", alice), {"sort": "name"})
    second = client.get(url("manage:affiliate_list", alice), {"sort": "name", "page": 2})
    assert len(row_names(first)) == 25
    assert len(row_names(second)) == 10
    assert "Page 2 of 2" in second.content.decode()


def test_affiliate_list_htmx_request_gets_only_the_results(client, alice):
    client.force_login(alice.manager)
    response = client.get(url("manage:affiliate_list", alice), {"status": "pending"}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="results">')
    assert "<html" not in body
    assert row_names(response) == ["alice applicant"]
    assert "HX-Request" in response["Vary"]


@pytest.mark.parametrize("count", [1, 3])
def test_affiliate_list_query_count_is_constant(client, django_assert_num_queries, count, db):
    from tests.conftest import build_world

    world = build_world(f"q{count}")
    with scopes_disabled():
        Affiliate.objects.filter(program=world.program).exclude(pk__in=[]).delete()
        AffiliateFactory.create_batch(count, program=world.program)
    client.force_login(world.manager)
    # session, user, program, membership, count, page rows, switcher memberships
    with django_assert_num_queries(7):
        response = client.get(url("manage:affiliate_list", world))
    assert len(row_names(response)) == count


def test_manager_approves_from_the_detail_page(client, alice, django_capture_on_commit_callbacks):
    client.force_login(alice.manager)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            url("manage:affiliate_status", alice, affiliate_id=alice.pending.pk), {"to_status": "approved"}, follow=True
        )
    assert "is now approved" in response.content.decode()
    with scopes_disabled():
        assert Affiliate.objects.get(pk=alice.pending.pk).status == "approved"
        assert AffiliateStatusChange.objects.get(affiliate=alice.pending).changed_by == alice.manager
    assert mail.outbox[0].to == [alice.pending.email]


def test_reject_without_reason_shows_the_error_and_changes_nothing(client, alice):
    client.force_login(alice.manager)
    response = client.post(
        url("manage:affiliate_status", alice, affiliate_id=alice.pending.pk),
        {"to_status": "rejected", "reason": ""},
        follow=True,
    )
    assert "Give a reason" in response.content.decode()
    with scopes_disabled():
        assert Affiliate.objects.get(pk=alice.pending.pk).status == "pending"


def test_forged_approve_for_another_programs_affiliate_is_404(client, alice, bob):
    client.force_login(alice.manager)
    response = client.post(
        url("manage:affiliate_status", alice, affiliate_id=bob.pending.pk), {"to_status": "approved"}
    )
    assert response.status_code == 404
    with scopes_disabled():
        assert Affiliate.objects.get(pk=bob.pending.pk).status == "pending"
        assert not AffiliateStatusChange.objects.filter(affiliate=bob.pending).exists()


def test_analyst_sees_no_actions(client, alice):
    client.force_login(alice.analyst)
    body = client.get(url("manage:affiliate_detail", alice, affiliate_id=alice.pending.pk)).content.decode()
    assert "alice applicant" in body
    assert f"affiliates/{alice.pending.pk}/status/" not in body


APPLICATION = {
    "name": "Nordic Trails",
    "email": "hello@nordic.test",
    "password": "a long enough secret 9",
    "website": "nordic.example",
    "traffic_sources": "Blog",
    "country": "SE",
    "payout_email": "",
    "accept_terms": "on",
}


def test_public_application_signs_in_and_shows_pending(client, alice):
    response = client.post(url("portal:apply", alice), APPLICATION, follow=True)
    body = response.content.decode()
    assert response.redirect_chain[-1][0] == url("portal:home", alice)
    assert "Pending" in body
    with scopes_disabled():
        affiliate = Affiliate.objects.get(email="hello@nordic.test")
    assert (affiliate.website, affiliate.country, affiliate.program) == ("https://nordic.example", "SE", alice.program)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"accept_terms": ""}, "You must accept the terms"),
        ({"email": "not-an-email"}, "Enter a valid email address"),
        ({"country": "XX"}, "Select a valid choice"),
        ({"website": "javascript:alert(1)"}, "Enter a valid URL"),
        ({"password": ""}, "This field is required"),
    ],
)
def test_bad_application_shows_the_error_and_saves_nothing(client, alice, change, message):
    response = client.post(url("portal:apply", alice), {**APPLICATION, **change})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not User.objects.filter(email="hello@nordic.test").exists()


def test_application_with_taken_email_shows_the_error(client, alice):
    response = client.post(url("portal:apply", alice), {**APPLICATION, "email": alice.pending.email})
    assert response.status_code == 400
    assert "already applied" in response.content.decode()
    with scopes_disabled():
        assert Affiliate.objects.filter(program=alice.program, email=alice.pending.email).count() == 1


def test_invite_page_sends_the_link_and_accepting_joins(client, alice, django_capture_on_commit_callbacks):
    client.force_login(alice.owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            url("manage:members", alice), {"email": "new@alice.test", "role": "analyst"}, follow=True
        )
    assert "Invitation sent" in response.content.decode()
    with scopes_disabled():
        invitation = Invitation.objects.get(email="new@alice.test")
    link = reverse("accept_invitation", kwargs={"token": invitation_token(invitation)})
    assert link in mail.outbox[0].body
    client.logout()
    mismatch = client.post(link, {"name": "New", "password1": "a long enough secret 9", "password2": "other"})
    assert mismatch.status_code == 400
    assert "The two passwords differ" in mismatch.content.decode()
    joined = client.post(
        link, {"name": "New", "password1": "a long enough secret 9", "password2": "a long enough secret 9"}, follow=True
    )
    assert joined.redirect_chain[-1][0] == url("manage:home", alice)
    with scopes_disabled():
        assert Membership.objects.get(user__email="new@alice.test").role == "analyst"
    assert client.get(link).status_code == 400


def test_invite_page_refuses_an_existing_member(client, alice):
    client.force_login(alice.owner)
    response = client.post(url("manage:members", alice), {"email": alice.manager.email, "role": "manager"})
    assert response.status_code == 400
    assert "already a member" in response.content.decode()
    with scopes_disabled():
        assert not Invitation.objects.exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("timezone", "Europe/Atlantis", "IANA time zone"),
        ("currency", "EUX", "ISO 4217"),
        ("default_cookie_window_days", "-3", "greater than or equal to 0"),
    ],
)
def test_settings_page_refuses_bad_values(client, alice, field, value, message):
    client.force_login(alice.owner)
    data = {
        "name": "Alice",
        "timezone": "Europe/Warsaw",
        "currency": "EUR",
        "default_cookie_window_days": 30,
        field: value,
    }
    response = client.post(url("manage:settings", alice), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    alice.program.refresh_from_db()
    assert (alice.program.timezone, alice.program.currency) == ("Europe/Warsaw", "EUR")


def test_password_reset_emails_a_working_link(client, alice):
    client.post(reverse("password_reset"), {"email": alice.manager.email})
    assert len(mail.outbox) == 1
    link = re.search(r"https?://[^/]+(/accounts/reset/\S+)", mail.outbox[0].body).group(1)
    form = client.get(link, follow=True)
    response = client.post(
        form.redirect_chain[-1][0],
        {"new_password1": "brand new secret 42", "new_password2": "brand new secret 42"},
        follow=True,
    )
    assert "Password changed" in response.content.decode()
    alice.manager.refresh_from_db()
    assert alice.manager.check_password("brand new secret 42")
