"""Postback ingest under gunicorn against the bare Django view of bench/click.py, and SQL per new conversion.

    python bench/postback.py         (BENCH_SECONDS=10, BENCH_ROUNDS=3, BENCH_HISTORY=100000, BENCH_DATABASE_URL,
                                      BENCH_REDIS_URL to change defaults)

One gunicorn configuration (config/gunicorn.py, as production runs it; production settings, bench/django_bench's
URLconf: the product routes plus /bare/<code>) serves two runs in turn: the bare view that only answers 302, then
GET /postback/<slug> with a new order id on every request (a click-attributed sale with a revenue-share rule: the
common case), 32 connections each, driven by wrk (a Python load generator if wrk is not installed), alternated for
BENCH_ROUNDS rounds (default 3); the table shows medians and every round's ratio. The conversion tables start with
BENCH_HISTORY earlier conversions, as a live program's do (seed_history says why). Every postback must answer 200
"created", and the conversions stored must equal the postbacks served. Then, in this process, handle_postback is
called directly under CaptureQueriesContext to count the SQL statements of one new conversion. Targets (issue 4): >=
0.3x the bare view, <= 3 queries per conversion.
"""

import collections
import contextlib
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.click import gunicorn, server_configuration  # noqa: E402  (after the path fix above)
from bench.django_bench.common import bench_link, counted_statements, machine, set_up_django, wsgi_call  # noqa: E402

SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
BARE, POSTBACK = "bare Django 302 view", "postback, new order each"
CONNECTIONS = 32
HISTORY = int(os.environ.get("BENCH_HISTORY", "100000"))  # earlier conversions in the tables (seed_history)
CLICKS = 500  # postbacks spread over this many clicks (one hour old: no fast-conversion flag)
QUERY_SAMPLE = 50
CPU_SAMPLE = 500
WARM_UP_REQUESTS = 100


def prepare(link) -> tuple[str, list[str]]:
    """Empty the conversion tables, give the program a revenue-share rule and CLICKS stored clicks."""
    from datetime import timedelta
    from decimal import Decimal

    from django.db import connection
    from django.utils import timezone
    from django_scopes import scopes_disabled

    from tracking.links import tracking_settings
    from tracking.models import Click, CommissionPlan, CommissionRule

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE tracking_conversionevent, tracking_postbackattempt, tracking_conversion, "
            "tracking_customerlink, tracking_click CASCADE"
        )
    program = link.program
    with scopes_disabled():
        tracking_settings(program)
        plan, _ = CommissionPlan.objects.get_or_create(program=program, name="Bench", defaults={"is_default": True})
        if not CommissionRule.objects.filter(plan=plan).exists():
            CommissionRule.objects.create(
                program=program, plan=plan, kind="sale", rule_type="revenue_share", percent=Decimal("10")
            )
        moment = timezone.now() - timedelta(hours=1)
        clicks = Click.objects.bulk_create(
            Click(
                program=program,
                link=link,
                affiliate_id=link.affiliate_id,
                offer_id=link.offer_id,
                created_at=moment,
                ip_hash=f"bench-visitor-{number}",
            )
            for number in range(CLICKS)
        )
    click_ids = [str(click.click_id) for click in clicks]
    seed_history(program, click_ids)
    with connection.cursor() as cursor:
        # What autovacuum does on a live database (this machine runs without it): without statistics a table just
        # emptied and refilled looks empty, and the read finds its click by scanning the program's clicks.
        cursor.execute("ANALYZE")
    return program.postback_token, click_ids


def seed_history(program, clicks: list[str]) -> None:
    """HISTORY earlier conversions of the program, each with its audit entry and postback log entry, as a live
    program's tables hold them: copies of one real postback's rows, 40 to 110 days old (before this month, so
    this month's volumes are the bench's own), written by INSERT ... SELECT.

    Not for show: PostgreSQL plans a foreign-key check once per connection and keeps the plan until the table's
    statistics change. Planned against tables that were just emptied, the checks from a new audit entry and log
    entry to their conversion scan the whole conversion table, and keep doing so as it grows (on this machine
    without autovacuum, for ever): each postback then costs more than the one before."""
    from django.db import connection
    from django_scopes import scopes_disabled

    from tracking.models import Conversion, ConversionEvent, PostbackAttempt

    conversion_id = new_postback(program, clicks[0], "history-0")["conversion_id"]
    with scopes_disabled():
        event = ConversionEvent.objects.get(conversion_id=conversion_id)
        attempt = PostbackAttempt.objects.get(conversion_id=conversion_id)

    def copy(model, *replaced: str) -> tuple[str, str, str]:
        """(table, its columns but the primary key and ``replaced``, the same read from the template row t)."""
        names = [f.column for f in model._meta.concrete_fields if not f.primary_key and f.column not in replaced]
        return model._meta.db_table, ", ".join(names), ", ".join(f"t.{name}" for name in names)

    conversions, c_columns, c_values = copy(Conversion, "order_id", "created_at", "status_changed_at")
    events, e_columns, e_values = copy(ConversionEvent, "conversion_id", "created_at")
    attempts, a_columns, a_values = copy(PostbackAttempt, "conversion_id", "created_at")
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH new AS (
                INSERT INTO {conversions} ({c_columns}, order_id, created_at, status_changed_at)
                SELECT {c_values}, 'history-' || g, moment, moment
                FROM {conversions} t, generate_series(1, %(count)s) AS s(g),
                     LATERAL (SELECT t.created_at - interval '40 days' - g * interval '1 minute' AS moment) AS m
                WHERE t.id = %(conversion)s
                RETURNING id, created_at
            ), events AS (
                INSERT INTO {events} ({e_columns}, conversion_id, created_at)
                SELECT {e_values}, new.id, new.created_at FROM new, {events} t WHERE t.id = %(event)s
            )
            INSERT INTO {attempts} ({a_columns}, conversion_id, created_at)
            SELECT {a_values}, new.id, new.created_at FROM new, {attempts} t WHERE t.id = %(attempt)s
            """,  # noqa: S608  (names from the models' _meta; values are parameters)
            {"count": HISTORY, "conversion": conversion_id, "event": event.pk, "attempt": attempt.pk},
        )


def new_postback(program, click_id: str, order_id: str) -> dict:
    """A new sale's postback in this process, as the view handles it (tracking.postback.load_program, then
    handle_postback); its answer, which must be 'created'."""
    from tracking.postback import load_program
    from tracking.services import handle_postback

    params = {"token": program.postback_token, "click_id": click_id, "order_id": order_id, "amount": "49.90"}
    fresh, context = load_program(program.slug, params)
    status, body = handle_postback(
        program=fresh, params=params, method="GET", ip="198.51.100.9", headers={}, context=context
    )
    assert (status, body["status"]) == (200, "created"), body
    return body


def get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# wrk's scripting guide: "Building a new request each time is expensive ... pre-generate all requests in init()
# and do a quick lookup in request()". Each thread builds AHEAD requests before the run (more than it can send
# in SECONDS) and the rest on the fly, so the load generator costs the machine about what it costs with the bare
# view's fixed request, not a Lua string build per request.
WRK_SCRIPT = """
local clicks = {%(clicks)s}
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local function build(number)
  local click = clicks[(number %% #clicks) + 1]
  return wrk.format("GET", "%(prefix)s&click_id=" .. click .. "&order_id=%(run)s-" .. tid .. "-" .. number)
end
function init(args)
  counter = 0
  prepared = {}
  for number = 1, %(ahead)d do
    prepared[number] = build(number)
  end
end
function request()
  counter = counter + 1
  return prepared[counter] or build(counter)
end
"""
AHEAD_PER_SECOND = 1500  # requests each of wrk's two threads builds ahead, per second of the run (~3x its share)


def load_with_wrk(port: int, path: str, clicks: list[str] | None) -> dict:
    command = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{SECONDS:.0f}s", f"http://127.0.0.1:{port}{path}"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        if clicks is not None:
            quoted = ",".join(f'"{click}"' for click in clicks)
            ahead = int(SECONDS * AHEAD_PER_SECOND)
            script.write(WRK_SCRIPT % {"clicks": quoted, "prefix": path, "run": uuid.uuid4().hex[:8], "ahead": ahead})
            command[1:1] = ["-s", script.name]
    try:
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script.name)
    errors = re.search(r"(Socket errors: .*|Non-2xx or 3xx responses: \d+)", output)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "errors": errors.group(1) if errors else "",
    }


def load_with_python(port: int, path: str, clicks: list[str] | None) -> dict:
    """Fallback without wrk: 32 threads with keep-alive connections; the GIL makes it the bottleneck sooner."""
    done, errors = [], []
    deadline = time.monotonic() + SECONDS
    run = uuid.uuid4().hex[:8]

    def worker(number: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        count = 0
        while time.monotonic() < deadline:
            target = path
            if clicks is not None:
                target += f"&click_id={clicks[count % len(clicks)]}&order_id={run}-{number}-{count}"
            try:
                conn.request("GET", target)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as error:
                errors.append(error)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                continue
            count += 1
            if response.status >= 400:
                errors.append(response.status)
        done.append(count)

    threads = [threading.Thread(target=worker, args=(number,)) for number in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"rps": sum(done) / SECONDS, "errors": f"{len(errors)} errors" if errors else ""}


def stored_counts() -> tuple[int, int, int]:
    """(conversions, attempts answered 'created', attempts in all), read in one statement once the server has
    finished what was in flight when the load stopped."""
    from django.db import connection

    def read() -> tuple[int, int, int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT (SELECT count(*) FROM tracking_conversion),"
                " (SELECT count(*) FROM tracking_postbackattempt WHERE result = 'created'),"
                " (SELECT count(*) FROM tracking_postbackattempt)"
            )
            return cursor.fetchone()

    counts = read()
    while True:
        time.sleep(1)
        again = read()
        if again == counts:
            return counts
        counts = again


def queries_per_conversion(program, clicks: list[str]) -> tuple[float, list[str]]:
    """SQL statements per new conversion: what the view does (tracking.postback.load_program, then
    handle_postback) under CaptureQueriesContext; BEGIN, COMMIT and the once-per-connection PREPARE are listed,
    not counted."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def one(number: int) -> list[dict]:
        with CaptureQueriesContext(connection) as queries:
            new_postback(program, clicks[number % len(clicks)], f"queries-{uuid.uuid4().hex}")
        return queries.captured_queries

    one(0)  # warm: the month volumes the rate signal caches
    total = 0
    for number in range(QUERY_SAMPLE):
        captured = one(number)
        total += sum(1 for sql in counted_statements(captured) if "PREPARE" not in sql)
    return total / QUERY_SAMPLE, [" ".join(query["sql"].split())[:100] for query in captured]


def cpu_per_request(program, link, clicks: list[str]) -> tuple[float, float, float]:
    """CPU milliseconds of this process per request through config.wsgi.application, as gunicorn calls it (no
    server, no network): the bare view and a new postback; and PostgreSQL's CPU per postback (its backend's
    utime + stime from /proc, over 1,000 postbacks). Independent of other load on the machine, unlike req/s."""
    from django.db import connection

    def bare(number: int) -> None:
        assert wsgi_call(f"/bare/{link.code}").startswith("302")

    def postback(number: int) -> None:
        query = urlencode(
            {
                "token": program.postback_token,
                "click_id": clicks[number % len(clicks)],
                "amount": "49.90",
                "order_id": f"cpu-{uuid.uuid4().hex}",
            }
        )
        assert wsgi_call(f"/postback/{program.slug}", query).startswith("200")

    def backend_seconds(pid: int) -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    figures = []
    for send in (bare, postback):
        send(0)
        started = time.process_time()
        for number in range(CPU_SAMPLE):
            send(number)
        figures.append((time.process_time() - started) / CPU_SAMPLE * 1000)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    started, count = backend_seconds(pid), 1000
    for number in range(count):
        postback(number)
    return figures[0], figures[1], (backend_seconds(pid) - started) / count * 1000


def cpu_seconds_by_process() -> collections.Counter:
    """CPU seconds (user + system) spent so far by the processes of the machine, grouped: gunicorn's, PostgreSQL's
    and this script's finished children (wrk); the rest of the machine's busy time is "other"."""
    spent: collections.Counter = collections.Counter()
    tick = os.sysconf("SC_CLK_TCK")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()
        name = stat.split("(", 1)[1].rsplit(")", 1)[0]
        group = "gunicorn" if b"gunicorn" in command else "postgres" if name.startswith("postgres") else None
        if group:
            spent[group] += (int(fields[11]) + int(fields[12])) / tick
    times = os.times()
    spent["wrk"] = times.children_user + times.children_system
    busy = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    spent["machine"] = (sum(busy) - busy[3]) / tick  # everything but idle
    return spent


def with_cpu(load, port: int, path: str, clicks: list[str] | None) -> dict:
    """``load``'s result plus the CPU milliseconds per request it cost each group of processes."""
    before = cpu_seconds_by_process()
    result = load(port, path, clicks)
    spent = cpu_seconds_by_process()
    spent.subtract(before)
    requests = result["rps"] * SECONDS
    cpu = {group: spent[group] * 1000 / requests for group in ("gunicorn", "postgres", "wrk")}
    cpu["other"] = spent["machine"] * 1000 / requests - sum(cpu.values())
    return {**result, "cpu": cpu}


def settle() -> None:
    """Write out what a postback round left in PostgreSQL's buffers before the next bare round: its
    background flush would otherwise run during the bare view's round and be charged to it."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")
    time.sleep(2)


def main() -> None:
    env = set_up_django()
    link = bench_link()
    token, clicks = prepare(link)
    program = link.program
    load = load_with_wrk if shutil.which("wrk") else load_with_python
    print(f"machine: {machine()}")
    print(f"gunicorn (config/gunicorn.py): {server_configuration()}; load: {load.__name__[10:]}, {CONNECTIONS} conns")
    postback_prefix = f"/postback/{program.slug}?" + urlencode({"token": token, "amount": "49.90"})
    rounds: dict[str, list[dict]] = {BARE: [], POSTBACK: []}
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        port = stack.enter_context(gunicorn(env, folder / "access.log"))
        for _ in range(WARM_UP_REQUESTS):
            assert get(port, f"/bare/{link.code}")[0] == 302
            status, body = get(port, f"{postback_prefix}&click_id={clicks[0]}&order_id=warm-{uuid.uuid4().hex}")
            assert (status, json.loads(body)["status"]) == (200, "created"), body
        before = stored_counts()
        for _round in range(ROUNDS):  # alternated, so a slow minute of a shared machine hits both sides
            rounds[BARE].append(with_cpu(load, port, f"/bare/{link.code}", None))
            rounds[POSTBACK].append(with_cpu(load, port, postback_prefix, clicks))
            settle()
        after = stored_counts()
    results = {name: statistics.median(run["rps"] for run in measured) for name, measured in rounds.items()}
    bare = results[BARE]
    print(f"medians of {ROUNDS} alternated rounds")
    print(f"{'':28} {'req/s':>8} {'ratio':>6}")
    for name, rps in results.items():
        errors = "; ".join(run["errors"] for run in rounds[name] if run["errors"])
        print(f"{name:28} {rps:8.0f} {rps / bare:5.2f}x" + (f"  ({errors})" if errors else ""))
    print("machine CPU per request, ms (medians; on the same two CPUs, so the cost of one side slows the other):")
    for name, measured in rounds.items():
        groups = {group: statistics.median(run["cpu"][group] for run in measured) for group in measured[0]["cpu"]}
        print(f"  {name:26} " + "  ".join(f"{group} {value:.2f}" for group, value in groups.items()))
    ratios = [run["rps"] / base["rps"] for run, base in zip(rounds[POSTBACK], rounds[BARE], strict=True)]
    print(f"{POSTBACK:28} ratio by round: {' '.join(f'{ratio:.2f}x' for ratio in ratios)}")
    conversions, created, attempts = (a - b for a, b in zip(after, before, strict=True))
    print(f"postbacks answered: {attempts}, 'created': {created}, conversions stored: {conversions}")
    bare_cpu, postback_cpu, database_cpu = cpu_per_request(program, link, clicks)
    print(
        f"CPU per request in this process (config.wsgi, no server): bare {bare_cpu:.2f} ms, postback"
        f" {postback_cpu:.2f} ms ({bare_cpu / postback_cpu:.2f}x); PostgreSQL per postback {database_cpu:.2f} ms"
    )
    per_conversion, statements = queries_per_conversion(program, clicks)
    print(f"SQL queries per new conversion (one request, BEGIN/COMMIT not counted): {per_conversion:.2f}")
    for statement in statements:
        print(f"  {statement}")


if __name__ == "__main__":
    main()
