"""The fail-closed net: tenant models refuse to be queried outside a program scope."""

import pytest
from django.apps import apps
from django.urls import reverse
from django_scopes import ScopeError, scope
from rest_framework.authtoken.models import Token

from affiliates.models import Affiliate, Program

pytestmark = pytest.mark.django_db

PROJECT_APPS = ("affiliates", "tracking", "goals", "reports")


def tenant_models() -> list[type]:
    """Every model of ours with a ``program`` foreign key; each must be scoped."""
    return [
        model
        for app in PROJECT_APPS
        for model in apps.get_app_config(app).get_models()
        if any(field.name == "program" for field in model._meta.get_fields())
    ]


def test_the_walk_finds_the_tenant_models():
    names = {model.__name__ for model in tenant_models()}
    assert {"Membership", "Affiliate", "AffiliateStatusChange", "Invitation"} <= names


@pytest.mark.parametrize("model", tenant_models(), ids=lambda model: model.__name__)
def test_query_outside_a_scope_raises(model):
    with pytest.raises(ScopeError):
        list(model.objects.all())


def test_query_inside_a_scope_sees_only_that_program(alice, bob):
    with scope(program=alice.program):
        names = set(Affiliate.objects.filter(program=alice.program).values_list("name", flat=True))
        assert names == {
            "alice partner one",
            "alice partner two",
            "alice applicant",
            "alice rejected",
            "alice suspended",
        }


def test_affiliate_sees_only_itself_in_the_portal(client, alice):
    client.force_login(alice.affiliate_user)
    body = client.get(reverse("portal:home", kwargs={"program_slug": alice.program.slug})).content.decode()
    assert alice.affiliate.name in body
    assert alice.other_affiliate.name not in body
    assert alice.other_affiliate.email not in body


def test_affiliate_sees_only_itself_in_the_api(client, alice):
    token = Token.objects.create(user=alice.affiliate_user)
    auth = {"HTTP_AUTHORIZATION": f"Token {token.key}"}
    me = client.get(reverse("api_my_affiliate", kwargs={"program_slug": alice.program.slug}), **auth)
    assert me.status_code == 200
    assert me.json()["id"] == alice.affiliate.pk
    listing = client.get(reverse("api_affiliate_list", kwargs={"program_slug": alice.program.slug}), **auth)
    assert listing.status_code == 404
    assert alice.other_affiliate.email not in listing.content.decode()


def test_program_itself_is_not_scoped(alice, bob):
    # The tenant table is read before any scope exists (to enter one), so it must stay unscoped.
    assert set(Program.objects.values_list("slug", flat=True)) == {"alice", "bob"}
