"""A month close killed with SIGKILL between bonus batches, then run again, ends exactly like a clean close.

Both closes run `manage.py close_month` in a separate process on the test database (PostgreSQL). Two
identical programs: one is closed cleanly, the other is killed after its first committed batch of bonuses
and closed again; their results must be equal and every met goal must hold exactly one bonus.
"""

import os
import selectors
import signal
import subprocess
import sys
import time
from datetime import date
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection
from django_scopes import scopes_disabled

from affiliates.models import AffiliateStatus
from goals.models import BonusEntry, DailyStats, GoalProgress, GoalSettings, MonthClose, MonthlyReview
from tests.factories import AffiliateFactory, ProgramFactory
from tests.goals.builders import make_goal, put_stats
from tests.integration.conftest import database_url

pytestmark = pytest.mark.integration

MONTH = date(2026, 9, 1)
AFFILIATES = 7
BATCH = 2
PAUSE_SECONDS = 60


def build_program(slug: str):
    """A program whose affiliates met goals with every kind of bonus, and one that did not."""
    with scopes_disabled():
        program = ProgramFactory(slug=slug, name=slug.title())
        GoalSettings.objects.create(program=program, notify_affiliates=False, notify_managers=False)
        for number in range(AFFILIATES):
            affiliate = AffiliateFactory(
                program=program,
                name=f"partner {number}",
                email=f"p{number}@{slug}.test",
                status=AffiliateStatus.APPROVED,
            )
            put_stats(
                affiliate,
                date(2026, 9, 10),
                clicks=1000,
                conversions_approved=10 + number,
                commission_approved=Decimal("100.00") * (number + 1),
            )
            make_goal(
                affiliate, month=MONTH, kpi="conversions", target=Decimal(10), bonus_type="fixed", bonus_amount=50
            )
            make_goal(affiliate, month=MONTH, kpi="clicks", target=Decimal(900), bonus_type="percent", bonus_percent=10)
            make_goal(
                affiliate,
                month=MONTH,
                kpi="conversion_rate",
                target=Decimal(1),
                bonus_type="tiers",
                bonus_tiers=[{"progress": "100", "amount": "10"}, {"progress": "150", "amount": "30"}],
            )
            make_goal(affiliate, month=MONTH, kpi="revenue", target=Decimal(10), bonus_type="fixed", bonus_amount=99)
    return program


def command(slug: str) -> list[str]:
    return [
        sys.executable,
        "manage.py",
        "close_month",
        "--program",
        slug,
        "--month",
        f"{MONTH:%Y-%m}",
        "--batch-size",
        str(BATCH),
    ]


def environment(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url(connection.settings_dict),
        "CELERY_BROKER_URL": "",  # any task the close enqueued would run inline, never on the shared broker
        "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
    env.pop("EMAIL_HOST", None)
    return env


def run_close(slug: str) -> None:
    result = subprocess.run(
        command(slug), cwd=settings.BASE_DIR, env=environment(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def run_close_and_kill(slug: str) -> str:
    """Start a close that pauses after its first bonus batch, wait for the pause, and SIGKILL it."""
    process = subprocess.Popen(
        command(slug),
        cwd=settings.BASE_DIR,
        env=environment(GOALPOST_CLOSE_PAUSE_AFTER_BONUSES=str(BATCH)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    watcher = selectors.DefaultSelector()
    watcher.register(process.stdout, selectors.EVENT_READ)
    output, deadline = "", time.monotonic() + PAUSE_SECONDS
    try:
        while "paused after" not in output:
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail(f"The close did not pause (exit {process.poll()}):\n{output}")
            if watcher.select(timeout=0.5):
                line = process.stdout.readline()
                output += line
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL
    return output


def without_goal_ids(data: dict) -> dict:
    """Review data with the bonuses' goal ids left out: the two programs' goals have different ids."""
    bonuses = [{key: value for key, value in bonus.items() if key != "goal"} for bonus in data["bonuses"]]
    return {**data, "bonuses": bonuses}


def results(slug: str) -> dict:
    """Everything a close produces, keyed by names so two programs compare equal."""
    with scopes_disabled():
        close = MonthClose.objects.get(program__slug=slug, month=MONTH)
        bonuses = sorted(
            (entry.affiliate.name, entry.goal.kpi, entry.amount, entry.day, entry.explanation)
            for entry in BonusEntry.objects.filter(program__slug=slug).select_related("affiliate", "goal")
        )
        progress = sorted(
            (row.goal.affiliate.name, row.goal.kpi, row.value_confirmed, row.progress_confirmed, row.status_confirmed)
            for row in GoalProgress.objects.filter(program__slug=slug, final=True).select_related("goal__affiliate")
        )
        reviews = sorted(
            (review.affiliate.name, review.best_kpi, review.worst_kpi, repr(without_goal_ids(review.data)))
            for review in MonthlyReview.objects.filter(program__slug=slug).select_related("affiliate")
        )
        booked = sorted(
            (row.affiliate.name, row.day, row.bonuses)
            for row in DailyStats.objects.filter(program__slug=slug, bonuses__gt=0).select_related("affiliate")
        )
    return {"status": close.status, "bonuses": bonuses, "progress": progress, "reviews": reviews, "booked": booked}


def test_month_close_killed_mid_award_then_rerun_equals_a_clean_close(transactional_db):
    build_program("clean")
    build_program("killed")

    run_close("clean")
    output = run_close_and_kill("killed")

    assert f"paused after {BATCH} bonuses" in output
    with scopes_disabled():
        assert MonthClose.objects.get(program__slug="killed").status == MonthClose.Status.RUNNING
        assert BonusEntry.objects.filter(program__slug="killed").count() == BATCH  # the first batch committed
        assert not MonthlyReview.objects.filter(program__slug="killed").exists()

    run_close("killed")
    run_close("killed")  # and once more: a done close changes nothing

    clean, killed = results("clean"), results("killed")
    assert killed == clean
    assert killed["status"] == MonthClose.Status.DONE
    # Exactly one bonus per goal that earned one: fixed conversions (all met), percent clicks (all met),
    # tiers on conversion rate (all reach a tier); revenue was never met.
    assert len(killed["bonuses"]) == 3 * AFFILIATES
    with scopes_disabled():
        per_goal = BonusEntry.objects.filter(program__slug="killed").values_list("goal_id", flat=True)
        assert len(per_goal) == len(set(per_goal))
    assert [(name, kpi, amount) for name, kpi, amount, _day, _why in killed["bonuses"][:3]] == [
        ("partner 0", "clicks", Decimal("10.00")),
        ("partner 0", "conversion_rate", Decimal("10.00")),
        ("partner 0", "conversions", Decimal("50.00")),
    ]
