"""A rollup worker killed with SIGKILL in the middle of a recompute loses nothing: after a restart, DailyStats
(and goal progress) equal a from-scratch rebuild. Needs PostgreSQL: the kill must hit an open transaction."""

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection
from django_scopes import scopes_disabled

from affiliates.models import AffiliateStatus
from goals import rollups
from goals.models import DailyStats, Goal, GoalProgress
from tests.factories import AffiliateFactory, ProgramFactory
from tests.integration.conftest import database_url
from tracking.dirty import mark_events_dirty
from tracking.links import create_link, create_offer
from tracking.models import Click, Conversion, StatsDirtyKey

pytestmark = pytest.mark.integration

AFFILIATES = 40
DAYS = 25
MARCH = date(2026, 3, 1)
KILL_WAIT_SECONDS = 60

# Runs process_dirty_keys in a fresh interpreter; after the first upsert statement of the program given in argv
# it says so and sleeps inside the open transaction, waiting for the SIGKILL.
WORKER = textwrap.dedent(
    """
    import sys, time
    import django
    django.setup()
    from goals import rollups

    victim = int(sys.argv[1])
    write = rollups._write

    def write_then_hang(scope):
        written = write(scope)
        if scope.program.pk == victim:
            print("WROTE", written, flush=True)
            time.sleep(600)
        return written

    rollups._write = write_then_hang
    rollups.process_dirty_keys(limit=100_000)
    print("FINISHED", flush=True)
    """
)


def busy_program(slug: str):
    """A program with AFFILIATES affiliates, clicks and conversions over DAYS days of March, every cell marked."""
    with scopes_disabled():
        program = ProgramFactory(slug=slug, timezone="Europe/Warsaw")
        offer = create_offer(program=program, name=f"{slug} offer", destination_url=f"https://{slug}.test/")
        affiliates = AffiliateFactory.create_batch(AFFILIATES, program=program, status=AffiliateStatus.APPROVED)
        links = [create_link(program=program, offer=offer, affiliate=affiliate) for affiliate in affiliates]
        clicks, conversions = [], []
        for index, link in enumerate(links):
            for day in range(DAYS):
                moment = datetime(2026, 3, 1, 6, tzinfo=UTC) + timedelta(days=day, hours=index % 17)
                clicks += [
                    Click(program=program, link=link, affiliate_id=link.affiliate_id, offer=offer, created_at=moment)
                    for _ in range(1 + (index + day) % 3)
                ]
                if (index + day) % 4 == 0:
                    conversions.append(
                        Conversion(
                            program=program,
                            kind="sale",
                            order_id=uuid.uuid4().hex,
                            status="approved" if day % 2 else "pending",
                            created_at=moment + timedelta(minutes=5),
                            amount=Decimal("25.00"),
                            revenue=Decimal("25.00"),
                            commission=Decimal("2.50"),
                            currency="EUR",
                            customer_id=f"{slug}-{index}-{day % 5}",
                            affiliate_id=link.affiliate_id,
                            source="api",
                        )
                    )
        Click.objects.bulk_create(clicks, batch_size=2000)
        Conversion.objects.bulk_create(conversions, batch_size=2000)
        mark_events_dirty(
            events=[(program.pk, click.affiliate_id, click.created_at) for click in clicks],
            timezones={program.pk: program.timezone},
        )
        for affiliate in affiliates[:10]:
            Goal.objects.create(program=program, affiliate=affiliate, month=MARCH, kpi="clicks", target=Decimal(50))
            Goal.objects.create(program=program, affiliate=affiliate, month=MARCH, kpi="revenue", target=Decimal(100))
    return program


def snapshot(program) -> tuple[dict, dict]:
    with scopes_disabled():
        stats = rollups.stored_stats(program=program, first=MARCH, end=date(2026, 4, 1))
        progress = {
            row["goal_id"]: row
            for row in GoalProgress.objects.filter(program=program).values(
                "goal_id", "value_provisional", "value_confirmed", "progress_provisional", "status"
            )
        }
    return stats, progress


def dirty_count(program) -> int:
    with scopes_disabled():
        return StatsDirtyKey.objects.filter(program=program).count()


@pytest.fixture
def worker_env(transactional_db) -> dict:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url(connection.settings_dict),
        "PYTHONUNBUFFERED": "1",
    }


def test_sigkill_mid_recompute_then_restart_equals_a_rebuild(worker_env):
    first, victim = busy_program("first"), busy_program("victim")
    cells = dirty_count(victim)
    assert cells == AFFILIATES * DAYS

    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(victim.pk)],
        cwd=settings.BASE_DIR,
        env=worker_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = worker.stdout.readline()  # blocks until the victim's rows are written, uncommitted
        assert line.startswith("WROTE"), line + worker.stdout.read()
        assert int(line.split()[1]) == cells
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(KILL_WAIT_SECONDS)
    assert worker.returncode == -signal.SIGKILL

    # The first program's transaction had committed; the victim's died with the process: nothing half-done.
    assert dirty_count(first) == 0
    assert dirty_count(victim) == cells
    with scopes_disabled():
        assert DailyStats.objects.filter(program=victim).count() == 0
        assert DailyStats.objects.filter(program=first).count() == AFFILIATES * DAYS

    # Restart: the next run of the loop finds the keys still dirty.
    assert rollups.process_dirty_keys() == cells
    after_restart = {program.slug: snapshot(program) for program in (first, victim)}

    # From scratch: wipe the caches and rebuild March from the raw events.
    with scopes_disabled():
        DailyStats.objects.filter(program__in=[first, victim]).delete()
        GoalProgress.objects.filter(program__in=[first, victim]).delete()
        for program in (first, victim):
            rollups.rebuild_stats(program=program, first_month=MARCH, last_month=MARCH)
    rebuilt = {program.slug: snapshot(program) for program in (first, victim)}

    assert after_restart == rebuilt
    assert len(after_restart["victim"][0]) == cells
    if rollups._goal_progress_refresher() is not None:
        assert len(after_restart["victim"][1]) == 20  # every goal's progress was written again
