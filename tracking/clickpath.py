"""The click redirect /c/<code> and the impression pixel /i/<code>, served before Django's middleware.

config.wsgi puts ``TrackingDispatcher`` in front of Django: paths under /c/ and /i/ are answered here from
the cached link (no SQL when warm), server-to-server postbacks (/postback/<slug>) go straight to their view,
and every other path goes to Django. The Django views at the bottom call the same ``serve`` for ``manage.py
runserver``, which does not load config.wsgi (nor does the test client: both go through the URLconf).

The destination always comes from the stored link: nothing in the request can change where a visitor goes,
only utm_* parameters are passed on and the click id is appended.
"""

import base64
import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from html import escape
from http import HTTPStatus
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, close_old_connections, connection
from django.http import HttpRequest, HttpResponse
from django.http.cookie import parse_cookie
from django.utils import translation
from django.utils.encoding import iri_to_uri
from django.utils.translation import gettext as _

from tracking.bots import is_bot
from tracking.clicks import CLICK, IMPRESSION, SUB_COUNT, click_cap_reached, track_event
from tracking.hashing import client_ip, ip_hash, visitor_hash
from tracking.links import CachedLink
from tracking.postback import answer_postback, wsgi_params
from tracking.sources import traffic_source

logger = logging.getLogger(__name__)

CODE_PATTERN = re.compile(r"[A-Za-z0-9_-]{4,16}")
UTM_PATTERN = re.compile(r"utm_[a-z0-9_]{1,40}")
COUNTRY_PATTERN = re.compile(r"[A-Z]{2}")
COUNTRY_HEADERS = ("HTTP_CF_IPCOUNTRY", "HTTP_X_COUNTRY_CODE")
MAX_PARAMETERS = 64
MAX_UTM_PARAMETERS = 10
VALUE_LENGTH = 255
REFERRER_LENGTH = 1000
USER_AGENT_LENGTH = 512
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_STORE = ("Cache-Control", "no-cache, no-store, must-revalidate, private")


@dataclass
class Reply:
    """A response both the WSGI dispatcher and the Django views can send."""

    status: int
    content_type: str = "text/plain; charset=utf-8"
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    cookie: tuple[str, str, int, bool] | None = None  # name, value, max-age, secure

    @property
    def status_line(self) -> str:
        return {200: "200 OK", 302: "302 Found", 404: "404 Not Found", 405: "405 Method Not Allowed"}.get(
            self.status, "503 Service Unavailable"
        )


def _page(status: int, message: str) -> Reply:
    body = f"<!doctype html><title>{escape(message)}</title><p>{escape(message)}</p>\n".encode()
    return Reply(status, "text/html; charset=utf-8", body, [NO_STORE])


def not_found(meta: Mapping[str, str]) -> Reply:
    with translation.override(visitor_language(meta)):
        return _page(404, _("This link does not exist or is no longer active."))


def visitor_language(meta: Mapping[str, str]) -> str:
    """The caller's language as LocaleMiddleware would pick it (language cookie, then Accept-Language, then the
    default), for the answers made before Django's middleware. Only error pages and postback answers ask: a
    worker thread keeps whatever language the last page it served activated."""
    if not meta.get("HTTP_COOKIE") and not meta.get("HTTP_ACCEPT_LANGUAGE"):
        # What get_language_from_request answers then, without building a request and parsing its cookies:
        # advertisers' servers send neither header, and every postback asks.
        try:
            return translation.get_supported_language_variant(settings.LANGUAGE_CODE)
        except LookupError:
            return settings.LANGUAGE_CODE
    request = HttpRequest()
    request.META = meta
    request.COOKIES = parse_cookie(meta.get("HTTP_COOKIE", ""))
    return translation.get_language_from_request(request)


def _text(meta: Mapping[str, str], name: str, length: int) -> str:
    """A header as text: WSGI hands over latin-1 decoded bytes; browsers send UTF-8."""
    value = meta.get(name, "")
    if not value:
        return ""
    with contextlib.suppress(UnicodeEncodeError):  # already text (a test client or a non-WSGI caller)
        value = value.encode("latin-1").decode("utf-8", "replace")
    return _clean(value, length)


def _clean(value: str, length: int) -> str:
    # PostgreSQL refuses NUL in text; nothing useful is lost by dropping it.
    return value.replace("\x00", "")[:length]


def _parameters(meta: Mapping[str, str]) -> list[tuple[str, str]]:
    query = meta.get("QUERY_STRING", "")
    if not query or len(query) > settings.CLICK_MAX_QUERY_STRING:
        return []  # An oversized query string is ignored as a whole; the visitor is still redirected.
    try:
        return parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_PARAMETERS, encoding="utf-8")
    except ValueError:
        return []


def _country(meta: Mapping[str, str]) -> str:
    for header in COUNTRY_HEADERS:
        value = meta.get(header, "").strip().upper()
        if COUNTRY_PATTERN.fullmatch(value) and value != "XX":
            return value
    return ""


def _is_https(meta: Mapping[str, str]) -> bool:
    if meta.get("wsgi.url_scheme") == "https":
        return True
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    return bool(proxy_header) and meta.get(proxy_header[0], "").split(",")[0].strip() == proxy_header[1]


def destination_with(destination: str, parameters: list[tuple[str, str]]) -> str:
    """The stored destination with ``parameters`` added to its query; same-named ones are replaced, the
    rest of its query and its fragment are kept as they are."""
    parts = urlsplit(destination)
    replaced = {name for name, _value in parameters}
    kept = [piece for piece in parts.query.split("&") if piece and unquote_plus(piece.split("=")[0]) not in replaced]
    query = "&".join([*kept, urlencode(parameters)])
    return iri_to_uri(urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment)))


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs five times as much, per click
class Visit:
    """What one request says about its visitor, read before the link is known; ``entry`` turns it into the
    buffer entry for a link (the click path calls it only for an active link)."""

    kind: str
    meta: Mapping[str, str]
    click_id: str
    moment: int  # microseconds since the epoch
    user_agent: str
    bot: bool
    values: dict[str, str]  # query parameters, cut to VALUE_LENGTH
    referrer: str

    @classmethod
    def of(cls, kind: str, meta: Mapping[str, str]) -> "Visit":
        user_agent = _text(meta, "HTTP_USER_AGENT", USER_AGENT_LENGTH)
        bot = meta.get("REQUEST_METHOD") == "HEAD" or is_bot(user_agent=user_agent, meta=meta)
        parameters = _parameters(meta) if kind == CLICK else []
        referrer = _text(meta, "HTTP_REFERER", REFERRER_LENGTH) if kind == CLICK else ""
        values = {name: _clean(value, VALUE_LENGTH) for name, value in parameters}
        return cls(kind, meta, uuid.uuid4().hex, time.time_ns() // 1000, user_agent, bot, values, referrer)

    def entry(self, link: CachedLink) -> dict:
        entry = {"k": self.kind, "id": self.click_id, "t": self.moment, "p": link.program_id, "l": link.link_id}
        entry.update(a=link.affiliate_id, o=link.offer_id, b=int(self.bot))
        if self.kind == CLICK:
            ip = client_ip(self.meta)
            entry.update(
                s=[self.values.get(f"sub{number}", "") for number in range(1, SUB_COUNT + 1)],
                r=self.referrer,
                u=self.user_agent,
                ih=ip_hash(link.program_id, ip),
                vh=visitor_hash(link.program_id, ip, self.user_agent),
                c=_country(self.meta),
                src=traffic_source(utm_medium=self.values.get("utm_medium", ""), referrer=self.referrer),
            )
        return entry


def serve(kind: str, code: str, meta: Mapping[str, str]) -> Reply:
    """Answer a click (``c``) or an impression (``i``) on link ``code`` and record it."""
    if meta.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
        return Reply(405, headers=[("Allow", "GET, HEAD")])
    code = code.rstrip("/")
    if not CODE_PATTERN.fullmatch(code):
        return not_found(meta)  # Checked before the cache: random junk never reaches Redis or the database.
    visit = Visit.of(kind, meta)
    try:
        link, extras = track_event(code, visit.entry)
    except DatabaseError:
        logger.exception("Link %s could not be loaded.", code)
        with translation.override(visitor_language(meta)):
            return _page(503, _("Please try again in a moment."))
    if link is None or not link.active:
        return not_found(meta)
    if kind == IMPRESSION:
        return Reply(200, "image/gif", PIXEL, [NO_STORE, ("Pragma", "no-cache"), ("Expires", "0")])

    moment = datetime.fromtimestamp(visit.moment / 1_000_000, tz=UTC)
    # Every human click counts against the caps (click_cap_reached counts it), with a fallback page or not.
    capped = not visit.bot and extras is not None and bool(extras.caps) and click_cap_reached(link, extras, moment)
    if capped and link.fallback_url:
        # Over the cap the visitor goes to the fallback page: no click id, no cookie for this offer.
        return Reply(302, headers=[("Location", iri_to_uri(link.fallback_url)), NO_STORE])
    utm = [(name, value) for name, value in visit.values.items() if UTM_PATTERN.fullmatch(name)]
    location = destination_with(link.destination, [(link.click_id_param, visit.click_id), *utm[:MAX_UTM_PARAMETERS]])
    cookie = (f"gp_click_{link.offer_id}", visit.click_id, link.cookie_days * 86400, _is_https(meta))
    return Reply(302, headers=[("Location", location), NO_STORE], cookie=cookie)


def _cookie_header(cookie: tuple[str, str, int, bool]) -> str:
    name, value, max_age, secure = cookie
    return f"{name}={value}; Max-Age={max_age}; Path=/; SameSite=Lax; HttpOnly" + ("; Secure" if secure else "")


def _close_old_connections() -> None:
    # Django's handler does this when a request starts and when it ends (drop broken or expired connections);
    # these paths bypass it and do it at the end: a connection found broken or too old then is closed before
    # the next request. Never inside a transaction: the tests call the dispatcher within theirs.
    if not connection.in_atomic_block:
        close_old_connections()


@cache
def _checks_connection_health() -> bool:
    """Whether a database has CONN_HEALTH_CHECKS, which Django arms at the start of each request."""
    return any(database.get("CONN_HEALTH_CHECKS") for database in settings.DATABASES.values())


POSTBACK_PATH = re.compile(r"/postback/(?P<slug>[-a-zA-Z0-9_]+)/?")


class TrackingDispatcher:
    """WSGI middleware: /c/ and /i/ are answered by ``serve``, /postback/<slug> by its view without Django's
    middleware stack (sessions, CSRF, auth, messages, tenancy: a server-to-server call needs none of them;
    the view authenticates by token and enters the program's scope itself); everything else goes to Django.
    """

    def __init__(self, django_application: Callable) -> None:
        self.django_application = django_application

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path[:3] in ("/c/", "/i/"):
            return self._click(environ, start_response, path)
        if path.startswith("/postback/") and (match := POSTBACK_PATH.fullmatch(path)):
            return self._postback(environ, start_response, match["slug"])
        return self.django_application(environ, start_response)

    def _click(self, environ: dict, start_response: Callable, path: str) -> Iterable[bytes]:
        try:
            reply = serve(path[1], path[3:], environ)
        finally:
            _close_old_connections()
        headers = [("Content-Type", reply.content_type), ("Content-Length", str(len(reply.body))), *reply.headers]
        if reply.cookie:
            headers.append(("Set-Cookie", _cookie_header(reply.cookie)))
        start_response(reply.status_line, headers)
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else reply.body]

    def _postback(self, environ: dict, start_response: Callable, slug: str) -> Iterable[bytes]:
        if _checks_connection_health():  # Django's request_started: the first query then checks the connection
            _close_old_connections()
        # Answers in the caller's language: a worker thread keeps the language of the last page it served.
        with translation.override(visitor_language(environ)):
            try:
                status, body = answer_postback(slug, environ, lambda: wsgi_params(environ))
            except Exception:
                logger.exception("Postback to %s failed.", slug)
                message = _("Something went wrong; the postback was not recorded. Please retry.")
                status, body = 500, {"error": {"code": "server_error", "message": message, "field": None}}
            finally:
                _close_old_connections()
        # What JsonResponse would send, without building one: the body as DjangoJSONEncoder writes it (plain
        # values, the usual case, are what json.dumps writes; DjangoJSONEncoder handles the rest).
        try:
            content = json.dumps(body).encode()
        except TypeError:
            content = json.dumps(body, cls=DjangoJSONEncoder).encode()
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(content))),
            ("X-Content-Type-Options", "nosniff"),
        ]
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [content]


def _django_response(reply: Reply) -> HttpResponse:
    response = HttpResponse(reply.body, status=reply.status, content_type=reply.content_type)
    for name, value in reply.headers:
        response[name] = value
    if reply.cookie:
        name, value, max_age, secure = reply.cookie
        response.set_cookie(name, value, max_age=max_age, secure=secure, httponly=True, samesite="Lax")
    return response


def click_view(request: HttpRequest, code: str) -> HttpResponse:
    """The click redirect for ``manage.py runserver`` and the test client (gunicorn uses TrackingDispatcher)."""
    return _django_response(serve(CLICK, code, request.META))


def impression_view(request: HttpRequest, code: str) -> HttpResponse:
    """The impression pixel for ``manage.py runserver`` and the test client."""
    return _django_response(serve(IMPRESSION, code, request.META))
