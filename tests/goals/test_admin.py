"""Goals in Django admin: every model is listed across programs; only settings and benchmarks are editable."""

from datetime import date
from decimal import Decimal

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone
from django_scopes import scopes_disabled

from affiliates.models import User
from goals import models
from tests.goals.builders import APRIL, MARCH, make_goal, put_stats

pytestmark = pytest.mark.django_db

GOAL_MODELS = [model for model in admin.site._registry if model._meta.app_label == "goals"]
EDITABLE = [models.GoalSettings, models.Benchmark]
READ_ONLY = [model for model in GOAL_MODELS if model not in EDITABLE]


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser(email="root@example.test", password="x")


@pytest.fixture
def rows(alice, bob):
    """A row of every goals model in both programs."""
    with scopes_disabled():
        for world in (alice, bob):
            program, affiliate, slug = world.program, world.affiliate, world.program.slug
            put_stats(affiliate, date(2026, 3, 4), clicks=40)
            goal = make_goal(affiliate, kpi="clicks", target=Decimal(30), month=MARCH, note=f"{slug} note")
            models.GoalProgress.objects.create(
                program=program, goal=goal, month=MARCH, kpi="clicks", status="met", value_provisional=40
            )
            models.GoalTransition.objects.create(program=program, goal=goal, status="met")
            bonus = models.BonusEntry.objects.create(
                program=program, affiliate=affiliate, goal=goal, month=MARCH, day=APRIL, amount=50, explanation="met"
            )
            models.ClawbackEntry.objects.create(
                program=program, affiliate=affiliate, bonus=bonus, month=APRIL, day=APRIL, amount=50, explanation="x"
            )
            models.FeeEntry.objects.create(program=program, affiliate=affiliate, day=APRIL, amount=10, note="placement")
            models.GoalSettings.objects.create(program=program, month_close_grace_days=3)
            models.Benchmark.objects.create(program=program, kpi="conversion_rate", average=3, optimal=9)
            models.MonthClose.objects.create(program=program, month=MARCH, status="done", closed_at=timezone.now())
            models.MonthlyReview.objects.create(program=program, affiliate=affiliate, month=MARCH, best_kpi="clicks")
            models.Notification.objects.create(program=program, user=world.manager, message=f"{slug} goal met")
            models.JobRun.objects.create(program=program, kind="rebuild")


def test_every_goals_model_is_registered():
    expected = {
        model
        for model in models.__dict__.values()
        if isinstance(model, type) and hasattr(model, "_meta") and model._meta.app_label == "goals"
    }
    assert {model for model in expected if not model._meta.abstract} == set(GOAL_MODELS)


@pytest.mark.parametrize("model", GOAL_MODELS, ids=lambda model: model.__name__)
def test_changelist_and_change_page_render_across_programs(client, superuser, rows, model):
    client.force_login(superuser)
    meta = model._meta
    changelist = client.get(reverse(f"admin:goals_{meta.model_name}_changelist"))
    with scopes_disabled():
        programs = set(model.objects.values_list("program__slug", flat=True))
        first = model.objects.order_by("pk").first()
    change = client.get(reverse(f"admin:goals_{meta.model_name}_change", args=[first.pk]))

    assert changelist.status_code == 200
    assert programs == {"alice", "bob"}
    assert change.status_code == 200


@pytest.mark.parametrize("model", READ_ONLY, ids=lambda model: model.__name__)
def test_goals_ledger_and_derived_rows_are_read_only(client, superuser, rows, model):
    client.force_login(superuser)
    meta = model._meta
    with scopes_disabled():
        row = model.objects.order_by("pk").first()
        before = model.objects.filter(pk=row.pk).values().get()
    change_url = reverse(f"admin:goals_{meta.model_name}_change", args=[row.pk])

    assert client.get(reverse(f"admin:goals_{meta.model_name}_add")).status_code == 403
    assert client.post(change_url, {}).status_code == 403
    assert (
        client.post(reverse(f"admin:goals_{meta.model_name}_delete", args=[row.pk]), {"post": "yes"}).status_code == 403
    )
    with scopes_disabled():
        assert model.objects.filter(pk=row.pk).values().get() == before
    assert 'name="_save"' not in client.get(change_url).content.decode()


def test_goal_search_and_status_filter(client, superuser, rows):
    client.force_login(superuser)

    found = client.get(reverse("admin:goals_goal_changelist"), {"q": "bob partner"})
    met = client.get(reverse("admin:goals_goal_changelist"), {"progress__status__exact": "met"})

    assert [goal.note for goal in found.context["cl"].result_list] == ["bob note"]
    assert sorted(goal.note for goal in met.context["cl"].result_list) == ["alice note", "bob note"]


def test_goal_settings_stay_editable(client, superuser, rows):
    client.force_login(superuser)
    with scopes_disabled():
        settings = models.GoalSettings.objects.order_by("pk").first()

    response = client.post(
        reverse("admin:goals_goalsettings_change", args=[settings.pk]),
        {"program": settings.program_id, "month_close_grace_days": "7", "notify_affiliates": "on"},
    )

    assert response.status_code == 302
    with scopes_disabled():
        settings.refresh_from_db()
    assert (settings.month_close_grace_days, settings.notify_affiliates, settings.notify_managers) == (7, True, False)
