"""Shared set-up for bench/click.py and bench/drain.py: the bench database and Redis, Django, a link, machine info.

Lives here, not in bench/, so `make bench` (every bench/*.py) does not run it as a bench.
"""

import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/goalpost_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/7"


def bench_environment() -> dict[str, str]:
    """The environment of the bench processes: PostgreSQL + Redis (loopback defaults), production mode."""
    env = dict(os.environ)
    env.setdefault("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    env.setdefault("BENCH_REDIS_URL", DEFAULT_REDIS_URL)
    env.update(
        DATABASE_URL=env["BENCH_DATABASE_URL"],
        REDIS_URL=env["BENCH_REDIS_URL"],
        CELERY_BROKER_URL=env["BENCH_REDIS_URL"],
        DJANGO_SETTINGS_MODULE="bench.django_bench.settings",
        # Production mode as gunicorn runs in docker-compose (DEBUG off), on plain http over loopback.
        DJANGO_ENV="production",
        SECRET_KEY="bench-" + "k" * 30 + "0123456789abcdefghij",
        ALLOWED_HOSTS="127.0.0.1,localhost,testserver",
        SECURE_SSL_REDIRECT="0",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    env.pop("CLICK_BUFFER", None)
    env.pop("CLICK_BUFFER_URL", None)
    return env


def create_database(url: str) -> None:
    import dj_database_url
    import psycopg2

    config = dj_database_url.parse(url)
    connection = psycopg2.connect(
        dbname="postgres", user=config["USER"], password=config["PASSWORD"], host=config["HOST"], port=config["PORT"]
    )
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [config["NAME"]])
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{config["NAME"]}"')
    connection.close()


def set_up_django() -> dict[str, str]:
    """Create and migrate the bench database, then set Django up in this process with the bench settings."""
    env = bench_environment()
    create_database(env["DATABASE_URL"])
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    return env


def bench_link(slug: str = "bench"):
    """A program, an approved affiliate, an offer and a link for the bench, created once and reused."""
    from django_scopes import scopes_disabled

    from affiliates.models import Affiliate, AffiliateStatus, Program
    from tracking.links import create_link, create_offer
    from tracking.models import Link, Offer

    with scopes_disabled():
        program, _ = Program.objects.get_or_create(
            slug=slug, defaults={"name": slug.title(), "timezone": "Europe/Warsaw"}
        )
        affiliate, _ = Affiliate.objects.get_or_create(
            program=program,
            email=f"partner@{slug}.test",
            defaults={"name": "Bench partner", "status": AffiliateStatus.APPROVED},
        )
        offer = Offer.objects.filter(program=program).first() or create_offer(
            program=program, name="Bench offer", destination_url=f"https://shop.{slug}.test/landing?lang=en"
        )
        link = Link.objects.filter(program=program, offer=offer, affiliate=affiliate).first()
        return link or create_link(program=program, offer=offer, affiliate=affiliate)


def truncate_events() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE tracking_click, tracking_impression")


def forget_buffer() -> None:
    """Delete the bench's keys (stream, lock, counters) from its Redis."""
    from tracking.clicks import event_buffer

    client = event_buffer().drain_client
    keys = list(client.scan_iter(match="goalpost-bench:*", count=1000))
    if keys:
        client.delete(*keys)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, {versions or 'PostgreSQL client n/a'}"


def counted_statements(captured: list[dict]) -> list[str]:
    """The SQL of CaptureQueriesContext's ``captured`` queries, BEGIN and COMMIT left out: what both benches
    count as statements."""
    return [query["sql"] for query in captured if query["sql"] not in ("BEGIN", "COMMIT")]


def wsgi_call(path: str, query: str = "") -> str:
    """One GET through config.wsgi.application, in this process, as gunicorn would call it; the status line."""
    import io

    from config.wsgi import application

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "198.51.100.9",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_USER_AGENT": "Mozilla/5.0 (bench)",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
    }
    answer = []
    b"".join(application(environ, lambda status, headers, exc_info=None: answer.append(status)))
    return answer[0]
