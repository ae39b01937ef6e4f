"""Business rules of applications, approvals and invitations, through the service functions."""

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import ValidationError
from django_scopes import scope, scopes_disabled

from affiliates import services
from affiliates.emails import invitation_token
from affiliates.models import (
    Affiliate,
    AffiliateStatus,
    AffiliateStatusChange,
    Invitation,
    Membership,
    Program,
    Role,
    User,
)
from tests.factories import PASSWORD, AffiliateFactory, UserFactory

pytestmark = pytest.mark.django_db


def apply(program, **overrides):
    data = {
        "program": program,
        "name": "Trail Blog",
        "email": "Writer@Trail.test",
        "website": "https://trail.example",
        "traffic_sources": "Blog",
        "country": "SE",
        "password": "a long enough secret 9",
    }
    data.update(overrides)
    with scope(program=program):
        return services.apply_as_affiliate(**data)


def test_application_creates_pending_affiliate_account_and_audit_entry(alice):
    affiliate = apply(alice.program)
    with scopes_disabled():
        affiliate = Affiliate.objects.select_related("user").get(pk=affiliate.pk)
        assert (affiliate.status, affiliate.email, affiliate.payout_email) == (
            "pending",
            "writer@trail.test",
            "writer@trail.test",
        )
        assert affiliate.user.check_password("a long enough secret 9")
        assert Membership.objects.get(program=alice.program, user=affiliate.user).role == Role.AFFILIATE
        assert list(AffiliateStatusChange.objects.filter(affiliate=affiliate).values_list("to_status", flat=True)) == [
            "pending"
        ]
        assert affiliate.terms_accepted_at is not None


def test_application_with_taken_email_is_refused_and_saves_nothing(alice):
    apply(alice.program)
    users_before = User.objects.count()
    with pytest.raises(ValidationError) as error:
        apply(alice.program, email="writer@TRAIL.test", name="Copycat")
    assert "already applied" in error.value.message_dict["email"][0]
    assert User.objects.count() == users_before
    with scopes_disabled():
        assert Affiliate.objects.filter(program=alice.program, email="writer@trail.test").count() == 1


def test_application_with_existing_account_asks_to_sign_in(alice, bob):
    with pytest.raises(ValidationError) as error:
        apply(alice.program, email=bob.manager.email)
    assert "Sign in first" in error.value.message_dict["email"][0]
    with scopes_disabled():
        assert not Affiliate.objects.filter(email=bob.manager.email).exists()


def test_signed_in_user_applies_to_a_second_program_with_the_same_account(alice, bob):
    affiliate = apply(bob.program, email=alice.affiliate_user.email, password=None, user=alice.affiliate_user)
    assert affiliate.user == alice.affiliate_user
    with scopes_disabled():
        roles = dict(Membership.objects.filter(user=alice.affiliate_user).values_list("program__slug", "role"))
    assert roles == {"alice": "affiliate", "bob": "affiliate"}


def test_weak_password_is_refused(alice):
    with pytest.raises(ValidationError):
        apply(alice.program, password="123")
    assert not User.objects.filter(email="writer@trail.test").exists()


def test_auto_approve_program_approves_at_once(alice, django_capture_on_commit_callbacks):
    Program.objects.filter(pk=alice.program.pk).update(auto_approve_affiliates=True)
    alice.program.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        affiliate = apply(alice.program)
    assert affiliate.status == AffiliateStatus.APPROVED
    with scopes_disabled():
        changes = list(
            AffiliateStatusChange.objects.filter(affiliate=affiliate)
            .order_by("pk")
            .values_list("from_status", "to_status")
        )
    assert changes == [("", "pending"), ("pending", "approved")]
    assert [message.to for message in mail.outbox] == [["writer@trail.test"]]


def test_approval_records_who_and_emails_the_affiliate(alice, django_capture_on_commit_callbacks):
    with scope(program=alice.program), django_capture_on_commit_callbacks(execute=True):
        change = services.change_affiliate_status(
            program=alice.program, affiliate=alice.pending, to_status="approved", changed_by=alice.manager
        )
    with scopes_disabled():
        assert Affiliate.objects.get(pk=alice.pending.pk).status == "approved"
    assert (change.from_status, change.to_status, change.changed_by) == ("pending", "approved", alice.manager)
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [alice.pending.email]
    assert "Approved" in mail.outbox[0].subject
    assert f"/portal/{alice.program.slug}/" in mail.outbox[0].body


def test_rejection_needs_a_reason(alice):
    with scope(program=alice.program), pytest.raises(ValidationError) as error:
        services.change_affiliate_status(
            program=alice.program, affiliate=alice.pending, to_status="rejected", reason="  ", changed_by=alice.manager
        )
    assert "reason" in error.value.message_dict
    with scopes_disabled():
        assert Affiliate.objects.get(pk=alice.pending.pk).status == "pending"
        assert AffiliateStatusChange.objects.filter(affiliate=alice.pending).count() == 0


@pytest.mark.parametrize(
    ("start", "target"),
    [("pending", "suspended"), ("approved", "rejected"), ("approved", "approved"), ("rejected", "suspended")],
)
def test_impossible_transition_is_refused(alice, start, target):
    with scopes_disabled():
        affiliate = AffiliateFactory(program=alice.program, status=start)
    with scope(program=alice.program), pytest.raises(ValidationError, match="cannot be"):
        services.change_affiliate_status(
            program=alice.program, affiliate=affiliate, to_status=target, reason="why", changed_by=alice.manager
        )
    with scopes_disabled():
        assert Affiliate.objects.get(pk=affiliate.pk).status == start


def test_status_change_of_another_programs_affiliate_is_refused(alice, bob):
    with scope(program=alice.program), pytest.raises(ValidationError, match="does not belong"):
        services.change_affiliate_status(
            program=alice.program, affiliate=bob.pending, to_status="approved", changed_by=alice.manager
        )
    with scopes_disabled():
        assert Affiliate.objects.get(pk=bob.pending.pk).status == "pending"


def test_suspended_affiliate_can_be_reinstated(alice):
    with scope(program=alice.program):
        services.change_affiliate_status(
            program=alice.program,
            affiliate=alice.affiliate,
            to_status="suspended",
            reason="Fraud check",
            changed_by=alice.manager,
        )
        services.change_affiliate_status(
            program=alice.program, affiliate=alice.affiliate, to_status="approved", changed_by=alice.manager
        )
        statuses = list(
            AffiliateStatusChange.objects.filter(affiliate=alice.affiliate)
            .order_by("pk")
            .values_list("to_status", flat=True)
        )
    assert statuses == ["suspended", "approved"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("timezone_name", "Mars/Olympus"), ("currency", "EURO"), ("currency", "XYZ"), ("slug", "alice")],
)
def test_program_with_bad_settings_is_refused(alice, field, value):
    owner = UserFactory()
    data = {
        "name": "New",
        "slug": "new-program",
        "timezone_name": "Europe/Stockholm",
        "currency": "SEK",
        "owner": owner,
    }
    data[field] = value
    with pytest.raises(ValidationError):
        services.create_program(**data)
    assert Program.objects.count() == 1
    with scopes_disabled():
        assert not Membership.objects.filter(user=owner).exists()


def test_program_creation_makes_the_creator_owner(db):
    owner = UserFactory()
    program = services.create_program(
        name="Nordic", slug="nordic", timezone_name="Europe/Stockholm", currency="sek", owner=owner
    )
    assert program.currency == "SEK"
    with scopes_disabled():
        assert Membership.objects.get(program=program).role == Role.OWNER


def invite(world, email="colleague@alice.test", role="manager"):
    with scope(program=world.program):
        return services.invite_member(program=world.program, email=email, role=role, invited_by=world.owner)


def test_invitation_emails_a_link_that_sets_a_password(alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        invitation = invite(alice)
    assert len(mail.outbox) == 1
    assert invitation_token(invitation) in mail.outbox[0].body
    found = services.invitation_from_token(invitation_token(invitation))
    with scope(program=alice.program):
        user = services.accept_invitation(invitation=found, name="Cole", password="a long enough secret 9")
        assert Membership.objects.get(program=alice.program, user=user).role == "manager"
    assert user.check_password("a long enough secret 9")
    with pytest.raises(ValidationError, match="already been used"):
        services.invitation_from_token(invitation_token(invitation))


def test_expired_invitation_is_refused(alice):
    with time_machine.travel("2026-01-01 12:00Z", tick=False):
        invitation = invite(alice)
        token = invitation_token(invitation)
    with time_machine.travel("2026-01-09 12:01Z", tick=False), pytest.raises(ValidationError, match="expired"):
        services.invitation_from_token(token)


def test_tampered_invitation_is_refused(alice):
    token = invitation_token(invite(alice))
    with pytest.raises(ValidationError, match="not valid"):
        services.invitation_from_token(token[:-2] + "xx")


def test_only_owners_invite(alice):
    with scope(program=alice.program), pytest.raises(ValidationError, match="Only owners"):
        services.invite_member(program=alice.program, email="x@y.test", role="manager", invited_by=alice.manager)
    with scopes_disabled():
        assert not Invitation.objects.exists()


def test_existing_user_accepting_keeps_their_password(alice, bob):
    invitation = invite(alice, email=bob.manager.email, role="analyst")
    with scope(program=alice.program):
        user = services.accept_invitation(invitation=invitation, name="", password=None)
    assert user == bob.manager
    assert user.check_password(PASSWORD)
