"""The postback hot path on PostgreSQL: one statement reads what a postback needs, one statement writes.

A new click-attributed conversion is what advertisers' servers send all day, so its cost is kept to two
round trips (bench/postback.py measures it):

- ``read_postback_context``: the program and its tracking settings, the click named by ``click_id`` with its
  offer and affiliate, the click-flood count and whether a conversion cap covers the affiliate, and the
  commission rules that could pay the conversion, in one SELECT (LATERAL joins).
- ``insert_conversion``: the conversion, its audit entry, the postback log entry and the rollups' dirty mark
  in one INSERT of data-modifying CTEs, which commits on its own outside a transaction. ``ON CONFLICT DO
  NOTHING`` on the order's unique constraint makes a resent order write nothing.

Only the loading and the writing differ: attribution, commission, fraud flags and status are decided by the
same Python code in tracking.services, on the same model objects, whichever path loaded them. The general
path (the ORM in a transaction) takes everything else: SQLite, conversions an affiliate's caps must count
under row locks, conversions with a customer id (their dirty cells and customer link need more reads),
status updates and duplicates. The environment variable ``TRACKING_SQL_HOT_PATH=0`` turns this module off.
"""

import contextlib
import dataclasses
import hashlib
import json
import operator
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from uuid import UUID

from django.conf import settings as django_settings
from django.db import DEFAULT_DB_ALIAS, connection, models
from django.db.models import Model

from affiliates.models import Affiliate, Program
from tracking.caps import CAP_METRICS
from tracking.instances import attach, loaded_instance
from tracking.models import (
    Cap,
    Click,
    CommissionPlan,
    CommissionRule,
    Conversion,
    ConversionEvent,
    Offer,
    PostbackAttempt,
    StatsDirtyKey,
    TrackingSettings,
)

Key = tuple[int, object]  # (affiliate id, program-local day), as tracking.dirty


def enabled() -> bool:
    return django_settings.TRACKING_SQL_HOT_PATH and _on_postgresql()


@cache
def _on_postgresql() -> bool:
    return connection.vendor == "postgresql"  # a process talks to one kind of database


@dataclass(frozen=True)
class PostbackContext:
    """What one read found: the program (with ``tracking_settings`` loaded), and for ``click_id`` the click
    (offer and affiliate loaded, ``flood_clicks`` and ``affiliate.has_caps`` set) and the candidate commission
    rules of ``kind`` for its affiliate and offer (None when no click was found); and the request's cursor the
    read used, for the write to use too, if the caller keeps one open (postback.answer_postback does)."""

    program: Program
    click_id: UUID | None
    kind: str
    click: Click | None
    rules: list[CommissionRule] | None
    cursor: object = dataclasses.field(default=None, compare=False, repr=False)

    def click_for(self, click_id: UUID | None) -> Click | None:
        return self.click if click_id is not None and click_id == self.click_id else None

    def rules_for(self, *, kind: str, affiliate_id: int, offer_id: int | None) -> list[CommissionRule] | None:
        """The preloaded rules, if they were read for this kind, affiliate and offer."""
        click = self.click
        if self.rules is None or click is None or kind != self.kind:
            return None
        if (affiliate_id, offer_id) != (click.affiliate_id, click.offer_id):
            return None
        return self.rules


# --- Rows to model objects -------------------------------------------------------------------------------------


def _qn(name: str) -> str:
    return connection.ops.quote_name(name)


@cache
def _fields(model: type[Model]) -> tuple:
    """The concrete fields the read loads of ``model``: all, or LOADED's (the first is the primary key)."""
    names = LOADED.get(model)
    fields = model._meta.concrete_fields
    return tuple(fields) if names is None else tuple(field for field in fields if field.attname in names)


def _columns(model: type[Model], alias: str) -> str:
    return ", ".join(f"{alias}.{_qn(field.column)}" for field in _fields(model))


@cache
def _converters(model: type[Model], alias: str) -> tuple[tuple[int, list, object], ...]:
    """(position, converters, column) of the loaded fields whose values the ORM's compiler would convert
    after reading them (JSON, for instance); the other values are used as psycopg2 returns them."""
    result = []
    for position, field in enumerate(_fields(model)):
        column = field.get_col(alias)
        converters = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if converters:
            result.append((position, converters, column))
    return tuple(result)


@cache
def _attnames(model: type[Model]) -> tuple[str, ...] | None:
    return None if model not in LOADED else tuple(field.attname for field in _fields(model))


def _instance(model: type[Model], alias: str, values: tuple) -> Model:
    """The model object the ORM would build from a row of the loaded fields, as ``Model.from_db`` does (the
    fields not loaded are deferred, as after ``.only()``)."""
    values = list(values)
    for position, converters, column in _converters(model, alias):
        for converter in converters:
            values[position] = converter(values[position], column, connection)
    return loaded_instance(model, values, attnames=_attnames(model))


# --- The read --------------------------------------------------------------------------------------------------

READ_PARTS = (
    (Program, "p"),
    (TrackingSettings, "s"),
    (Click, "c"),
    (Offer, "o"),
    (Affiliate, "a"),
    (CommissionRule, "r"),
)
# What recording a conversion reads of the program, the click, its offer and affiliate and the rules (attribution,
# the cookie window, fraud flags, status, "why this payout"); the rest (sub-ids, user agent, contact details, …)
# stays deferred, as after .only(). Every column read costs a postback: psycopg2 decodes each column's name in
# Python, and PostgreSQL builds a projection for it. Reading a deferred field would cost a query by primary key,
# which the scenario tests of tests/tracking/test_hotpath.py look for in every kind of postback.
LOADED = {
    Program: {"id", "slug", "timezone", "currency", "default_cookie_window_days", "postback_token", "created_at"},
    Click: {"id", "program_id", "click_id", "link_id", "affiliate_id", "offer_id", "created_at", "ip_hash", "is_bot"},
    Offer: {"id", "program_id", "name", "cookie_window_days", "status"},
    Affiliate: {"id", "program_id", "user_id", "name", "status", "login_ip_hash"},
    CommissionRule: {f.attname for f in CommissionRule._meta.concrete_fields} - {"created_at"},
}


@cache
def _read_sql() -> str:
    table = {model: _qn(model._meta.db_table) for model, _alias in READ_PARTS}
    cap, plan = _qn(Cap._meta.db_table), _qn(CommissionPlan._meta.db_table)
    columns = ", ".join(_columns(model, alias) for model, alias in READ_PARTS[:5])
    return f"""
        SELECT {columns}, flood.n, caps.found, {_columns(CommissionRule, "r")}
        FROM {table[Program]} p
        LEFT JOIN {table[TrackingSettings]} s ON s.program_id = p.id
        LEFT JOIN {table[Click]} c ON c.program_id = p.id AND c.click_id = $2
        LEFT JOIN {table[Offer]} o ON o.id = c.offer_id
        LEFT JOIN {table[Affiliate]} a ON a.id = c.affiliate_id
        LEFT JOIN LATERAL (
            SELECT count(*) AS n FROM {table[Click]} f
            WHERE f.program_id = c.program_id AND f.link_id = c.link_id AND f.ip_hash = c.ip_hash
              AND f.created_at > c.created_at - make_interval(mins => s.fraud_click_flood_minutes)
              AND f.created_at <= c.created_at
        ) flood ON c.id IS NOT NULL
        LEFT JOIN LATERAL (
            SELECT EXISTS (
                SELECT 1 FROM {cap} k
                WHERE k.program_id = p.id AND k.metric = ANY($4)
                  AND (k.affiliate_id = c.affiliate_id OR k.affiliate_id IS NULL)
                  AND (k.offer_id = c.offer_id OR k.offer_id IS NULL)
            ) AS found
        ) caps ON c.id IS NOT NULL
        LEFT JOIN LATERAL (
            SELECT rule.* FROM {table[CommissionRule]} rule
            JOIN {plan} plan ON plan.id = rule.plan_id
            WHERE rule.program_id = p.id AND plan.is_default AND rule.kind = $3
              AND (rule.affiliate_id = c.affiliate_id OR rule.affiliate_id IS NULL)
              AND (rule.offer_id = c.offer_id OR rule.offer_id IS NULL)
        ) r ON c.id IS NOT NULL
        WHERE p.slug = $1
    """  # noqa: S608 - table and column names come from the models, values are parameters


READ_STATEMENT = "goalpost_postback_read"
WRITE_STATEMENT = "goalpost_postback_write_"  # + a hash of the statement's shape (attempt or not, cells)
# Per psycopg2 connection, the statements it has prepared. Prepared statements live as long as the database
# session, whatever its transactions do; the connection object goes with the session.
_prepared: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _using(cursor):
    """``cursor`` (the request's, kept open by postback.answer_postback) as a context that leaves it open, or a
    cursor of its own when there is none, or it was closed or the connection replaced since."""
    if cursor is None or cursor.closed or cursor.connection is not connection.connection:
        return connection.cursor()
    return contextlib.nullcontext(cursor)


def _execute_prepared(cursor, name: str, sql: str, params: list, types: str = "") -> None:
    """EXECUTE ``sql`` (with $n placeholders) as the prepared statement ``name``, preparing it first on this
    connection: planning these statements costs PostgreSQL as much as running them (0.7 ms against 0.2 ms
    for the read). A session pooler that resets sessions between transactions (PgBouncer in transaction
    mode) drops prepared statements: run with TRACKING_SQL_HOT_PATH=0 behind one."""
    prepared = _prepared.setdefault(connection.connection, set())
    if name not in prepared:
        cursor.execute(f"PREPARE {name} {types} AS {sql}")
        prepared.add(name)
    cursor.execute(_execute_sql(name, len(params)), params)


@cache
def _execute_sql(name: str, count: int) -> str:
    return f"EXECUTE {name} ({', '.join(['%s'] * count)})"


def _numbered(sql: str) -> tuple[str, str]:
    """(statement name, SQL reading its values from one jsonb parameter, the array of values: ``($1->>0)`` for
    the first ``%s`` and so on) of one shape of the write.

    One parameter, not one per value: psycopg2 quotes each parameter through an adapter object, and
    PostgreSQL parses and coerces each literal of an EXECUTE; a JSON array is written by json.dumps in C and
    parsed once. ``->>`` gives each element's text (NULL for null), which the placeholder's ::type cast reads
    as it read the literal before."""
    parts = sql.split("%s")  # the SQL has no other % sign
    numbered = "".join(part + (f"($1->>{index})" if index < len(parts) - 1 else "") for index, part in enumerate(parts))
    # Named by what PostgreSQL prepares: a changed statement never meets an old one under its name.
    return WRITE_STATEMENT + hashlib.sha1(numbered.encode(), usedforsecurity=False).hexdigest()[:16], numbered


def _array_literal(values) -> str:
    """PostgreSQL's text form of a text[] of ``values``: sent as one string, which psycopg2 quotes in C."""
    quoted = ('"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"' for value in values)
    return "{" + ",".join(quoted) + "}"


CAP_METRICS_ARRAY = _array_literal(CAP_METRICS)


def _execute_read(cursor, params: list) -> None:
    _execute_prepared(cursor, READ_STATEMENT, _read_sql(), params, "(text, uuid, text, text[])")


@cache
def _read_widths() -> tuple[int, ...]:
    return tuple(len(_fields(model)) for model, _alias in READ_PARTS)


def read_postback_context(*, slug: str, click_id: UUID | None, kind: str, cursor=None) -> PostbackContext | None:
    """One SELECT for a postback to ``slug`` (None: no such program), on ``cursor`` (one of the request's that
    stays open for the write) or a cursor of its own. For a program without tracking settings yet, only the
    program is loaded; the click is then left to the general path."""
    # Plain text for the uuid and the text[]: psycopg2 quotes str in C, a UUID or a list through Python.
    params = [slug, None if click_id is None else str(click_id), kind, CAP_METRICS_ARRAY]
    with _using(cursor) as cursor:
        _execute_read(cursor, params)
        rows = cursor.fetchall()
    if not rows:
        return None
    widths = _read_widths()
    first = rows[0]
    parts, start = [], 0
    for width in widths[:5]:
        parts.append(first[start : start + width])
        start += width
    flood, has_caps = first[start], first[start + 1]
    program_values, settings_values, click_values, offer_values, affiliate_values = parts
    program = _instance(Program, "p", program_values)
    if settings_values[0] is None:  # tracking.services.settings_of creates them, in the program's scope
        return PostbackContext(program, click_id, kind, None, None, cursor)
    program.tracking_settings = _instance(TrackingSettings, "s", settings_values)
    if click_values[0] is None:
        return PostbackContext(program, click_id, kind, None, None, cursor)
    click = _instance(Click, "c", click_values)
    attach(click, "program", program)
    attach(click, "offer", _instance(Offer, "o", offer_values) if offer_values[0] is not None else None)
    attach(click, "affiliate", _instance(Affiliate, "a", affiliate_values))
    click.affiliate.has_caps = bool(has_caps)
    click.flood_clicks = flood
    rule_start = start + 2
    rules = [
        _instance(CommissionRule, "r", row[rule_start : rule_start + widths[5]])
        for row in rows
        if row[rule_start] is not None
    ]
    return PostbackContext(program, click_id, kind, click, rules, cursor)


# --- The write -------------------------------------------------------------------------------------------------


@cache
def _insert_shape(model: type[Model], skip: tuple[str, ...]) -> tuple[str, str, Callable[[Model], list]]:
    """(quoted columns, typed placeholders, a reader of the values) that Model.save would insert for ``model``.

    The reader takes the object and returns the values Model.save would send: Field.get_db_prep_save does
    nothing on PostgreSQL to str, int, bool, Decimal, UUID, date and aware datetimes, which are read in one
    attrgetter call (their columns come first); fields that do more (JSON, auto_now dates, anything unusual)
    go through ``_reader``. ``_sendable`` then turns each value into the text psycopg2 would send (a JSON value
    through its Json adapter's dumps, as psycopg2 quotes it).
    """
    fields = [field for field in model._meta.concrete_fields if not field.primary_key and field.name not in skip]
    plain = [field for field in fields if _is_plain(field)]
    special = [field for field in fields if not _is_plain(field)]
    fields = plain + special
    columns = ", ".join(_qn(field.column) for field in fields)
    placeholders = ", ".join(f"%s::{field.cast_db_type(connection)}" for field in fields)
    names = [field.attname for field in plain]
    # attrgetter of one name returns the value itself, of several a tuple: always a tuple here.
    get_plain = operator.attrgetter(*names) if len(names) > 1 else lambda obj: tuple(getattr(obj, n) for n in names)
    readers = tuple(_reader(field) for field in special)

    def read(obj: Model) -> list:
        values = [*get_plain(obj), *(read_field(obj) for read_field in readers)]
        return [value if type(value) in PASSED else _sendable(value) for value in values]

    return columns, placeholders, read


PLAIN_FIELDS = (
    models.CharField,
    models.TextField,
    models.IntegerField,
    models.BooleanField,
    models.DecimalField,
    models.UUIDField,
    models.ForeignKey,
)


def _is_plain(field) -> bool:
    auto_date = getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
    return isinstance(field, PLAIN_FIELDS) or (isinstance(field, models.DateTimeField) and not auto_date)


def _reader(field):
    """What Model.save would send for a field that is not plain (JSON, auto_now dates, anything unusual)."""
    return lambda obj: field.get_db_prep_save(field.pre_save(obj, True), connection=connection)


# --- Values as psycopg2 quotes them in C --------------------------------------------------------------------------
# psycopg2 adapts str, int, bool and None in C; a UUID, a Decimal, a date, a str subclass (the models' Choices) or
# a Json wrapper goes through Python, which cost more than the rest of building the write. Each placeholder has
# its ::type cast, so the text psycopg2's adapter would have produced is sent instead, as a string: the same
# value reaches PostgreSQL.

PASSED = frozenset({str, int, bool, float, type(None)})


def _decimal_text(value: Decimal) -> str:
    return str(value) if value.is_finite() else "NaN"  # what psycopg2's Decimal adapter sends


def _iso_text(value: date) -> str:
    return value.isoformat()  # what psycopg2's date and datetime adapters quote


def _json_text(value) -> str:
    return value.dumps(value.adapted)  # what psycopg2's Json.getquoted quotes


@cache
def _to_text(kind: type):
    """How a value of ``kind`` becomes the text psycopg2 would quote for it (None: sent as it is)."""
    from psycopg2.extras import Json  # psycopg2 is needed on PostgreSQL only

    for base, convert in (
        (str, str.__str__),
        (Decimal, _decimal_text),
        (UUID, str),
        (date, _iso_text),  # datetime too
        (Json, _json_text),
    ):
        if issubclass(kind, base):
            return convert
    return None


def _sendable(value):
    kind = type(value)
    if kind in PASSED:
        return value
    convert = _to_text(kind)
    return value if convert is None else convert(value)


def _insert_parts(obj: Model, *, skip: tuple[str, ...] = ()) -> list:
    """The values of an unsaved ``obj``, as Model.save would insert them, in ``_insert_shape``'s order."""
    _columns, _placeholders, read = _insert_shape(type(obj), skip)
    return read(obj)


def _select(placeholders: str) -> str:
    """The SELECT that inserts a row per new conversion (none for a resent order), with its id last."""
    return f"SELECT {placeholders}, c.id FROM c"  # noqa: S608 - typed placeholders only


@cache
def _write_statement(with_attempt: bool, cells: int) -> tuple[str, str]:
    """(statement name, numbered SQL) of the write for a conversion, its event, a log entry if ``with_attempt``
    and ``cells`` dirty marks: built once per shape."""
    columns, placeholders, _read = _insert_shape(Conversion, ())
    conversions = _qn(Conversion._meta.db_table)
    insert = f"INSERT INTO {conversions} ({columns}) VALUES ({placeholders})"  # noqa: S608 - typed placeholders
    ctes = [f"c AS ({insert} ON CONFLICT DO NOTHING RETURNING id)"]
    selected = ["c.id"]
    for name, model in (("e", ConversionEvent), ("a", PostbackAttempt if with_attempt else None)):
        if model is None:
            selected.append("NULL")
            continue
        columns, placeholders, _read = _insert_shape(model, ("conversion",))
        table = _qn(model._meta.db_table)
        ctes.append(f"{name} AS (INSERT INTO {table} ({columns}, conversion_id) {_select(placeholders)} RETURNING id)")
        selected.append(f"(SELECT id FROM {name})")  # noqa: S608 - a CTE's name
    if cells:
        values = ", ".join(["(%s::integer, %s::integer, %s::date, %s::timestamptz)"] * cells)
        table = _qn(StatsDirtyKey._meta.db_table)
        ctes.append(
            f"d AS (INSERT INTO {table} (program_id, affiliate_id, day, marked_at) SELECT k.* FROM c, "  # noqa: S608
            f"(VALUES {values}) AS k (program_id, affiliate_id, day, marked_at))"
        )
    sql = f"WITH {', '.join(ctes)} SELECT {', '.join(selected)} FROM c"  # noqa: S608 - names from the models
    return _numbered(sql)


def _mark_saved(obj: Model, pk: int) -> None:
    obj.pk = pk
    obj._state.adding, obj._state.db = False, DEFAULT_DB_ALIAS


def insert_conversion(
    *,
    conversion: Conversion,
    event: ConversionEvent,
    attempt: PostbackAttempt | None,
    keys: list[Key],
    cursor=None,
) -> bool:
    """Insert a new ``conversion`` with its creation ``event``, the postback log entry ``attempt`` (if any) and
    the rollups' dirty marks of ``keys``, in one statement, on ``cursor`` (the read's, still open) or a cursor
    of its own. False, and nothing written, if the order exists."""
    params = _insert_parts(conversion)
    params += _insert_parts(event, skip=("conversion",))
    if attempt is not None:
        params += _insert_parts(attempt, skip=("conversion",))
    if keys:
        marked_at = _sendable(connection.ops.adapt_datetimefield_value(conversion.status_changed_at))
        for affiliate_id, day in sorted(keys):
            params += [conversion.program_id, affiliate_id, _sendable(day), marked_at]
    name, numbered = _write_statement(attempt is not None, len(keys))
    with _using(cursor) as cursor:
        _execute_prepared(cursor, name, numbered, [json.dumps(params)], "(jsonb)")
        row = cursor.fetchone()
    if row is None:
        return False
    _mark_saved(conversion, row[0])
    attach(event, "conversion", conversion)
    _mark_saved(event, row[1])
    if attempt is not None:
        attach(attempt, "conversion", conversion)
        _mark_saved(attempt, row[2])
    return True
