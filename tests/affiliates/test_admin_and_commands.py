"""Django admin works across programs (scopes disabled on purpose) and the demo seed is idempotent."""

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.urls import reverse
from django_scopes import scopes_disabled

from affiliates.models import Affiliate, AffiliateStatusChange, Membership, Program, User
from goals.models import BonusEntry, Goal, MonthClose
from tracking.models import Click, Conversion, Offer

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser(email="root@example.test", password="x")


@pytest.mark.parametrize("model", list(admin.site._registry), ids=lambda model: model.__name__)
def test_admin_changelist_and_change_page_render_for_every_model(client, superuser, alice, bob, model):
    client.force_login(superuser)
    meta = model._meta
    changelist = client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
    assert changelist.status_code == 200
    with scopes_disabled():
        row = model.objects.order_by("pk").first()
    if row is not None:
        change = client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[row.pk]))
        assert change.status_code == 200


def test_admin_lists_affiliates_of_every_program(client, superuser, alice, bob):
    client.force_login(superuser)
    body = client.get(reverse("admin:affiliates_affiliate_changelist")).content.decode()
    assert "alice applicant" in body
    assert "bob applicant" in body


def test_audit_log_is_read_only_in_admin(client, superuser, alice):
    client.force_login(superuser)
    response = client.get(reverse("admin:affiliates_affiliatestatuschange_add"))
    assert response.status_code == 403


def counts() -> dict:
    with scopes_disabled():
        return {
            "programs": Program.objects.count(),
            "users": User.objects.count(),
            "members": Membership.objects.count(),
            "affiliates": Affiliate.objects.count(),
            "changes": AffiliateStatusChange.objects.count(),
            "statuses": sorted(Affiliate.objects.values_list("status", flat=True)),
            "offers": Offer.objects.count(),
            "clicks": Click.objects.count(),
            "conversions": sorted(Conversion.objects.values_list("status", flat=True)),
            "goals": Goal.objects.count(),
            "bonuses": BonusEntry.objects.count(),
            "closes": MonthClose.objects.count(),
        }


def test_seed_demo_creates_both_programs_and_is_idempotent(capsys):
    call_command("seed_demo", clicks_per_day=1)
    first = counts()
    call_command("seed_demo", clicks_per_day=1)
    assert counts() == first
    assert first["programs"] == 2
    assert first["affiliates"] == 60
    assert set(first["statuses"]) == {"pending", "approved", "rejected", "suspended"}
    assert first["offers"] == 4
    assert first["clicks"] > 1000
    assert {"pending", "approved"} <= set(first["conversions"])
    assert first["goals"] > 100
    assert first["closes"] == 4  # two past months in each program
    with scopes_disabled():
        demo = Program.objects.get(slug="demo")
        acme = Program.objects.get(slug="acme")
        assert (demo.timezone, demo.currency, acme.timezone, acme.currency) == (
            "Europe/Warsaw",
            "EUR",
            "America/New_York",
            "USD",
        )
        assert Membership.objects.get(program=demo, user__email="manager@demo.test").role == "manager"
        assert Membership.objects.get(program=demo, user__email="affiliate@demo.test").role == "affiliate"
    assert User.objects.get(email="admin@demo.test").is_superuser
    assert User.objects.get(email="manager@demo.test").check_password("demo")
    assert "manager@demo.test" in capsys.readouterr().out
