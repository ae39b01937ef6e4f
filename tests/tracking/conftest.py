"""Tracking fixtures: an offer and a link of an approved affiliate in alice's and bob's programs, a WSGI client
for the click path, and a click buffer of each test's own in Redis."""

import contextlib
import io
import os
import uuid
from dataclasses import dataclass

import pytest
from django_scopes import scopes_disabled
from redis.exceptions import RedisError

from config.wsgi import application
from tracking.clicks import drain_buffer, event_buffer
from tracking.links import create_link, create_offer

REDIS_CONFIGURED = bool(os.environ.get("REDIS_URL"))
# Tests of the Redis click buffer carry this next to usefixtures("buffered"): the skip shows at the test.
needs_redis = pytest.mark.skipif(not REDIS_CONFIGURED, reason="needs Redis: set REDIS_URL")


@dataclass
class Tracked:
    """A program (its World), one of its offers, and a link of its first approved affiliate to that offer."""

    world: object
    offer: object
    link: object

    @property
    def program(self):
        return self.world.program


def build_tracked(world, slug: str) -> Tracked:
    with scopes_disabled():
        offer = create_offer(
            program=world.program,
            name=f"{slug} spring sale",
            destination_url=f"https://shop.{slug}.test/spring?lang=en",
        )
        link = create_link(program=world.program, offer=offer, affiliate=world.affiliate)
    return Tracked(world=world, offer=offer, link=link)


@pytest.fixture
def alice_link(alice) -> Tracked:
    return build_tracked(alice, "alice")


@pytest.fixture
def bob_link(bob) -> Tracked:
    return build_tracked(bob, "bob")


@pytest.fixture(autouse=True)
def _own_click_buffer(settings):
    """Each test gets its own Redis keys, so parallel runs and other developers' suites never share a stream."""
    settings.CLICK_REDIS_PREFIX = f"goalpost-test:{uuid.uuid4().hex}:"
    yield
    buffer = event_buffer()
    if buffer is not None:
        with contextlib.suppress(RedisError):  # a test pointed the buffer at a Redis that is not there
            keys = list(buffer.drain_client.scan_iter(match=f"{settings.CLICK_REDIS_PREFIX}*", count=1000))
            if keys:
                buffer.drain_client.delete(*keys)


@dataclass
class WsgiResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        return values[0] if values else None

    @property
    def location(self) -> str:
        return self.header("Location") or ""


def wsgi_request(
    path: str, *, query: str = "", method: str = "GET", https: bool = False, body: bytes = b"", **headers
) -> WsgiResponse:
    """Send one request to config.wsgi.application (the gunicorn entry point) and collect the answer.

    ``path`` is PATH_INFO as a server hands it over (already percent-decoded); headers are WSGI names
    (HTTP_USER_AGENT=…, CONTENT_TYPE=…); REMOTE_ADDR defaults to a documentation address.
    """
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "443" if https else "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "203.0.113.7",
        "HTTP_HOST": "testserver",
        "HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https" if https else "http",
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    environ.update({key: value for key, value in headers.items() if value is not None})
    for key, value in headers.items():
        if value is None:
            environ.pop(key, None)
    answer = {}

    def start_response(status: str, response_headers: list, exc_info=None):
        answer["status"] = int(status.split()[0])
        answer["headers"] = response_headers

    body = b"".join(application(environ, start_response))
    return WsgiResponse(answer["status"], answer["headers"], body)


@pytest.fixture
def wsgi_get():
    return wsgi_request


@pytest.fixture
def drain_all(django_capture_on_commit_callbacks):
    """Drain the click buffer completely (a no-op when clicks are written directly), as the drain task does."""

    def drain() -> int:
        with django_capture_on_commit_callbacks(execute=True):
            return drain_buffer()

    return drain


@pytest.fixture
def buffered(settings):
    """Clicks go through the Redis stream; tests that use it are marked ``needs_redis``."""
    if not REDIS_CONFIGURED:
        pytest.fail("this test uses the Redis click buffer: mark it @needs_redis (from tests.tracking.conftest)")
    settings.CLICK_BUFFER = "redis"
    settings.CLICK_BUFFER_URL = settings.REDIS_URL


# --- Conversions (tests/tracking/test_conversions.py and friends) -------------------------------------------


@dataclass
class Sales:
    """A program ready to record conversions: an offer, a link of an approved affiliate, clicks on demand."""

    tracked: Tracked

    @property
    def program(self):
        return self.tracked.program

    @property
    def world(self):
        return self.tracked.world

    @property
    def affiliate(self):
        return self.tracked.world.affiliate

    def click(self, *, ago=None, link=None, **fields):
        """A stored click on ``link`` (default: the affiliate's link), ``ago`` before now (default one hour)."""
        from datetime import timedelta

        from django.utils import timezone

        from tracking.models import Click

        link = link or self.tracked.link
        with scopes_disabled():
            return Click.objects.create(
                program=self.program,
                link=link,
                affiliate=link.affiliate,
                offer=link.offer,
                created_at=timezone.now() - (ago if ago is not None else timedelta(hours=1)),
                **fields,
            )

    def offer(self, name: str):
        """Another offer of the program."""
        with scopes_disabled():
            return create_offer(program=self.program, name=name, destination_url="https://shop.example/other")

    def link(self, *, affiliate=None, offer=None):
        """Another link: of ``affiliate`` (default: the program's second approved affiliate) to ``offer``."""
        with scopes_disabled():
            return create_link(
                program=self.program,
                offer=offer or self.tracked.offer,
                affiliate=affiliate or self.world.other_affiliate,
            )

    def rule(self, **fields):
        """A commission rule in the program's default plan (created on first use)."""
        from tracking.models import CommissionPlan, CommissionRule

        with scopes_disabled():
            plan = CommissionPlan.objects.filter(program=self.program, is_default=True).order_by("pk").first()
            if plan is None:
                plan = CommissionPlan.objects.create(program=self.program, name="Standard", is_default=True)
            fields.setdefault("kind", "sale")
            return CommissionRule.objects.create(program=self.program, plan=plan, **fields)

    def settings(self, **fields):
        """The program's tracking settings, updated with ``fields``."""
        from tracking.links import tracking_settings

        with scopes_disabled():
            settings = tracking_settings(self.program)
            for name, value in fields.items():
                setattr(settings, name, value)
            settings.save()
        self.program.tracking_settings = settings  # services read the settings cached on the program
        return settings


@pytest.fixture
def sales(alice_link) -> Sales:
    return Sales(alice_link)


@pytest.fixture
def bob_sales(bob_link) -> Sales:
    return Sales(bob_link)
