"""Rollup costs on a generated program: 10,000 affiliates, 2,000,000 clicks (and conversions) over one month.

(a) the full rebuild of the month (manage.py rebuild_stats: every counter, written) vs one hand-written SQL
    aggregate over the same rows (clicks and conversions grouped by affiliate and local day, nothing
    written): target ≤ 1.5×.
(b) the incremental update after 20,000 new clicks (mark + process_dirty_keys) vs the full rebuild: ≤ 0.15×.
(c) 1,000 events on one affiliate within one second, with the loop ticking every second as beat makes it:
    ≤ 2 recomputes of that affiliate's cell.

Runs on its own PostgreSQL database (ROLLUP_BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/
goalpost_bench_rollups: not the other benches' goalpost_bench, whose events they truncate), created and
migrated on first use; the generated data is kept between runs (--fresh regenerates it). Timings are
medians of alternated runs, so both sides of a ratio see the same machine load.
"""

import argparse
import os
import platform
import statistics
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # not bench/: its click.py would shadow the click package Celery imports
BENCH_URL = os.environ.get("ROLLUP_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/goalpost_bench_rollups")
os.environ["DATABASE_URL"] = BENCH_URL
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.pop("CELERY_BROKER_URL", None)  # everything runs in this process

import psycopg2  # noqa: E402

AFFILIATES = 10_000
CLICKS = 2_000_000
CONVERSION_SHARE = 0.01
NEW_CLICKS = 20_000
BURST = 1_000
SLUG = "bench-rollups"
ZONE = "Europe/Warsaw"
MONTH = date(2026, 3, 1)
END = date(2026, 4, 1)
START_UTC = datetime(2026, 2, 28, 23, 0, tzinfo=UTC)  # 1 March 00:00 in Warsaw
SPAN_SECONDS = 30 * 86400 + 23 * 3600  # to 31 March 23:00 local, inside the month on both sides of DST


def ensure_database(fresh: bool) -> None:
    parts = urlsplit(BENCH_URL)
    name = parts.path.lstrip("/")
    admin = psycopg2.connect(urlunsplit(parts._replace(path="/postgres")))
    admin.autocommit = True
    with admin.cursor() as cursor:
        if fresh:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()


def setup_django() -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def timed(function, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - started, result


def generate() -> int:
    """Program, offer, 10,000 affiliates with a link each, 2M clicks, ~20k conversions: all in SQL."""
    from django.db import connection, transaction

    from affiliates.models import Program

    existing = Program.objects.filter(slug=SLUG).first()
    if existing is not None:
        return existing.pk  # (main checks the click count and regenerates when it is off)
    print(f"generating {AFFILIATES:,} affiliates and {CLICKS:,} clicks (once; kept for later runs) …", flush=True)
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        program = Program.objects.create(name="Bench rollups", slug=SLUG, timezone=ZONE, currency="EUR")
        cursor.execute(
            "INSERT INTO tracking_offer (program_id, name, destination_url, click_id_param, allowed_domains, "
            "cookie_window_days, fallback_url, status, created_at, updated_at) VALUES "
            "(%s, 'bench', 'https://bench.test/', 'click_id', '', 30, '', 'active', now(), now()) RETURNING id",
            [program.pk],
        )
        offer_id = cursor.fetchone()[0]
        cursor.execute(
            "INSERT INTO affiliates_affiliate (program_id, name, email, website, traffic_sources, country, "
            "payout_email, status, status_reason, tier, login_ip_hash, created_at, updated_at) "
            "SELECT %s, 'affiliate ' || n, 'a' || n || '@bench.test', '', '', 'PL', '', 'approved', '', 'standard', "
            "'', now(), now() FROM generate_series(1, %s) n",
            [program.pk, AFFILIATES],
        )
        cursor.execute(
            "CREATE TEMP TABLE bench_links AS SELECT row_number() OVER (ORDER BY id) AS n, id AS affiliate_id "
            "FROM affiliates_affiliate WHERE program_id = %s",
            [program.pk],
        )
        cursor.execute(
            "INSERT INTO tracking_link (program_id, offer_id, affiliate_id, code, name, landing_url, status, "
            "created_at) SELECT %s, %s, affiliate_id, 'b' || n, '', '', 'active', now() FROM bench_links",
            [program.pk, offer_id],
        )
        cursor.execute(
            "ALTER TABLE bench_links ADD COLUMN link_id bigint; UPDATE bench_links b SET link_id = l.id "
            "FROM tracking_link l WHERE l.affiliate_id = b.affiliate_id; CREATE INDEX ON bench_links (n)"
        )
        # Affiliate n is drawn log-uniformly (Zipf, s = 1): a few big partners, a long tail of small ones. Rows
        # go in in time order, as an append-only click table fills (a day's clicks sit on neighbouring pages).
        # The draws happen in a subquery: a volatile random() in a join condition would be drawn per pair.
        cursor.execute(
            "INSERT INTO tracking_click (program_id, click_id, link_id, affiliate_id, offer_id, created_at, sub1, "
            "sub2, sub3, sub4, sub5, referrer, user_agent, ip_hash, visitor_hash, country, source, is_unique, "
            "is_bot) SELECT %s, gen_random_uuid(), b.link_id, b.affiliate_id, %s, r.at, '', '', '', '', '', '', "
            "'', '', '', 'PL', 'direct', random() < 0.8, random() < 0.03 "
            "FROM (SELECT %s::timestamptz + random() * %s * interval '1 second' AS at, "
            "1 + floor(power(%s, random()))::int %% %s AS n FROM generate_series(1, %s)) r "
            "JOIN bench_links b ON b.n = r.n ORDER BY r.at",
            [program.pk, offer_id, START_UTC, SPAN_SECONDS, AFFILIATES, AFFILIATES, CLICKS],
        )
        cursor.execute(
            "INSERT INTO tracking_conversion (program_id, kind, order_id, status, status_reason, created_at, "
            "status_changed_at, amount, currency, exchange_rate, revenue, commission, commission_explanation, "
            "customer_id, is_new_customer, renewal_number, coupon, click_id, affiliate_id, offer_id, link_id, "
            "attributed_by, source, ip_hash, fraud_flags, in_review) "
            "SELECT c.program_id, CASE WHEN r < 0.7 THEN 'sale' WHEN r < 0.95 THEN 'lead' ELSE 'engagement' END, "
            "'o' || c.id, CASE WHEN r2 < 0.6 THEN 'pending' WHEN r2 < 0.95 THEN 'approved' ELSE 'rejected' END, "
            "'', c.created_at + interval '10 minutes', now(), round((r * 200)::numeric, 2), 'EUR', 1, "
            "round((r * 200)::numeric, 2), round((r * 20)::numeric, 2), '', "
            "CASE WHEN r < 0.7 THEN 'cust' || floor(r2 * 15000)::int ELSE '' END, false, 0, '', c.click_id, "
            "c.affiliate_id, c.offer_id, c.link_id, 'click', 'postback', '', '[]', false "
            "FROM (SELECT *, random() AS r, random() AS r2 FROM tracking_click WHERE program_id = %s "
            "AND random() < %s) c WHERE c.created_at < %s ORDER BY c.created_at",
            [program.pk, CONVERSION_SHARE, START_UTC + timedelta(seconds=SPAN_SECONDS - 600)],
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    print(f"generated in {time.perf_counter() - started:.0f} s", flush=True)
    return program.pk


def hand_written_aggregate(program_id: int) -> int:
    """The floor: clicks and conversions grouped by affiliate and local day in one statement, nothing written."""
    from django.db import connection

    sql = """
        SELECT count(*), sum(a), sum(b), sum(c), sum(d), sum(e) FROM (
            SELECT affiliate_id, (created_at AT TIME ZONE %(zone)s)::date AS day,
                count(*) FILTER (WHERE NOT is_bot) AS a, count(*) FILTER (WHERE NOT is_bot AND is_unique) AS b,
                count(*) FILTER (WHERE is_bot) AS c, 0 AS d, 0 AS e
            FROM tracking_click WHERE program_id = %(program)s AND created_at >= %(start)s AND created_at < %(end)s
            GROUP BY 1, 2
            UNION ALL
            SELECT affiliate_id, (created_at AT TIME ZONE %(zone)s)::date,
                0, 0, 0, count(*) FILTER (WHERE status = 'pending'), sum(revenue) FILTER (WHERE status = 'approved')
            FROM tracking_conversion WHERE program_id = %(program)s AND affiliate_id IS NOT NULL
                AND status IN ('pending', 'approved') AND created_at >= %(start)s AND created_at < %(end)s
            GROUP BY 1, 2
        ) cells
    """
    params = {"zone": ZONE, "program": program_id, "start": START_UTC, "end": START_UTC + timedelta(days=31)}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def vacuum() -> None:
    """What autovacuum does between the runs in production: PostgreSQL on this machine has it off, and a
    deleted month's dead DailyStats rows (1.4 million after a few runs) would slow every later rebuild's
    index scans, and stale statistics would mislead its plans."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("goals_dailystats", "tracking_click", "tracking_conversion", "tracking_statsdirtykey"):
            cursor.execute(f"VACUUM ANALYZE {table}")


def full_rebuild(program) -> int:
    from goals.rollups import rebuild_stats

    job = rebuild_stats(program=program, first_month=MONTH, last_month=MONTH)
    return job.total


def add_clicks(program_id: int, count: int, *, day: date) -> float:
    """Insert ``count`` clicks on local ``day`` and mark their cells, as the drain does (5,000 per transaction);
    returns the seconds spent marking."""
    from django.db import connection, transaction

    from tracking.dirty import mark_keys_dirty

    start = datetime(day.year, day.month, day.day, 8, tzinfo=UTC)
    marking = 0.0
    for offset in range(0, count, 5000):
        batch = min(5000, count - offset)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO tracking_click (program_id, click_id, link_id, affiliate_id, offer_id, created_at, "
                "sub1, sub2, sub3, sub4, sub5, referrer, user_agent, ip_hash, visitor_hash, country, source, "
                "is_unique, is_bot) SELECT %(program)s, gen_random_uuid(), b.link_id, b.affiliate_id, l.offer_id, "
                "r.at, 'added', '', '', '', '', '', '', '', '', 'PL', 'direct', true, false "
                "FROM (SELECT %(start)s::timestamptz + random() * interval '10 hours' AS at, "
                "1 + floor(power(%(n)s, random()))::int %% %(n)s AS n FROM generate_series(1, %(batch)s)) r "
                "JOIN (SELECT row_number() OVER (ORDER BY a.id) AS n, a.id AS affiliate_id, "
                "(SELECT min(id) FROM tracking_link WHERE affiliate_id = a.id) AS link_id "
                "FROM affiliates_affiliate a WHERE a.program_id = %(program)s) b ON b.n = r.n "
                "JOIN tracking_link l ON l.id = b.link_id ORDER BY r.at RETURNING affiliate_id, created_at",
                {"program": program_id, "start": start, "batch": batch, "n": AFFILIATES},
            )
            rows = cursor.fetchall()
            began = time.perf_counter()
            mark_keys_dirty(program_id=program_id, keys={(affiliate, day) for affiliate, _moment in rows})
            marking += time.perf_counter() - began
    return marking


def burst_on_one_affiliate(program) -> tuple[int, float, int]:
    """1,000 single-click transactions on one affiliate spread over one second while the loop ticks every
    second; returns (recomputes of its cell, seconds the burst took, clicks the cell ends with)."""
    from django.db import connection, transaction
    from django_scopes import scopes_disabled

    from affiliates.models import Affiliate
    from goals import rollups
    from goals.models import DailyStats
    from tracking.dirty import mark_keys_dirty
    from tracking.models import Link

    day = date(2026, 3, 30)
    with scopes_disabled():
        affiliate = Affiliate.objects.filter(program=program).order_by("pk").first()
        link = Link.objects.filter(affiliate=affiliate).first()
    key = (affiliate.pk, day)
    recomputes = []
    original = rollups.recompute_days

    def counted(*, program, keys):
        keys = list(keys)
        if key in keys:
            recomputes.append(time.perf_counter())
        return original(program=program, keys=keys)

    rollups.recompute_days = counted
    stop = threading.Event()

    def beat():  # process_rollups_task every second, as CELERY_BEAT_SCHEDULE sends it
        try:
            while not stop.is_set():
                rollups.process_dirty_keys()
                stop.wait(1.0)
        finally:
            connection.close()

    ticker = threading.Thread(target=beat)
    with connection.cursor() as cursor:
        # A thousand separate transactions in a second: this session does not wait for each commit's fsync
        # (the loop's sessions do). What is measured is how many recomputes the burst causes, not disk latency.
        cursor.execute("SET synchronous_commit TO off")
    try:
        rollups.process_dirty_keys()  # start from an empty backlog
        ticker.start()
        time.sleep(0.5)  # the burst starts between two ticks
        started = time.perf_counter()
        for index in range(BURST):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO tracking_click (program_id, click_id, link_id, affiliate_id, offer_id, created_at, "
                    "sub1, sub2, sub3, sub4, sub5, referrer, user_agent, ip_hash, visitor_hash, country, source, "
                    "is_unique, is_bot) VALUES (%s, gen_random_uuid(), %s, %s, %s, %s, 'added', '', '', '', '', "
                    "'', '', '', '', 'PL', 'direct', true, false)",
                    [program.pk, link.pk, affiliate.pk, link.offer_id, datetime(2026, 3, 30, 12, tzinfo=UTC)],
                )
                mark_keys_dirty(program_id=program.pk, keys=[key])
            pause = started + (index + 1) / BURST - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        took = time.perf_counter() - started
        time.sleep(2.5)  # let the loop pick up the tail
    finally:
        stop.set()
        ticker.join()
        rollups.recompute_days = original
    with scopes_disabled():
        clicks = DailyStats.objects.get(program=program, affiliate=affiliate, day=day).clicks
        raw = rollups.fresh_stats(program=program, first=day, end=day + timedelta(days=1))[key]["clicks"]
    assert clicks == raw, (clicks, raw)
    return len(recomputes), took, clicks


def machine() -> str:
    from django.db import connection

    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    memory = next(
        (line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")),
        "?",
    )
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
    return (
        f"{model}, {os.cpu_count()} cores, {int(memory) // 1024 // 1024} GiB; PostgreSQL {version}; "
        f"Python {platform.python_version()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh", action="store_true", help="drop and regenerate the bench database")
    parser.add_argument("--repeat", type=int, default=3, help="alternated runs per timing (median reported)")
    arguments = parser.parse_args()

    ensure_database(arguments.fresh)
    setup_django()
    from django.db import connection
    from django_scopes import scopes_disabled

    from affiliates.models import Program
    from goals import rollups
    from goals.models import DailyStats
    from tracking.models import StatsDirtyKey

    program_id = generate()
    program = Program.objects.get(pk=program_id)
    with scopes_disabled(), connection.cursor() as cursor:
        # Back to the generated data: the clicks earlier runs added (sub1 = 'added') go, and so do their marks.
        cursor.execute("DELETE FROM tracking_click WHERE program_id = %s AND sub1 = 'added'", [program_id])
        if rollups.Click.objects.filter(program=program).count() < CLICKS:
            sys.exit("The bench database holds fewer clicks than generated; run again with --fresh.")
        StatsDirtyKey.objects.filter(program=program).delete()
        clicks = rollups.Click.objects.filter(program=program).count()
        conversions = rollups.Conversion.objects.filter(program=program).count()

    with scopes_disabled():
        full_rebuild(program)  # warm-up, and the rows later rebuilds compare against
        vacuum()
        cells = DailyStats.objects.filter(program=program).count()
        aggregate, rebuild, from_empty = [], [], []
        for _ in range(arguments.repeat):
            aggregate.append(timed(hand_written_aggregate, program_id)[0])
            rebuild.append(timed(full_rebuild, program)[0])
            with connection.cursor() as cursor:
                cursor.execute("DELETE FROM goals_dailystats WHERE program_id = %s", [program_id])
            vacuum()
            from_empty.append(timed(full_rebuild, program)[0])
            vacuum()

        # (b) 20,000 new clicks on the month's last day, drained and marked; then the loop works them off.
        marking = add_clicks(program_id, NEW_CLICKS, day=date(2026, 3, 31))
        keys = StatsDirtyKey.objects.filter(program=program).values("affiliate_id", "day").distinct().count()
        incremental, _processed = timed(rollups.drain_dirty_keys, seconds=600)
        assert rollups.find_drift(program=program, first=date(2026, 3, 31), end=END)[0] == []

        # (c) a burst on one affiliate while beat ticks.
        recomputes, burst_seconds, burst_clicks = burst_on_one_affiliate(program)

    full = statistics.median(rebuild)
    floor = statistics.median(aggregate)
    print()
    print(f"machine: {machine()}")
    print(
        f"data: {AFFILIATES:,} affiliates, {clicks:,} clicks, {conversions:,} conversions in March 2026 ({ZONE}); "
        f"{cells:,} DailyStats rows; median of {arguments.repeat} alternated runs"
    )
    print()
    print("(a) full rebuild of the month vs one hand-written SQL aggregate over the same rows (target ≤ 1.5×)")
    print(f"    hand-written aggregate      {floor:7.2f} s   1.00×")
    print(f"    rebuild_stats (rows exist)  {full:7.2f} s   {full / floor:.2f}×")
    empty = statistics.median(from_empty)
    print(f"    rebuild_stats (empty table) {empty:7.2f} s   {empty / floor:.2f}×")
    print()
    print(f"(b) incremental update after {NEW_CLICKS:,} new clicks vs the full rebuild (target ≤ 0.15×)")
    print(f"    full rebuild                {full:7.2f} s   1.00×")
    print(f"    process_dirty_keys          {incremental:7.2f} s   {incremental / full:.3f}×   ({keys:,} cells)")
    print(f"    marking, in the drain       {marking:7.2f} s   {marking / full:.3f}×")
    print()
    print(f"(c) {BURST:,} events on one affiliate in {burst_seconds:.2f} s, the loop ticking every second (target ≤ 2)")
    print(f"    recomputes of its cell      {recomputes}   (cell ends with {burst_clicks:,} clicks = raw count)")


if __name__ == "__main__":
    main()
