"""Clicks and impressions: recorded in a Redis stream at click time, drained into the database in batches.

The redirect (tracking.clickpath) calls ``lookup_link`` and ``record_event``; the drain task calls
``drain_buffer``; the conversion service calls ``find_click``. Durability, idempotency and the rules for
unique clicks are described in docs/tracking.md.

- With a Redis buffer (REDIS_URL set and CLICK_BUFFER != "database") a click is one XADD; the drain inserts
  batches with ON CONFLICT (click_id) DO NOTHING, so a batch retried after a crash inserts nothing twice.
- If Redis does not answer within CLICK_REDIS_TIMEOUT, the click is written straight to the database and a
  circuit breaker keeps this process off Redis for CLICK_REDIS_RETRY_SECONDS, so a dead Redis costs one
  timeout per interval, not one per click.
- Without Redis (``make run``) or with CLICK_BUFFER=database, every click is written straight away.
- ``is_unique`` is decided when a click is stored (drain or direct write), against the database and the
  rest of its batch: the first click of a visitor on a link per program-local day.
"""

import contextlib
import csv
import hashlib
import io
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

import redis
from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache, RedisSerializer
from django.db import DatabaseError, connection, transaction
from django.db.models import Model
from django_scopes import scope, scopes_disabled
from redis.backoff import NoBackoff
from redis.exceptions import LockError, NoScriptError, RedisError
from redis.retry import Retry

from affiliates.models import AffiliateStatus, Program
from affiliates.services import STATUS_GENERATION_KEY
from tracking.dirty import mark_events_dirty
from tracking.links import LINK_CACHE_PREFIX, CachedLink, load_link
from tracking.models import Cap, Click, Impression, Link, Offer

logger = logging.getLogger(__name__)

CLICK = "c"
IMPRESSION = "i"
EXTRAS_CACHE_PREFIX = "linkextras:"
SUB_COUNT = 5


# --- The Redis connection and its circuit breaker ---------------------------------------------------------


class EventBuffer:
    """The Redis behind the click path: short timeouts, no retries, and a breaker that opens on failure."""

    def __init__(self, url: str, *, timeout: float, retry_seconds: float) -> None:
        self.url = url
        self.retry_seconds = retry_seconds
        # No retries: redis-py's default retries with backoff would hold a click for seconds on a dead Redis.
        options = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "retry": Retry(NoBackoff(), 0)}
        self.client = redis.Redis.from_url(url, **options)
        # The drain moves thousands of entries per call: it gets more patience than a click.
        self.drain_client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=1)
        self._down_until = 0.0
        self._lock = threading.Lock()
        self._local = threading.local()

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def failed(self, error: Exception) -> None:
        with self._lock:
            if self.available:
                logger.warning("Click buffer unreachable (%s); writing clicks to the database.", error)
            self._down_until = time.monotonic() + self.retry_seconds

    def key(self, name: str) -> str:
        return f"{settings.CLICK_REDIS_PREFIX}{name}"

    def record_if_unchanged(self, *, keys: list[str], digest: str, generation: bytes, entry: str) -> list:
        """Run RECORD_IF_UNCHANGED: [link entry, extras entry, status generation, 1 if the event was appended].

        Over this thread's own connection, without the client's pool and command layers: the click's one round
        trip then costs a third of the CPU of two client commands (bench/click.py). On any error the connection
        is dropped, so a half-read answer is never taken for the next one.
        """
        connection_ = getattr(self._local, "connection", None)
        if connection_ is None:
            connection_ = self._local.connection = self.client.connection_pool.make_connection()
        arguments = (len(keys) + 1, *keys, self.stream, digest, generation, settings.CLICK_STREAM_MAXLEN, entry)
        try:
            try:
                connection_.send_command("EVALSHA", RECORD_IF_UNCHANGED_SHA, *arguments)
                return connection_.read_response()
            except NoScriptError:  # a restarted or flushed Redis has forgotten the script
                connection_.send_command("EVAL", RECORD_IF_UNCHANGED, *arguments)
                return connection_.read_response()
        except (RedisError, OSError):
            connection_.disconnect()
            raise

    @property
    def stream(self) -> str:
        return self.key("events")


# Runs inside Redis. It reads what a click reads (the cached link, its extras, the affiliates' status
# generation) and appends the event only when the link's entry and the generation are byte for byte what this
# process last saw on an active link, so nothing is recorded for a link paused or re-cached since; otherwise it
# writes nothing and the caller decides from what was read, as on a first click. MGET answers false for a
# missing key, which Redis returns as nil without shortening the array.
RECORD_IF_UNCHANGED = """
local found = redis.call('MGET', KEYS[1], KEYS[2], KEYS[3])
local recorded = 0
if found[1] and redis.sha1hex(found[1]) == ARGV[1] and (found[3] or '') == ARGV[2] then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*', 'e', ARGV[4])
  recorded = 1
end
return {found[1], found[2], found[3], recorded}
"""
RECORD_IF_UNCHANGED_SHA = hashlib.sha1(RECORD_IF_UNCHANGED.encode(), usedforsecurity=False).hexdigest()

_buffers: dict[tuple, EventBuffer] = {}


def event_buffer() -> EventBuffer | None:
    """This process's connection to the click buffer's Redis, or None when no Redis is configured."""
    url = settings.CLICK_BUFFER_URL
    if not url:
        return None
    config = (url, settings.CLICK_REDIS_TIMEOUT, settings.CLICK_REDIS_RETRY_SECONDS)
    buffer = _buffers.get(config)
    if buffer is None:
        buffer = _buffers.setdefault(config, EventBuffer(url, timeout=config[1], retry_seconds=config[2]))
    return buffer


def buffering() -> bool:
    """Whether clicks go to the Redis stream (True) or straight to the database."""
    return bool(settings.CLICK_BUFFER_URL) and settings.CLICK_BUFFER != "database"


# --- The link as the redirect sees it ---------------------------------------------------------------------


@dataclass(frozen=True)
class LinkExtras:
    """What the redirect needs beyond CachedLink: the program's time zone and the click caps that apply."""

    timezone: str
    caps: tuple[tuple[int, str, int], ...] = ()  # (cap id, period, limit)


_serializer = RedisSerializer()


def _link_keys(code: str) -> list[str]:
    return [LINK_CACHE_PREFIX + code, EXTRAS_CACHE_PREFIX + code, STATUS_GENERATION_KEY]


def _shared_buffer(buffer: EventBuffer | None) -> bool:
    """Whether the Django cache lives in the buffer's Redis, so the click path can read it over the buffer."""
    default = settings.CACHES["default"]
    return (
        buffer is not None
        and isinstance(caches["default"], RedisCache)
        and default.get("LOCATION") == settings.CLICK_BUFFER_URL
    )


def _stored_keys(keys: list[str]) -> list[str]:
    return [caches["default"].make_and_validate_key(key) for key in keys]


def _loads(raw: bytes | None):
    return None if raw is None else _serializer.loads(raw)


@dataclass(frozen=True)
class SeenLink:
    """An active link as this process last read it from the cache: what the one-round-trip click checks."""

    link: CachedLink
    keys: list[str]  # the Redis keys of the link's entry, its extras and the status generation
    digest: str  # SHA-1 of the link's cache entry as stored
    generation: bytes  # the affiliates' status generation as stored (b"" when unset)


# Per process, bounded, and only a shortcut: every click checks the entry against Redis before using it.
_seen: dict[str, SeenLink] = {}
SEEN_LIMIT = 10_000


def _current(link_data: dict | None, generation) -> bool:
    """Whether a link's cache entry can be used as it is: cached ({} is a cached "no such code"), and read after
    the last change of an affiliate's status (a suspended affiliate's link must stop at once)."""
    return link_data is not None and (not link_data or link_data.get("status_generation", 0) == (generation or 0))


def _decide(code: str, link_data, extras_data, generation) -> tuple[CachedLink | None, LinkExtras | None]:
    """The link and extras from what the cache held, reading the database for what is missing or stale."""
    if _current(link_data, generation):
        link = CachedLink(**link_data) if link_data else None
    else:
        link = load_link(code, status_generation=generation or 0)  # reads the database and caches
    if link is None or not link.active:
        return link, None
    return link, _extras_for(code, link, extras_data)


def _extras_for(code: str, link: CachedLink, extras_data: dict | None) -> LinkExtras:
    """The link's extras from their cache entry, or from the database (and then cached) when it is missing."""
    if extras_data is not None:
        return LinkExtras(timezone=extras_data["timezone"], caps=tuple(map(tuple, extras_data["caps"])))
    extras = extras_from_database(link)
    cache.set(
        EXTRAS_CACHE_PREFIX + code,
        {"timezone": extras.timezone, "caps": extras.caps},
        settings.CLICK_EXTRAS_CACHE_SECONDS,
    )
    return extras


def _decide_raw(code: str, keys: list[str], found: list) -> tuple[CachedLink | None, LinkExtras | None]:
    """``_decide`` on the raw entries of ``keys`` in Redis; an active link read from the cache as it is is kept
    in ``_seen`` for the next click's one round trip."""
    link_raw, extras_raw, generation_raw = found
    link_data, generation = _loads(link_raw), _loads(generation_raw)
    link, extras = _decide(code, link_data, _loads(extras_raw), generation)
    if link is not None and link.active and _current(link_data, generation):
        if len(_seen) >= SEEN_LIMIT:
            _seen.clear()
        digest = hashlib.sha1(link_raw, usedforsecurity=False).hexdigest()
        _seen[code] = SeenLink(link, keys, digest, generation_raw or b"")
    else:
        _seen.pop(code, None)
    return link, extras


def lookup_link(code: str) -> tuple[CachedLink | None, LinkExtras | None]:
    """The link behind ``code`` and its extras: one cache round trip when warm, the database when Redis is down."""
    buffer = event_buffer()
    if buffer is not None and not buffer.available:
        return link_from_database(code)
    try:
        if _shared_buffer(buffer):
            # Through the buffer's client, which fails fast (no retries) and is built once; Django's RedisCache
            # builds a redis.Redis per call, which costs about as much as the rest of the click.
            keys = _stored_keys(_link_keys(code))
            return _decide_raw(code, keys, buffer.client.mget(keys))
        keys = _link_keys(code)
        found = cache.get_many(keys)
        return _decide(code, *(found.get(key) for key in keys))
    except RedisError as error:
        if buffer is not None:
            buffer.failed(error)
        return link_from_database(code)


def track_event(code: str, entry_for: Callable[[CachedLink], dict]) -> tuple[CachedLink | None, LinkExtras | None]:
    """Look up the link behind ``code`` and, when it is active, record the event ``entry_for(link)`` describes.

    The redirect's whole conversation with Redis: for a link this process has already seen active, one round
    trip (RECORD_IF_UNCHANGED reads the link and appends the event if the link is unchanged); otherwise, or when
    it has changed, a lookup and an append. Without a working buffer, a lookup and a direct write.
    """
    buffer = event_buffer() if buffering() else None
    seen = _seen.get(code) if buffer is not None and buffer.available and _shared_buffer(buffer) else None
    if seen is None:
        link, extras = lookup_link(code)
        if link is not None and link.active:
            _record_safely(entry_for(link), extras)
        return link, extras
    # A link's ids never change, so the event can be built from the link as last seen.
    entry = entry_for(seen.link)
    try:
        *found, recorded = buffer.record_if_unchanged(
            keys=seen.keys,
            digest=seen.digest,
            generation=seen.generation,
            entry=json.dumps(entry, separators=(",", ":")),
        )
    except (RedisError, OSError) as error:
        # The script may or may not have run: the database gets the same event id, and the drain's
        # ON CONFLICT (click_id) DO NOTHING keeps the click single either way.
        buffer.failed(error)
        link, extras = link_from_database(code)
        if link is not None and link.active:
            _record_safely(entry, extras)
        return link, extras
    if recorded:
        return seen.link, _extras_for(code, seen.link, _loads(found[1]))
    link, extras = _decide_raw(code, seen.keys, found)
    if link is not None and link.active:
        _record_safely(entry_for(link), extras)
    return link, extras


def _record_safely(entry: dict, extras: LinkExtras | None) -> None:
    try:
        record_event(entry, timezone_name=extras.timezone if extras else None)
    except DatabaseError:
        # Redis and the database both failed: the visitor still gets the page; the loss is logged loudly.
        logger.exception("Click %s could not be recorded anywhere.", entry["id"])


def link_from_database(code: str) -> tuple[CachedLink | None, LinkExtras | None]:
    """The same answer as ``load_link`` plus extras, without the cache: for when Redis is unreachable."""
    # Keep in step with tracking.links.load_link: the active rule must be the same on both paths.
    with scopes_disabled():
        link = Link.objects.select_related("offer", "affiliate").filter(code=code).first()
    if link is None:
        return None, None
    offer = link.offer
    cached = CachedLink(
        code=code,
        program_id=link.program_id,
        link_id=link.pk,
        affiliate_id=link.affiliate_id,
        offer_id=offer.pk,
        destination=link.landing_url or offer.destination_url,
        click_id_param=offer.click_id_param,
        cookie_days=offer.cookie_window_days,
        fallback_url=offer.fallback_url,
        active=(
            link.status == Link.Status.ACTIVE
            and offer.status == Offer.Status.ACTIVE
            and link.affiliate.status == AffiliateStatus.APPROVED
        ),
    )
    return cached, extras_from_database(cached) if cached.active else None


def extras_from_database(link: CachedLink) -> LinkExtras:
    """The program's time zone and the click caps on the link's offer and affiliate (or program-wide)."""
    with scopes_disabled():
        timezone_name = Program.objects.filter(pk=link.program_id).values_list("timezone", flat=True).first()
        # A program has a handful of caps: filtering them here is simpler than NULL-aware SQL.
        caps = [
            (cap.pk, cap.period, int(cap.limit))
            for cap in Cap.objects.filter(program_id=link.program_id, metric=Cap.Metric.CLICKS).order_by("pk")
            if cap.offer_id in (None, link.offer_id) and cap.affiliate_id in (None, link.affiliate_id)
        ]
    return LinkExtras(timezone=timezone_name or "UTC", caps=tuple(caps))


def forget_link_extras(codes: Iterable[str]) -> None:
    """Drop cached extras (caps, time zone) so a changed cap reaches the redirect before the cache expires."""
    cache.delete_many([EXTRAS_CACHE_PREFIX + code for code in codes])


# --- Click caps -------------------------------------------------------------------------------------------


def period_bounds(period: str, moment: datetime, timezone_name: str) -> tuple[datetime, datetime, str]:
    """The UTC bounds [start, end) of the program-local day or month holding ``moment``, and its label."""
    zone = ZoneInfo(timezone_name)
    local = moment.astimezone(zone)
    if period == Cap.Period.MONTH:
        start_day = local.date().replace(day=1)
        end_day = (start_day + timedelta(days=32)).replace(day=1)
        label = start_day.strftime("%Y-%m")
    else:
        start_day = local.date()
        end_day = start_day + timedelta(days=1)
        label = start_day.isoformat()
    return _local_midnight(start_day, zone), _local_midnight(end_day, zone), label


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def click_cap_reached(link: CachedLink, extras: LinkExtras, moment: datetime) -> bool:
    """Count this click against the link's click caps; True when one of them is now exceeded."""
    buffer = event_buffer()
    counters = []
    for cap_id, period, limit in extras.caps:
        start, end, label = period_bounds(period, moment, extras.timezone)
        counters.append((buffer.key(f"cap:{cap_id}:{label}") if buffer else "", start, end, limit, cap_id))
    if buffer is not None and buffer.available:
        try:
            pipe = buffer.client.pipeline(transaction=False)
            for key, _start, end, _limit, _cap_id in counters:
                pipe.incr(key)
                # Relative, not EXPIREAT: Redis's clock need not agree with ours. A day of slack past the end.
                pipe.expire(key, int((end - moment).total_seconds()) + 86400)
            counts = pipe.execute()[::2]
            return any(count > limit for count, (*_, limit, _cap_id) in zip(counts, counters, strict=True))
        except RedisError as error:
            buffer.failed(error)
    # No Redis: count stored clicks, this one included (the redirect records a click before counting it against
    # the caps, and without Redis it was written straight away). Clicks still in a buffer that just went down
    # are not seen.
    with scopes_disabled():
        for _key, start, end, limit, cap_id in counters:
            cap = Cap.objects.filter(pk=cap_id).values("offer_id", "affiliate_id").first()
            if cap is None:
                continue
            clicks = Click.objects.filter(program_id=link.program_id, created_at__gte=start, created_at__lt=end)
            clicks = clicks.filter(is_bot=False)
            if cap["offer_id"]:
                clicks = clicks.filter(offer_id=cap["offer_id"])
            if cap["affiliate_id"]:
                clicks = clicks.filter(affiliate_id=cap["affiliate_id"])
            if clicks.count() > limit:
                return True
    return False


# --- Recording --------------------------------------------------------------------------------------------


def record_event(entry: dict, *, timezone_name: str | None = None) -> None:
    """Buffer one click or impression entry in Redis, or store it at once when there is no working buffer."""
    buffer = event_buffer() if buffering() else None
    if buffer is not None and buffer.available:
        try:
            buffer.client.xadd(
                buffer.stream,
                {"e": json.dumps(entry, separators=(",", ":"))},
                maxlen=settings.CLICK_STREAM_MAXLEN,
                approximate=True,
            )
            return
        except RedisError as error:
            buffer.failed(error)
    timezones = {entry["p"]: timezone_name} if timezone_name else None
    store_events([entry], timezones=timezones, checked=True)


# --- Storing: one path for the drain and for direct writes --------------------------------------------------


class ClickRow(NamedTuple):
    """A click as it is stored: the drain builds thousands per batch, and COPY takes tuples as they are."""

    program_id: int
    click_id: uuid.UUID
    link_id: int
    affiliate_id: int
    offer_id: int
    created_at: datetime
    sub1: str
    sub2: str
    sub3: str
    sub4: str
    sub5: str
    referrer: str
    user_agent: str
    ip_hash: str
    visitor_hash: str
    country: str
    source: str
    is_unique: bool
    is_bot: bool


class ImpressionRow(NamedTuple):
    """An impression as it is stored."""

    program_id: int
    event_id: uuid.UUID
    link_id: int
    affiliate_id: int
    offer_id: int
    created_at: datetime
    is_bot: bool


CLICK_FIELDS = ClickRow._fields
IMPRESSION_FIELDS = ImpressionRow._fields
NO_SUBS = ("",) * SUB_COUNT


def _moment(microseconds: int) -> datetime:
    return datetime.fromtimestamp(microseconds / 1_000_000, tz=UTC)


def _click_row(entry: dict) -> ClickRow:
    """A click row from a buffer entry; is_unique is decided when it is stored."""
    get = entry.get
    subs = (*get("s", ()), *NO_SUBS)
    return ClickRow(
        program_id=entry["p"],
        click_id=uuid.UUID(entry["id"]),
        link_id=entry["l"],
        affiliate_id=entry["a"],
        offer_id=entry["o"],
        created_at=_moment(entry["t"]),
        sub1=subs[0],
        sub2=subs[1],
        sub3=subs[2],
        sub4=subs[3],
        sub5=subs[4],
        referrer=get("r", ""),
        user_agent=get("u", ""),
        ip_hash=get("ih", ""),
        visitor_hash=get("vh", ""),
        country=get("c", ""),
        source=get("src", "direct"),
        is_unique=True,
        is_bot=bool(get("b")),
    )


def _impression_row(entry: dict) -> ImpressionRow:
    return ImpressionRow(
        program_id=entry["p"],
        event_id=uuid.UUID(entry["id"]),
        link_id=entry["l"],
        affiliate_id=entry["a"],
        offer_id=entry["o"],
        created_at=_moment(entry["t"]),
        is_bot=bool(entry.get("b")),
    )


UNIQUE_KEYS_PER_QUERY = 500


def mark_unique_clicks(clicks: list[ClickRow], timezones: Mapping[int, str]) -> list[ClickRow]:
    """The clicks with is_unique set: the first click of a visitor on a link per program-local day, in the DB or
    this batch. For direct writes and other databases; the PostgreSQL drain applies the rule in SQL (_copy_clicks).
    """
    keys = []
    days = {}
    for click in clicks:
        zone = timezones[click.program_id]
        local_day = click.created_at.astimezone(ZoneInfo(zone)).date()
        if (zone, local_day) not in days:
            days[zone, local_day] = period_bounds(Cap.Period.DAY, click.created_at, zone)[:2]
        start, end = days[zone, local_day]
        keys.append((click.link_id, click.ip_hash, click.visitor_hash, start, end))
    seen = _stored_visitor_days(sorted(set(keys), key=str)) if keys else set()
    marked = list(clicks)
    for index in sorted(range(len(clicks)), key=lambda index: clicks[index].created_at):
        link_id, _ip, visitor, start, _end = keys[index]
        marked[index] = clicks[index]._replace(is_unique=(link_id, visitor, start) not in seen)
        seen.add((link_id, visitor, start))
    return marked


def _stored_visitor_days(keys: list[tuple]) -> set[tuple]:
    """Which (link, visitor, local day start) of ``keys`` already have a stored click.

    One EXISTS per key over the (link, ip_hash, created_at) index, stopping at the first match: a visitor
    with thousands of clicks today costs as little as one with a single click.
    """
    table = Click._meta.db_table
    adapt = connection.ops.adapt_datetimefield_value
    found = set()
    for offset in range(0, len(keys), UNIQUE_KEYS_PER_QUERY):
        chunk = keys[offset : offset + UNIQUE_KEYS_PER_QUERY]
        values = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(chunk))
        params = []
        for number, (link, ip, visitor, start, end) in enumerate(chunk):
            params += [number, link, ip, visitor, adapt(start), adapt(end)]
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH wanted (number, link_id, ip_hash, visitor_hash, day_start, day_end) AS (VALUES {values}) "  # noqa: S608
                f"SELECT wanted.number FROM wanted WHERE EXISTS (SELECT 1 FROM {table} AS click "
                "WHERE click.link_id = wanted.link_id AND click.ip_hash = wanted.ip_hash "
                "AND click.visitor_hash = wanted.visitor_hash "
                "AND click.created_at >= wanted.day_start AND click.created_at < wanted.day_end)",
                params,
            )
            numbers = [row[0] for row in cursor.fetchall()]
        found.update((chunk[number][0], chunk[number][2], chunk[number][3]) for number in numbers)
    return found


def _stage(model: type[Model], rows: list[NamedTuple]) -> str:
    """PostgreSQL: COPY the rows into this session's staging table for ``model`` and return the table's name."""
    table = model._meta.db_table
    stage = f"goalpost_stage_{table}"
    columns = ", ".join(rows[0]._fields)
    buffer = io.StringIO()
    # csv writes str() of each value, which PostgreSQL reads back as the same int, uuid, timestamp and boolean.
    csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    buffer.seek(0)
    with connection.cursor() as cursor:
        # A temp table: no WAL, created once per connection, emptied at commit. Names come from code, not input.
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS "  # noqa: S608
            f"SELECT {columns} FROM {table} WITH NO DATA"
        )
        # Already empty after a commit, but a caller's transaction (find_click) may store twice before it commits.
        cursor.execute(f"TRUNCATE {stage}")
        cursor.copy_expert(f"COPY {stage} ({columns}) FROM STDIN WITH (FORMAT csv)", buffer)
    return stage


def _copy_insert(model: type[Model], rows: list[NamedTuple], conflict: str) -> int:
    """PostgreSQL: stage the rows, then INSERT … SELECT … ON CONFLICT DO NOTHING; returns how many were inserted."""
    stage = _stage(model, rows)
    columns = ", ".join(rows[0]._fields)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {model._meta.db_table} ({columns}) SELECT {columns} FROM {stage} "  # noqa: S608
            f"ON CONFLICT ({conflict}) DO NOTHING"
        )
        return cursor.rowcount


def _copy_clicks(rows: list[ClickRow], timezones: Mapping[int, str]) -> int:
    """PostgreSQL: stage the clicks, flag the repeats, and insert them with INSERT … SELECT … ON CONFLICT DO NOTHING.

    mark_unique_clicks's rule in two statements over the staged batch instead of a lookup query per key: a click
    is unique when no stored click has its (link, visitor, program-local day) and it is the first of its key in
    the batch by time. A batch read again after a crash finds its own clicks stored, flags them, and ON CONFLICT
    skips them anyway. Returns how many were inserted.
    """
    stage = _stage(Click, rows)
    table = Click._meta.db_table
    columns = ", ".join(name for name in CLICK_FIELDS if name != "is_unique")
    # KeyError for a program without a time zone, as in mark_unique_clicks, rather than a silently dropped click.
    zones = {program_id: timezones[program_id] for program_id in {row.program_id for row in rows}}
    zone_params = [value for program_id, name in sorted(zones.items()) for value in (program_id, name)]
    zone_values = f"(VALUES {', '.join(['(%s::bigint, %s::text)'] * len(zones))}) AS zone (program_id, name)"
    local_day = f"date_trunc('day', {stage}.created_at AT TIME ZONE zone.name)"
    with connection.cursor() as cursor:
        # Its own statement, not a subquery of the INSERT: a subquery scanning tracking_click while the INSERT adds
        # to it visits every row inserted so far, which on a small table (the planner then prefers a sequential
        # scan) made the first batch quadratic. One EXISTS per click over the (link, ip_hash, created_at) index;
        # the day's bounds are its local midnights, as period_bounds computes them.
        cursor.execute(
            f"UPDATE {stage} SET is_unique = false FROM {zone_values} "  # noqa: S608
            f"WHERE zone.program_id = {stage}.program_id AND EXISTS (SELECT 1 FROM {table} AS stored "
            f"WHERE stored.link_id = {stage}.link_id AND stored.ip_hash = {stage}.ip_hash "
            f"AND stored.visitor_hash = {stage}.visitor_hash "
            f"AND stored.created_at >= {local_day} AT TIME ZONE zone.name "
            f"AND stored.created_at < ({local_day} + interval '1 day') AT TIME ZONE zone.name)",
            zone_params,
        )
        cursor.execute(
            f"INSERT INTO {table} ({columns}, is_unique) "  # noqa: S608
            f"SELECT {columns}, is_unique AND row_number() OVER (PARTITION BY link_id, visitor_hash, {local_day} "
            f"ORDER BY created_at, click_id) = 1 FROM {stage} JOIN {zone_values} USING (program_id) "
            "ON CONFLICT (click_id) DO NOTHING",
            zone_params,
        )
        return cursor.rowcount


def _copying(rows: list) -> bool:
    """Whether rows go in through COPY (PostgreSQL, more than one row) rather than bulk_create."""
    return settings.CLICK_DRAIN_METHOD == "copy" and connection.vendor == "postgresql" and len(rows) > 1


def insert_ignoring_duplicates(model: type[Model], rows: list[NamedTuple], conflict: str) -> None:
    """Insert rows (named after the model's columns), skipping any whose ``conflict`` key is already stored."""
    if _copying(rows):
        _copy_insert(model, rows, conflict)
    elif rows:
        model.objects.bulk_create([model(**row._asdict()) for row in rows], batch_size=500, ignore_conflicts=True)


def store_events(entries: list[dict], *, timezones: Mapping[int, str] | None = None, checked: bool = False) -> int:
    """Store click and impression entries in one transaction; entries already stored are skipped.

    Unless ``checked`` (the caller just loaded the link), entries whose link is gone or belongs to another
    program are dropped and logged: a buffered click can outlive its link or program.
    """
    if not entries:
        return 0
    with scopes_disabled(), transaction.atomic():
        if not checked:
            entries = _known_links_only(entries)
        program_ids = {entry["p"] for entry in entries}
        if not timezones or not program_ids <= timezones.keys():
            timezones = dict(Program.objects.filter(pk__in=program_ids).values_list("pk", "timezone"))
        clicks = [_click_row(entry) for entry in entries if entry["k"] == CLICK]
        impressions = [_impression_row(entry) for entry in entries if entry["k"] == IMPRESSION]
        if _copying(clicks):
            _copy_clicks(clicks, timezones)
        else:
            clicks = mark_unique_clicks(clicks, timezones)
            insert_ignoring_duplicates(Click, clicks, "click_id")
        insert_ignoring_duplicates(Impression, impressions, "event_id")
        # In the same transaction, last: the rollups' record of cells to recompute commits with the events.
        mark_events_dirty(
            events=[(row.program_id, row.affiliate_id, row.created_at) for row in (*clicks, *impressions)],
            timezones=timezones,
        )
    return len(clicks) + len(impressions)


def _known_links_only(entries: list[dict]) -> list[dict]:
    links = dict(Link.objects.filter(pk__in={entry["l"] for entry in entries}).values_list("pk", "program_id"))
    known = [entry for entry in entries if links.get(entry["l"]) == entry["p"]]
    if len(known) < len(entries):
        orphans = [entry["id"] for entry in entries if links.get(entry["l"]) != entry["p"]]
        logger.error("Dropped %d buffered events whose link no longer exists: %s", len(orphans), orphans[:10])
    return known


# --- The drain ----------------------------------------------------------------------------------------------


def _check(entry: dict) -> dict:
    """``entry`` if it has what the redirect writes; KeyError, ValueError or TypeError otherwise."""
    entry["k"], entry["p"], entry["l"], entry["t"]
    uuid.UUID(entry["id"])
    return entry


def _parse(raw_entries: list) -> list[dict]:
    """The batch's entries, checked; unreadable ones are logged and dropped."""
    try:
        # One json.loads for the whole batch: per entry, the calls into the json module cost as much as the parse.
        entries = json.loads(b"[" + b",".join(fields[b"e"] for _entry_id, fields in raw_entries) + b"]")
        if len(entries) == len(raw_entries):  # an entry holding "{...},{...}" would read as two
            return [_check(entry) for entry in entries]
    except (KeyError, ValueError, TypeError):
        pass  # some entry is not what the redirect writes: find it, one entry at a time
    entries = []
    for entry_id, fields in raw_entries:
        try:
            entry = _check(json.loads(fields[b"e"]))
        except (KeyError, ValueError, TypeError):
            logger.error("Dropped an unreadable click buffer entry %s: %r", entry_id, fields)
            continue
        entries.append(entry)
    return entries


def _forget_after_commit(buffer: EventBuffer, last_id: bytes) -> None:
    """Once the rows commit, delete the drained entries: the stream's entries up to and including ``last_id``."""
    milliseconds, sequence = last_id.split(b"-")
    # XTRIM MINID deletes what is older than its id, so the id just past the batch's last one. Every entry up to
    # last_id was read by this drain (it starts at the stream's beginning, and XADD only appends), so one trim
    # deletes exactly what XDEL of each id would, without sending thousands of ids.
    after_last = f"{int(milliseconds)}-{int(sequence) + 1}"

    def forget() -> None:
        try:
            buffer.drain_client.xtrim(buffer.stream, minid=after_last, approximate=False)
        except RedisError:
            # Harmless: the next drain reads these entries again and ON CONFLICT skips them.
            logger.warning("Could not delete drained entries up to %s from the click buffer.", last_id)

    # Inside a caller's transaction (find_click from a conversion service) the entries must stay in Redis
    # until the rows are committed: a rollback would otherwise lose them.
    transaction.on_commit(forget)


def drain_buffer(*, limit: int = 1_000_000, wait: float = 0) -> int:
    """Move up to ``limit`` buffered events into the database, oldest first; returns how many were read.

    One drain runs at a time (a Redis lock); ``wait`` seconds is how long to wait for a running one.
    """
    buffer = event_buffer()
    if buffer is None:
        return 0
    client = buffer.drain_client
    lock = client.lock(
        buffer.key("events:drain-lock"),
        timeout=settings.CLICK_DRAIN_LOCK_SECONDS,
        blocking=wait > 0,
        blocking_timeout=wait or None,
    )
    try:
        if not lock.acquire():
            return 0
    except RedisError as error:
        logger.warning("Click buffer unreachable for the drain: %s", error)
        return 0
    drained = 0
    start = "-"
    deadline = time.monotonic() + settings.CLICK_DRAIN_LOCK_SECONDS / 2
    try:
        while drained < limit and time.monotonic() < deadline:
            count = min(settings.CLICK_DRAIN_BATCH, limit - drained)
            batch = client.xrange(buffer.stream, min=start, max="+", count=count)
            if not batch:
                break
            store_events(_parse(batch))
            last_id = batch[-1][0]
            _forget_after_commit(buffer, last_id)
            drained += len(batch)
            start = b"(" + last_id
            if len(batch) < count:
                break
    except RedisError as error:
        logger.warning("Click buffer unreachable during the drain: %s", error)
    finally:
        # Expired or Redis gone: the lock frees itself after its timeout.
        with contextlib.suppress(LockError, RedisError):
            lock.release()
    return drained


def buffered_count() -> int:
    """How many events wait in the buffer (0 without Redis)."""
    buffer = event_buffer()
    return buffer.drain_client.xlen(buffer.stream) if buffer else 0


def find_click(*, program: Program, click_id: str | uuid.UUID) -> Click | None:
    """The program's click with this id; drains the buffer once if the click has not been stored yet."""
    try:
        click_uuid = click_id if isinstance(click_id, uuid.UUID) else uuid.UUID(str(click_id))
    except ValueError:
        return None
    with scope(program=program):
        click = Click.objects.filter(program=program, click_id=click_uuid).first()
        if click is None and event_buffer() is not None:
            # Waiting for a running drain matters: it may be inserting this very click right now.
            drain_buffer(wait=settings.CLICK_FIND_WAIT_SECONDS)
            click = Click.objects.filter(program=program, click_id=click_uuid).first()
    return click
