"""Freshness: from an event being accepted to the affected GoalProgress reflecting it (target p95 ≤ 5 s).

A real Celery worker and beat (started here as subprocesses) on PostgreSQL and Redis; this process sends a
stream of clicks (GET /c/<code> through config.wsgi, the gunicorn entry point) and postbacks (POST
/postback/<slug> for an earlier click), and polls GoalProgress. The path measured is the whole pipeline:
redirect → Redis buffer → drain task → clicks + dirty keys → rollup task → DailyStats → refresh_goal_progress
→ GoalProgress; for a postback: conversion + dirty keys → rollup task → DailyStats → GoalProgress.

Its own database (FRESHNESS_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/goalpost_bench_freshness,
recreated each run) and its own Redis database (FRESHNESS_REDIS_URL, default redis://127.0.0.1:6379/11,
flushed each run), so no other worker takes its tasks. The baseline beside the figures is beat's tick: with
tasks every second, an event waits up to ~1 s for the drain and up to ~1 s more for the rollup loop.
"""

import argparse
import io
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # not bench/: its click.py would shadow the click package Celery imports
DATABASE_URL = os.environ.get("FRESHNESS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/goalpost_bench_freshness")
REDIS_URL = os.environ.get("FRESHNESS_REDIS_URL", "redis://127.0.0.1:6379/11")
ENVIRONMENT = {
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "DATABASE_URL": DATABASE_URL,
    "REDIS_URL": REDIS_URL,
    "CELERY_BROKER_URL": REDIS_URL,
    "CLICK_REDIS_PREFIX": "goalpost-freshness:",
    "LOG_LEVEL": "WARNING",
}
os.environ.update(ENVIRONMENT)

import psycopg2  # noqa: E402
import redis  # noqa: E402

AFFILIATES = 20
SLUG = "freshness"
READY_SECONDS = 60


def recreate_database() -> None:
    parts = urlsplit(DATABASE_URL)
    name = parts.path.lstrip("/")
    admin = psycopg2.connect(urlunsplit(parts._replace(path="/postgres")))
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    redis.Redis.from_url(REDIS_URL).flushdb()


def set_up() -> tuple[object, list[tuple[object, object]], dict]:
    """Program, affiliates with a link each, and two goals per affiliate this month (clicks, conversions)."""
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from django_scopes import scopes_disabled

    from affiliates.models import Affiliate, AffiliateStatus, Program
    from goals.models import Goal
    from goals.periods import local_now, month_start
    from goals.progress import refresh_goal_progress
    from tracking.links import create_link, create_offer, tracking_settings

    with scopes_disabled():
        program = Program.objects.create(name="Freshness", slug=SLUG, timezone="Europe/Warsaw")
        settings = tracking_settings(program)
        settings.fraud_min_seconds_to_convert = 0  # the bench converts seconds after the click
        settings.save()
        offer = create_offer(program=program, name="Offer", destination_url="https://shop.freshness.test/")
        month = month_start(local_now(program).date())
        links, goals = [], {}
        for index in range(AFFILIATES):
            affiliate = Affiliate.objects.create(
                program=program,
                name=f"Partner {index}",
                email=f"p{index}@freshness.test",
                status=AffiliateStatus.APPROVED,
            )
            links.append((affiliate, create_link(program=program, offer=offer, affiliate=affiliate)))
            for kpi, target in (("clicks", 1000), ("conversions", 100)):
                goal = Goal.objects.create(program=program, affiliate=affiliate, month=month, kpi=kpi, target=target)
                goals[(affiliate.pk, kpi)] = goal.pk
        refresh_goal_progress(program=program, month=month)
    return program, links, goals


def start(command: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, **ENVIRONMENT, "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as handle:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wsgi(path: str, *, method: str = "GET", query: str = "", body: bytes = b"", ip: str, **headers) -> tuple:
    """One request to config.wsgi.application, as gunicorn would hand it over; (status, headers, body)."""
    from config.wsgi import application

    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": ip,
        "HTTP_HOST": "localhost",
        "HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        **headers,
    }
    answer = {}

    def start_response(status, response_headers, exc_info=None):
        answer["status"], answer["headers"] = int(status.split()[0]), dict(response_headers)

    content = b"".join(application(environ, start_response))
    return answer["status"], answer["headers"], content


class Watcher(threading.Thread):
    """Polls every goal's provisional value and records when it first reached each level."""

    def __init__(self, goal_ids: list[int]) -> None:
        super().__init__(daemon=True)
        self.goal_ids = goal_ids
        self.reached: dict[tuple[int, int], float] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        from django.db import connection
        from django_scopes import scopes_disabled

        from goals.models import GoalProgress

        seen: dict[int, int] = {}
        try:
            while not self.stopped.is_set():
                now = time.perf_counter()
                with scopes_disabled():
                    rows = GoalProgress.objects.filter(goal_id__in=self.goal_ids).values_list(
                        "goal_id", "value_provisional"
                    )
                    for goal_id, value in rows:
                        value = int(value or 0)
                        for level in range(seen.get(goal_id, 0) + 1, value + 1):
                            self.reached[(goal_id, level)] = now
                        seen[goal_id] = max(seen.get(goal_id, 0), value)
                time.sleep(0.05)
        finally:
            connection.close()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30, help="how long the stream runs")
    parser.add_argument("--rate", type=float, default=20, help="clicks per second (a postback every 4th)")
    arguments = parser.parse_args()

    recreate_database()
    program, links, goals = set_up()
    logs = Path(tempfile.mkdtemp(prefix="freshness-"))
    python = sys.executable
    worker = start(
        [python, "-m", "celery", "--app=config", "worker", "--loglevel=WARNING", "--concurrency=2",
         "--hostname=freshness@%h", "--without-gossip", "--without-mingle"],
        logs / "worker.log",
    )  # fmt: skip
    beat = start(
        [python, "-m", "celery", "--app=config", "beat", "--loglevel=WARNING", f"--schedule={logs / 'beat-schedule'}"],
        logs / "beat.log",
    )
    from config.celery import app

    try:
        deadline = time.monotonic() + READY_SECONDS
        while not app.control.ping(destination=[f"freshness@{platform.node()}"], timeout=0.5):
            if time.monotonic() > deadline or worker.poll() is not None:
                sys.exit(f"The worker did not start; see {logs / 'worker.log'}")
        watcher = Watcher(list(goals.values()))
        watcher.start()

        events: list[tuple[str, int, int, float]] = []  # (kind, goal id, level it needs, accepted at)
        sent: dict[int, int] = dict.fromkeys(goals.values(), 0)
        clicks_to_convert: list[tuple[object, str]] = []
        interval = 1 / arguments.rate
        started = time.perf_counter()
        count = 0
        while time.perf_counter() - started < arguments.seconds:
            affiliate, link = random.choice(links)
            ip = f"198.51.100.{random.randint(1, 250)}"
            status, headers, _body = wsgi(f"/c/{link.code}", ip=ip)
            accepted = time.perf_counter()
            assert status == 302, status
            click_id = parse_qs(urlsplit(headers["Location"]).query)["click_id"][0]
            goal = goals[(affiliate.pk, "clicks")]
            sent[goal] += 1
            events.append(("click", goal, sent[goal], accepted))
            clicks_to_convert.append((affiliate, click_id))
            count += 1
            if count % 4 == 0:
                affiliate, click_id = clicks_to_convert.pop(0)
                body = json.dumps(
                    {"click_id": click_id, "order_id": uuid.uuid4().hex, "amount": "49.90", "currency": "EUR"}
                ).encode()
                status, _headers, content = wsgi(
                    f"/postback/{SLUG}",
                    method="POST",
                    query=urlencode({"token": program.postback_token}),
                    body=body,
                    ip="203.0.113.10",
                )
                accepted = time.perf_counter()
                assert status in (200, 201), (status, content)
                goal = goals[(affiliate.pk, "conversions")]
                sent[goal] += 1
                events.append(("postback", goal, sent[goal], accepted))
            pause = started + count * interval - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        wait_until = time.perf_counter() + 30
        while time.perf_counter() < wait_until and any(
            (goal, level) not in watcher.reached for _kind, goal, level, _at in events
        ):
            time.sleep(0.2)
        watcher.stopped.set()
        watcher.join()
    finally:
        stop(beat)
        stop(worker)

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), platform.machine())
    print(f"machine: {cpu}, {os.cpu_count()} cores; Python {platform.python_version()}")
    print(
        f"stream: {arguments.seconds:.0f} s, {arguments.rate:.0f} clicks/s over {AFFILIATES} affiliates, a postback "
        f"every 4th click; worker (prefork, 2 processes) and beat as subprocesses; logs in {logs}"
    )
    print("event accepted → GoalProgress reflects it      (target p95 ≤ 5 s; beat's tick: 1.00 s)")
    for kind in ("click", "postback"):
        latencies = [
            watcher.reached[(goal, level)] - at
            for k, goal, level, at in events
            if k == kind and (goal, level) in watcher.reached
        ]
        missing = sum(1 for k, goal, level, _at in events if k == kind and (goal, level) not in watcher.reached)
        if not latencies:
            print(f"    {kind:9} none reflected within 30 s of the stream's end ({missing} events)")
            continue
        p50, p95 = statistics.median(latencies), percentile(latencies, 0.95)
        print(
            f"    {kind:9} n={len(latencies):5}  p50 {p50:5.2f} s ({p50:.2f}× tick)  "
            f"p95 {p95:5.2f} s ({p95:.2f}× tick)  max {max(latencies):5.2f} s  not reflected: {missing}"
        )


if __name__ == "__main__":
    main()
