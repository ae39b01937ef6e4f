"""A real Celery worker process against the test PostgreSQL database and Redis, for tests/integration."""

import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from django.conf import settings
from django.db import connection
from django_scopes import scopes_disabled

from affiliates.models import AffiliateStatus, Role
from config.celery import app
from tests.factories import AffiliateFactory, MembershipFactory, ProgramFactory

HERE = Path(__file__).resolve().parent
SKIP_REASON = "needs PostgreSQL and Redis: set DATABASE_URL and REDIS_URL"
WORKER_READY_SECONDS = 30
WORKER_STOP_SECONDS = 10
# The separator Django's file-based email backend writes after each message.
MESSAGE_SEPARATOR = b"\n" + b"-" * 79 + b"\n"


@pytest.fixture(autouse=True)
def _tasks_run_inline():
    """Overrides the suite-wide fixture: here tasks go through the broker to a real worker."""
    return


def services_configured() -> bool:
    database_url = os.environ.get("DATABASE_URL", "")
    return database_url.startswith(("postgres://", "postgresql://", "pgsql://")) and bool(os.environ.get("REDIS_URL"))


def pytest_collection_modifyitems(config, items):
    # Skipped, not failed, without the services, so the SQLite path of make test still passes.
    skip = pytest.mark.skipif(not services_configured(), reason=SKIP_REASON)
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)
            item.add_marker(skip)


def database_url(settings_dict: dict) -> str:
    """The URL of the database ``settings_dict`` points at, in the form settings.DATABASE_URL reads."""
    user = quote(settings_dict.get("USER") or "", safe="")
    password = quote(settings_dict.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else f"{user}@" if user else ""
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    options = settings_dict.get("OPTIONS") or {}
    query = f"?{urlencode(options)}" if options else ""
    host = settings_dict.get("HOST") or "localhost"
    return f"postgres://{credentials}{host}{port}/{quote(settings_dict['NAME'], safe='')}{query}"


@dataclass
class Worker:
    process: subprocess.Popen
    hostname: str
    queue: str
    mail_dir: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def sent_messages(self) -> list[Message]:
        """Every complete message the worker's file-based email backend has written so far."""
        messages = []
        for path in sorted(self.mail_dir.iterdir()):
            # A file may still be half written; only text followed by a separator is a whole message.
            *complete, _rest = path.read_bytes().split(MESSAGE_SEPARATOR)
            messages.extend(message_from_bytes(raw) for raw in complete)
        return messages

    def wait_for_messages(self, count: int, timeout: float = 20) -> list[Message]:
        """Poll the mail directory until ``count`` messages arrived or ``timeout`` seconds passed."""
        deadline = time.monotonic() + timeout
        while True:
            messages = self.sent_messages()
            if len(messages) >= count or time.monotonic() >= deadline:
                return messages
            time.sleep(0.1)


def wait_until_ready(worker: Worker) -> None:
    deadline = time.monotonic() + WORKER_READY_SECONDS
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            pytest.fail(f"The Celery worker exited with {worker.process.returncode}:\n{worker.log()}")
        if app.control.ping(destination=[worker.hostname], timeout=0.5):
            return
    pytest.fail(f"The Celery worker did not answer a ping within {WORKER_READY_SECONDS} s:\n{worker.log()}")


def delete_queue(name: str) -> None:
    """Remove the session's queue and its binding from the broker so runs leave nothing behind."""
    with app.connection_for_write() as broker:
        queue = app.amqp.queues[name].bind(broker.default_channel)
        queue.declare()  # The transport only deletes bindings this channel has declared.
        queue.delete()


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=WORKER_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, tmp_path_factory):
    """A worker process on the test database that consumes only this session's queue and writes mail to files."""
    # A queue and a node name of our own: other workers on the same broker (make worker, another test run)
    # must neither take our tasks nor answer our pings.
    queue = f"goalpost-integration-{uuid.uuid4().hex[:12]}"
    hostname = f"{queue}@{socket.gethostname()}"
    mail_dir = tmp_path_factory.mktemp("worker-mail")
    log_path = tmp_path_factory.mktemp("worker-log") / "worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        # django_db_setup has switched the connection to the test database, where transactional tests commit.
        "DATABASE_URL": database_url(connection.settings_dict),
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(mail_dir),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("EMAIL_HOST", None)  # SMTP would take precedence over the file backend.
    command = [
        sys.executable,
        "-m",
        "celery",
        "--app=config",
        "worker",
        "--loglevel=INFO",
        "--pool=solo",
        "--concurrency=1",
        f"--queues={queue}",
        f"--hostname={hostname}",
        # Gossip and mingle talk to every worker on the broker; this one needs neither.
        "--without-gossip",
        "--without-mingle",
    ]
    default_queue = app.conf.task_default_queue
    app.conf.task_default_queue = queue  # What the code under test enqueues goes to our worker only.
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    worker = Worker(process=process, hostname=hostname, queue=queue, mail_dir=mail_dir, log_path=log_path)
    try:
        wait_until_ready(worker)
        yield worker
    finally:
        # Stop before django_db_setup's teardown: PostgreSQL will not drop a database that has connections.
        stop(process)
        app.conf.task_default_queue = default_queue
        delete_queue(queue)


@pytest.fixture
def worker(celery_worker, transactional_db) -> Worker:
    """The session's worker with an empty mailbox; its tasks see rows because transactional tests commit."""
    for path in celery_worker.mail_dir.iterdir():
        path.unlink()
    return celery_worker


@dataclass
class Application:
    """A program with a manager and one pending applicant who has an account."""

    program: object
    manager: object
    applicant: object


@pytest.fixture
def application(transactional_db) -> Application:
    with scopes_disabled():
        program = ProgramFactory(slug="harbor", name="Harbor Supplies")
        manager = MembershipFactory(program=program, role=Role.MANAGER).user
        applicant_user = MembershipFactory(program=program, role=Role.AFFILIATE).user
        applicant = AffiliateFactory(
            program=program,
            user=applicant_user,
            email=applicant_user.email,
            name="Harbor Applicant",
            status=AffiliateStatus.PENDING,
        )
    return Application(program=program, manager=manager, applicant=applicant)
