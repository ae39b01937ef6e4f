"""Tracking in Django admin: every model is listed across programs, and raw events and the audit trail are
read-only there (they are the truth every number is rebuilt from)."""

from decimal import Decimal

import pytest
from django.contrib import admin
from django.urls import reverse
from django_scopes import scopes_disabled

from affiliates.models import User
from tests.factories import (
    ClickFactory,
    CommissionRuleFactory,
    ConversionEventFactory,
    ConversionFactory,
    LinkFactory,
    PostbackAttemptFactory,
)
from tracking import models
from tracking.links import tracking_settings

pytestmark = pytest.mark.django_db

TRACKING_MODELS = [model for model in admin.site._registry if model._meta.app_label == "tracking"]
READ_ONLY = [
    models.Click,
    models.Impression,
    models.Conversion,
    models.ConversionEvent,
    models.PostbackAttempt,
    models.CustomerLink,
    models.StatsDirtyKey,
]


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser(email="root@example.test", password="x")


@pytest.fixture
def rows(alice, bob):
    """A row of every tracking model in both programs."""
    made = {}
    with scopes_disabled():
        for world in (alice, bob):
            slug = world.program.slug
            link = LinkFactory(program=world.program, affiliate=world.affiliate, name=f"{slug} link")
            click = ClickFactory(program=world.program, link=link, sub1=f"{slug}-sub")
            models.Impression.objects.create(
                program=world.program, link=link, affiliate=link.affiliate, offer=link.offer
            )
            conversion = ConversionFactory(
                program=world.program, order_id=f"{slug}-order", affiliate=world.affiliate, click=click
            )
            ConversionEventFactory(conversion=conversion, reason="Received by postback.")
            PostbackAttemptFactory(program=world.program, params={"order_id": f"{slug}-refused"})
            CommissionRuleFactory(plan__program=world.program)
            models.Cap.objects.create(program=world.program, offer=link.offer, metric="payout", period="day", limit=5)
            models.Coupon.objects.create(program=world.program, code=f"{slug.upper()}5", affiliate=world.affiliate)
            models.CurrencyRate.objects.create(
                program=world.program, currency="USD", day="2026-03-01", rate=Decimal("0.9")
            )
            models.CustomerLink.objects.create(
                program=world.program,
                customer_id=f"{slug}-customer",
                affiliate=world.affiliate,
                first_conversion_at=conversion.created_at,
            )
            models.StatsDirtyKey.objects.get_or_create(
                program=world.program, affiliate=world.affiliate, day=conversion.created_at.date()
            )
            tracking_settings(world.program)
            made[slug] = {"click": click, "conversion": conversion}
    return made


def test_every_tracking_model_is_registered():
    registered = set(TRACKING_MODELS)
    expected = {model for model in models.__dict__.values() if isinstance(model, type) and hasattr(model, "_meta")}
    expected = {model for model in expected if model._meta.app_label == "tracking" and not model._meta.abstract}
    assert expected <= registered


@pytest.mark.parametrize("model", TRACKING_MODELS, ids=lambda model: model.__name__)
def test_changelist_and_change_page_render_across_programs(client, superuser, rows, model):
    client.force_login(superuser)
    meta = model._meta
    changelist = client.get(reverse(f"admin:tracking_{meta.model_name}_changelist"))
    assert changelist.status_code == 200
    with scopes_disabled():
        programs = set(model.objects.values_list("program__slug", flat=True))
        first = model.objects.order_by("pk").first()
    assert programs == {"alice", "bob"}
    change = client.get(reverse(f"admin:tracking_{meta.model_name}_change", args=[first.pk]))
    assert change.status_code == 200


@pytest.mark.parametrize("model", READ_ONLY, ids=lambda model: model.__name__)
def test_raw_events_and_audit_rows_are_read_only(client, superuser, rows, model):
    client.force_login(superuser)
    meta = model._meta
    with scopes_disabled():
        row = model.objects.order_by("pk").first()
        before = model.objects.filter(pk=row.pk).values().get()
    assert client.get(reverse(f"admin:tracking_{meta.model_name}_add")).status_code == 403
    change_url = reverse(f"admin:tracking_{meta.model_name}_change", args=[row.pk])
    assert client.post(change_url, {}).status_code == 403
    delete_url = reverse(f"admin:tracking_{meta.model_name}_delete", args=[row.pk])
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    with scopes_disabled():
        assert model.objects.filter(pk=row.pk).values().get() == before
    assert "Save" not in client.get(change_url).content.decode()


def test_click_search_finds_sub_ids_and_conversion_search_finds_orders(client, superuser, rows):
    client.force_login(superuser)
    clicks = client.get(reverse("admin:tracking_click_changelist"), {"q": "bob-sub"}).content.decode()
    assert str(rows["bob"]["click"].click_id) in clicks
    assert str(rows["alice"]["click"].click_id) not in clicks
    conversions = client.get(reverse("admin:tracking_conversion_changelist"), {"q": "alice-order"}).content.decode()
    assert "alice-order" in conversions
    assert "bob-order" not in conversions


def test_offers_stay_editable_in_admin(client, superuser, rows):
    client.force_login(superuser)
    with scopes_disabled():
        offer = models.Offer.objects.order_by("pk").first()
    page = client.get(reverse("admin:tracking_offer_change", args=[offer.pk])).content.decode()
    assert 'name="destination_url"' in page


@pytest.fixture
def referenced(rows):
    """An affiliate, offer, link, plan and rule that clicks and conversions refer to."""
    with scopes_disabled():
        rule = models.CommissionRule.objects.order_by("pk").first()
        link = models.Link.objects.order_by("pk").first()
    return [link.affiliate, link.offer, link, rule.plan, rule]


def test_rows_that_events_refer_to_cannot_be_deleted_in_admin(client, superuser, referenced):
    client.force_login(superuser)
    for row in referenced:
        meta = row._meta
        delete_url = reverse(f"admin:{meta.app_label}_{meta.model_name}_delete", args=[row.pk])
        changelist = client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")).content.decode()

        assert client.post(delete_url, {"post": "yes"}).status_code == 403
        assert 'value="delete_selected"' not in changelist
        with scopes_disabled():
            assert type(row).objects.filter(pk=row.pk).exists()
