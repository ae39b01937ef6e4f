"""The manager goal board for 10 and for 10,000 affiliates: the same number of queries, and p50 render time.

Target (issue 5): a constant query count, and a p50 of at most 50 ms at 10,000 affiliates (paginated, 50 rows
of three goals each), reported with the ratio to 10 affiliates. The board's summary (tab counts and totals over
every listed affiliate) is a request of its own that the page makes after its rows; it is reported beside the
board, and so is a live poll. Pages are rendered in-process through
Django's test client (middleware, tenancy, templates and all) against PostgreSQL when DATABASE_URL is set,
else a scratch SQLite file. Data is generated with bulk_create (affiliates, goals, GoalProgress) once per
size and reused by later runs; PostgreSQL's statistics are refreshed (ANALYZE) before measuring.

    .venv/bin/python bench/board.py
"""

import os
import platform
import statistics
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # not bench/: its click.py would shadow the click package Celery imports
SIZES = (10, 10_000)
GOALS = ("clicks", "conversions", "conversion_rate")
REQUESTS = 60  # timed requests per page and size, after WARMUP untimed ones
WARMUP = 5
TARGET_P50_MS = 50.0
BASELINE = "(for scale: affiliate list)"


def set_up() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DATABASE_URL", "sqlite:////tmp/goalpost-bench-board.sqlite3")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if os.environ["DATABASE_URL"].startswith(("postgres://", "postgresql://")):
        from bench.django_bench.common import create_database

        create_database(os.environ["DATABASE_URL"])  # a PostgreSQL bench database of its own, made once
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    # Not setup_test_environment(): it instruments every template render for the test client's
    # assertions, which costs more than the rendering itself.
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    settings.DEBUG = False  # as served: no query log kept in memory, no debug information in templates
    call_command("migrate", verbosity=0, interactive=False)


def program_of_size(size: int):
    """A program with ``size`` approved affiliates, three goals each this month with stored progress."""
    from django_scopes import scopes_disabled

    from affiliates.models import Affiliate, AffiliateStatus, Membership, Program, Role, Tier, User
    from goals.models import Goal, GoalProgress, GoalStatus
    from goals.periods import local_date, month_start

    slug = f"bench-board-{size}"
    with scopes_disabled():
        program, _created = Program.objects.get_or_create(
            slug=slug, defaults={"name": f"Bench board {size}", "timezone": "Europe/Warsaw"}
        )
        from django.utils import timezone

        month = month_start(local_date(program, timezone.now()))
        manager, _created = User.objects.get_or_create(email=f"manager@{slug}.test", defaults={"name": "Bench"})
        Membership.objects.get_or_create(program=program, user=manager, defaults={"role": Role.MANAGER})
        if Goal.objects.filter(program=program, month=month).count() == size * len(GOALS):
            analyze()
            return program, manager, month
        Goal.objects.filter(program=program).delete()
        Affiliate.objects.filter(program=program).delete()
        tiers = (Tier.STANDARD, Tier.SILVER, Tier.GOLD)
        affiliates = Affiliate.objects.bulk_create(
            [
                Affiliate(
                    program=program,
                    name=f"Partner {number:05d}",
                    email=f"partner{number}@{slug}.test",
                    status=AffiliateStatus.APPROVED,
                    tier=tiers[number % 3],
                )
                for number in range(size)
            ],
            batch_size=1000,
        )
        affiliates = list(Affiliate.objects.filter(program=program).order_by("pk"))
        goals = Goal.objects.bulk_create(
            [
                Goal(program=program, affiliate=affiliate, month=month, kpi=kpi, target=Decimal(target))
                for affiliate in affiliates
                for kpi, target in zip(GOALS, (1000, 50, 5), strict=True)
            ],
            batch_size=1000,
        )
        goals = list(Goal.objects.filter(program=program, month=month).order_by("pk"))
        statuses = [GoalStatus.MET, GoalStatus.ON_TRACK, GoalStatus.AT_RISK, GoalStatus.BEHIND]
        now = timezone.now() - timedelta(hours=1)
        GoalProgress.objects.bulk_create(
            [
                GoalProgress(
                    program=program,
                    goal=goal,
                    month=goal.month,
                    kpi=goal.kpi,
                    value_provisional=goal.target * Decimal(index % 120) / 100,
                    value_confirmed=goal.target * Decimal(index % 90) / 100,
                    progress_provisional=Decimal(index % 120),
                    progress_confirmed=Decimal(index % 90),
                    volume=index % 300,
                    elapsed=Decimal("0.5"),
                    expected_now=goal.target / 2,
                    projection=goal.target * Decimal(index % 120) / 50,
                    status=statuses[index % 4],
                    status_confirmed=statuses[(index + 1) % 4],
                    updated_at=now,
                )
                for index, goal in enumerate(goals)
            ],
            batch_size=1000,
        )
    analyze()
    return program, manager, month


def analyze() -> None:
    """Give PostgreSQL's planner the statistics autovacuum would gather after a bulk load.

    Without them it guesses one row per table and picks plans for tiny tables: a goal-column sort then ran for
    minutes. (This machine's PostgreSQL runs with autovacuum off.)
    """
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE affiliates_affiliate, goals_goal, goals_goalprogress")


def measure(client, url: str, params: dict, headers: dict | None = None) -> tuple[list[float], int, int]:
    """Render times in ms of REQUESTS requests, the queries of one request, and the status code."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(WARMUP):
        client.get(url, params, headers=headers or {})
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, params, headers=headers or {})
    count = len(queries)  # now: every request clears the connection's query log
    timings = []
    for _ in range(REQUESTS):
        start = time.perf_counter()
        client.get(url, params, headers=headers or {})
        timings.append((time.perf_counter() - start) * 1000)
    return timings, count, response.status_code


def machine() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
        else:
            cursor.execute("SELECT sqlite_version()")
        version = cursor.fetchone()[0]
    return (
        f"{platform.node()} · {platform.platform()} · {platform.processor() or platform.machine()} · "
        f"{os.cpu_count()} CPUs · Python {platform.python_version()} · {connection.vendor} {version}"
    )


def main() -> int:
    set_up()
    from django.test import Client
    from django_scopes import scopes_disabled

    from affiliates.models import Affiliate

    pages = {
        "board, sorted by name": ({}, False),
        "board, sorted by a goal column": ({"sort": "-goal:conversion_rate"}, False),
        "board, at-risk view, gold tier": ({"view": "at_risk", "tier": "gold"}, False),
        "its summary (counts, totals)": ({"part": "summary"}, True),
        "live poll, nothing changed": ({"since": int((time.time() - 1800) * 1_000_000), "ids": "page"}, True),
    }
    print(f"machine: {machine()}")
    print(f"{REQUESTS} timed requests per page after {WARMUP} warm-up ones; 50 rows × {len(GOALS)} goals a page\n")
    results: dict[tuple[str, int], tuple[float, int]] = {}
    for size in SIZES:
        started = time.perf_counter()
        program, manager, month = program_of_size(size)
        print(f"{size:>6} affiliates ready in {time.perf_counter() - started:.1f} s")
        client = Client()
        client.force_login(manager)
        url = f"/p/{program.slug}/goals/{month:%Y-%m}/"
        with scopes_disabled():
            shown = Affiliate.objects.filter(program=program).order_by("name", "pk").values_list("pk", flat=True)
            first_page = ",".join(str(pk) for pk in shown[:50])
        for name, (params, htmx) in pages.items():
            params = {**params, "ids": first_page} if "ids" in params else params
            timings, queries, status = measure(client, url, params, {"HX-Request": "true"} if htmx else None)
            # A poll when nothing changed in the last half hour answers 204: the queries and no rows.
            assert status == (204 if "since" in params else 200), (name, status)
            results[(name, size)] = (statistics.median(timings), queries)
        # For scale on this machine: another list page of the same app, 25 plain rows, no goals.
        timings, queries, _status = measure(client, f"/p/{program.slug}/affiliates/", {})
        results[(BASELINE, size)] = (statistics.median(timings), queries)

    print(f"\n{'page':<34}{'affiliates':>11}{'queries':>9}{'p50 ms':>9}{'ratio':>8}")
    failed = []
    for name in [*pages, BASELINE]:
        small_ms, small_queries = results[(name, SIZES[0])]
        for size in SIZES:
            p50, queries = results[(name, size)]
            print(f"{name:<34}{size:>11,}{queries:>9}{p50:>9.1f}{p50 / small_ms:>7.2f}x")
            if queries != small_queries:
                failed.append(f"{name}: {queries} queries at {size:,} vs {small_queries} at {SIZES[0]}")
        if name.startswith("board") and results[(name, SIZES[-1])][0] > TARGET_P50_MS:
            failed.append(f"{name}: p50 {results[(name, SIZES[-1])][0]:.1f} ms > {TARGET_P50_MS:.0f} ms")
    print()
    for failure in failed:
        print(f"FAILED {failure}")
    if not failed:
        print(f"OK: constant query counts; board p50 at {SIZES[-1]:,} affiliates within {TARGET_P50_MS:.0f} ms")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
