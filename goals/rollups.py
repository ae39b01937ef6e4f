"""Daily rollups: DailyStats recomputed from the raw events, for dirty keys, for whole day ranges, and checked nightly.

Every write here has one shape: an ``INSERT … SELECT`` of grouped aggregates over the raw events of the cells
in scope, upserted on (program, affiliate, day). Counters are absolute, never increments, so running a
recompute twice, or two at once, writes the same numbers. docs/rollups.md explains the pipeline, why a lost
message or a killed worker cannot lose a recompute, how bursts coalesce, and what the reconciliation checks.
"""

# The statements are assembled from table names out of model metadata, fixed SQL fragments and named
# placeholders; every value (ids, instants, statuses) travels as a parameter. Hence, for the whole file:
# ruff: noqa: S608

import importlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import Count, Min
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from affiliates.models import Program
from goals.models import BonusEntry, ClawbackEntry, DailyStats, FeeEntry, JobRun
from goals.periods import day_start, local_now, month_start, next_month
from tracking.models import (
    Click,
    Conversion,
    ConversionEvent,
    ConversionKind,
    ConversionStatus,
    Impression,
    StatsDirtyKey,
)

logger = logging.getLogger(__name__)

Key = tuple[int, date]  # (affiliate id, program-local day)

# The additive counters of DailyStats this module fills, in column order (tests check none is missing).
COUNTERS = (
    "clicks",
    "unique_clicks",
    "bot_clicks",
    "impressions",
    "conversions_pending",
    "conversions_approved",
    "sales_pending",
    "sales_approved",
    "leads_pending",
    "leads_approved",
    "engagements_pending",
    "engagements_approved",
    "revenue_pending",
    "revenue_approved",
    "commission_pending",
    "commission_approved",
    "new_customers_pending",
    "new_customers_approved",
    "customer_revenue_pending",
    "customer_revenue_approved",
    "reversals",
    "cancellations",
    "customers_lost",
    "bonuses",
    "fixed_fees",
)
MONEY_COUNTERS = frozenset(
    {
        "revenue_pending",
        "revenue_approved",
        "commission_pending",
        "commission_approved",
        "customer_revenue_pending",
        "customer_revenue_approved",
        "bonuses",
        "fixed_fees",
    }
)
CENT = Decimal("0.01")
# Cells per statement: keeps one statement's parameters under SQLite's limit (32,766) with room to spare.
KEYS_PER_STATEMENT = 5000
REFRESH_LISTED_AFFILIATES = 500  # a goal-progress refresh for more affiliates than this refreshes the month
WHOLE_DAY_KEYS = 1000  # more dirty cells than this on one day: recompute the whole day (see Scope)
# pg_advisory_xact_lock(class, program): one DailyStats writer per program at a time (see _lock_program).
LOCK_CLASS = 571_001
TRANSIENT_PGCODES = {"40P01", "40001"}  # deadlock detected, serialization failure
TRANSIENT_ATTEMPTS = 3

# Fixed SQL parameters: the statuses and kinds the definitions in docs/rollups.md refer to.
_CONSTANTS = {
    "pending": ConversionStatus.PENDING.value,
    "approved": ConversionStatus.APPROVED.value,
    "reversed": ConversionStatus.REVERSED.value,
    "sale": ConversionKind.SALE.value,
    "lead": ConversionKind.LEAD.value,
    "engagement": ConversionKind.ENGAGEMENT.value,
    "cancellation": ConversionKind.CANCELLATION.value,
    "blank": "",
}


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


# --- What a recompute covers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """The cells one statement recomputes: listed (affiliate, day) keys, or every affiliate over [first, end)."""

    program: Program
    keys_by_day: dict[date, tuple[int, ...]] | None = None
    first: date | None = None
    end: date | None = None

    @classmethod
    def of_keys(cls, program: Program, keys: Iterable[Key]) -> "Scope":
        grouped: dict[date, set[int]] = defaultdict(set)
        for affiliate_id, day in keys:
            grouped[day].add(int(affiliate_id))
        return cls(program, keys_by_day={day: tuple(sorted(ids)) for day, ids in sorted(grouped.items())})

    @classmethod
    def of_days(cls, program: Program, first: date, end: date) -> "Scope":
        return cls(program, first=first, end=end)

    @property
    def days(self) -> tuple[date, date]:
        """The first and the end (exclusive) local day of the scope."""
        if self.keys_by_day is not None:
            return min(self.keys_by_day), max(self.keys_by_day) + timedelta(days=1)
        return self.first, self.end


class _Statement:
    """Builds one SQL statement with named parameters, in the dialect of the current connection."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.program = scope.program
        self.params: dict[str, object] = {"program": self.program.pk, **_CONSTANTS}
        self._branches: list[tuple[str, str, str, str]] | None = None

    def value(self, value: object) -> str:
        name = f"v{len(self.params)}"
        self.params[name] = value
        return f"%({name})s"

    def moment(self, moment: datetime) -> str:
        return self.value(connection.ops.adapt_datetimefield_value(moment))

    def day(self, day: date) -> str:
        return self.value(connection.ops.adapt_datefield_value(day))

    def local_day(self, column: str) -> str:
        """SQL for the program-local calendar day of a UTC timestamp column (Django's own per-dialect cast).

        Callers bound the same column with ``in_scope_at``, so in a scope of one day every row falls on that
        day: the day is then a constant, not a time-zone conversion per row (a rebuild runs day by day)."""
        first, end = self.scope.days
        if end - first == timedelta(days=1):
            return self.day(first)
        sql, params = connection.ops.datetime_cast_date_sql(column, (), self.program.timezone)
        return sql % tuple(self.value(param) for param in params)

    def _day_branches(self) -> list[tuple[str, str, str, str]]:
        """Per listed day: its start and end instants, the day itself, and the affiliate ids (parameters once)."""
        if self._branches is None:
            self._branches = []
            for day, affiliate_ids in self.scope.keys_by_day.items():
                ids = ", ".join(self.value(affiliate_id) for affiliate_id in affiliate_ids)
                start = self.moment(day_start(self.program, day))
                end = self.moment(day_start(self.program, day + timedelta(days=1)))
                self._branches.append((start, end, self.day(day), ids))
        return self._branches

    def in_scope_at(self, affiliate: str, moment: str) -> str:
        """Condition: the row's (affiliate, local day of ``moment``) is a cell in scope; index-friendly ranges."""
        if self.scope.keys_by_day is None:
            first, end = self.scope.days
            start, stop = self.moment(day_start(self.program, first)), self.moment(day_start(self.program, end))
            return f"({moment} >= {start} AND {moment} < {stop})"
        branches = [
            f"({moment} >= {start} AND {moment} < {end} AND {affiliate} IN ({ids}))"
            for start, end, _day, ids in self._day_branches()
        ]
        return "(" + " OR ".join(branches) + ")"

    def in_scope_on(self, affiliate: str, day: str) -> str:
        """Condition: the row's (affiliate, ``day``) is a cell in scope, for rows that carry a local day."""
        if self.scope.keys_by_day is None:
            first, end = self.scope.days
            return f"({day} >= {self.day(first)} AND {day} < {self.day(end)})"
        branches = [f"({day} = {on} AND {affiliate} IN ({ids}))" for _start, _end, on, ids in self._day_branches()]
        return "(" + " OR ".join(branches) + ")"

    def window(self) -> tuple[str, str]:
        """The scope's overall [start, end) instants, to narrow candidate rows before exact matching."""
        first, end = self.scope.days
        return self.moment(day_start(self.program, first)), self.moment(day_start(self.program, end))


# --- The aggregates: one part per source of events --------------------------------------------------------


TRAFFIC = ("clicks", "unique_clicks", "bot_clicks", "impressions")
OUTCOMES = tuple(name for name in COUNTERS if name not in TRAFFIC)


def _part(affiliate: str, day: str, columns: dict[str, str], body: str, names: tuple[str, ...] = OUTCOMES) -> str:
    select = ", ".join(f"{columns.get(name, '0')} AS {name}" for name in names)
    # Positional GROUP BY: the local-day expression carries parameters and must not be repeated.
    return f"SELECT {affiliate} AS affiliate_id, {day} AS day, {select} {body} GROUP BY 1, 2"


def _counted(alias: str) -> str:
    return f"{alias}.status IN (%(pending)s, %(approved)s)"


def _clicks(q: _Statement) -> str:
    columns = {
        "clicks": "COUNT(*) FILTER (WHERE NOT c.is_bot)",
        "unique_clicks": "COUNT(*) FILTER (WHERE NOT c.is_bot AND c.is_unique)",
        "bot_clicks": "COUNT(*) FILTER (WHERE c.is_bot)",
    }
    body = (
        f"FROM {_table(Click)} c WHERE c.program_id = %(program)s AND {q.in_scope_at('c.affiliate_id', 'c.created_at')}"
    )
    return _part("c.affiliate_id", q.local_day("c.created_at"), columns, body, TRAFFIC[:3])


def _impressions(q: _Statement) -> str:
    body = (
        f"FROM {_table(Impression)} i WHERE i.program_id = %(program)s AND NOT i.is_bot "
        f"AND {q.in_scope_at('i.affiliate_id', 'i.created_at')}"
    )
    return _part("i.affiliate_id", q.local_day("i.created_at"), {"impressions": "COUNT(*)"}, body, ("impressions",))


def _conversions(q: _Statement) -> str:
    columns = {"cancellations": "COUNT(*) FILTER (WHERE v.kind = %(cancellation)s)"}
    for status in ("pending", "approved"):
        is_status = f"v.status = %({status})s"
        sale = f"{is_status} AND v.kind = %(sale)s"
        columns |= {
            f"conversions_{status}": f"COUNT(*) FILTER (WHERE {is_status} AND v.kind <> %(cancellation)s)",
            f"sales_{status}": f"COUNT(*) FILTER (WHERE {sale})",
            f"leads_{status}": f"COUNT(*) FILTER (WHERE {is_status} AND v.kind = %(lead)s)",
            f"engagements_{status}": f"COUNT(*) FILTER (WHERE {is_status} AND v.kind = %(engagement)s)",
            f"revenue_{status}": f"SUM(v.revenue) FILTER (WHERE {sale})",
            f"commission_{status}": f"SUM(v.commission) FILTER (WHERE {is_status})",
            f"customer_revenue_{status}": f"SUM(v.revenue) FILTER (WHERE {sale} AND v.customer_id <> %(blank)s)",
        }
    body = (
        f"FROM {_table(Conversion)} v WHERE v.program_id = %(program)s AND v.affiliate_id IS NOT NULL "
        f"AND {_counted('v')} AND {q.in_scope_at('v.affiliate_id', 'v.created_at')}"
    )
    return _part("v.affiliate_id", q.local_day("v.created_at"), columns, body)


def _no_earlier_counted(alias: str) -> str:
    """Condition: no counted conversion of the same customer came before ``alias`` (ties broken by id)."""
    return (
        f"NOT EXISTS (SELECT 1 FROM {_table(Conversion)} w WHERE w.program_id = {alias}.program_id "
        f"AND w.customer_id = {alias}.customer_id AND {_counted('w')} AND w.kind <> %(cancellation)s "
        f"AND (w.created_at < {alias}.created_at OR (w.created_at = {alias}.created_at AND w.id < {alias}.id)))"
    )


def _first_counted(alias: str) -> str:
    """Conditions picking each customer's first counted conversion in the program (see docs/rollups.md)."""
    return (
        f"{alias}.program_id = %(program)s AND {alias}.customer_id <> %(blank)s AND {_counted(alias)} "
        f"AND {alias}.kind <> %(cancellation)s AND {_no_earlier_counted(alias)}"
    )


def _new_customers(q: _Statement) -> str:
    columns = {
        "new_customers_pending": "COUNT(*) FILTER (WHERE v.status = %(pending)s)",
        "new_customers_approved": "COUNT(*) FILTER (WHERE v.status = %(approved)s)",
    }
    body = (
        f"FROM {_table(Conversion)} v WHERE {_first_counted('v')} AND v.affiliate_id IS NOT NULL "
        f"AND {q.in_scope_at('v.affiliate_id', 'v.created_at')}"
    )
    return _part("v.affiliate_id", q.local_day("v.created_at"), columns, body)


def _reversals(q: _Statement) -> str:
    body = (
        f"FROM {_table(ConversionEvent)} e JOIN {_table(Conversion)} v ON v.id = e.conversion_id "
        f"WHERE e.program_id = %(program)s AND e.to_status = %(reversed)s AND v.affiliate_id IS NOT NULL "
        f"AND v.kind <> %(cancellation)s AND {q.in_scope_at('v.affiliate_id', 'e.created_at')}"
    )
    return _part("v.affiliate_id", q.local_day("e.created_at"), {"reversals": "COUNT(DISTINCT e.conversion_id)"}, body)


def _customers_lost(q: _Statement) -> str:
    """Customers lost, on the acquiring affiliate's row, on the day of their first loss.

    A customer is lost at their first counted cancellation, or when a reversal leaves them without a counted
    sale (the last reversal of their sales). Only customers with a loss event inside the scope's window are
    looked at, so the incremental path reads a day's losses, not the program's history.
    """
    start, end = q.window()
    conversions, events = _table(Conversion), _table(ConversionEvent)
    candidates = (
        f"SELECT x.customer_id FROM {conversions} x WHERE x.program_id = %(program)s "
        f"AND x.kind = %(cancellation)s AND x.customer_id <> %(blank)s "
        f"AND x.created_at >= {start} AND x.created_at < {end} "
        f"UNION SELECT s.customer_id FROM {events} e JOIN {conversions} s ON s.id = e.conversion_id "
        f"WHERE e.program_id = %(program)s AND e.to_status = %(reversed)s AND s.kind = %(sale)s "
        f"AND s.customer_id <> %(blank)s AND e.created_at >= {start} AND e.created_at < {end}"
    )
    acquired = (
        f"SELECT v.customer_id, v.affiliate_id FROM {conversions} v WHERE {_first_counted('v')} "
        f"AND v.affiliate_id IS NOT NULL AND v.customer_id IN ({candidates})"
    )
    losses = (
        f"SELECT x.customer_id, x.created_at AS at FROM {conversions} x WHERE x.program_id = %(program)s "
        f"AND x.kind = %(cancellation)s AND {_counted('x')} AND x.customer_id IN ({candidates}) "
        f"UNION ALL SELECT s.customer_id, MAX(e.created_at) AS at FROM {conversions} s "
        f"JOIN {events} e ON e.conversion_id = s.id AND e.to_status = %(reversed)s "
        f"WHERE s.program_id = %(program)s AND s.kind = %(sale)s AND s.customer_id IN ({candidates}) "
        f"AND NOT EXISTS (SELECT 1 FROM {conversions} t WHERE t.program_id = s.program_id "
        f"AND t.customer_id = s.customer_id AND t.kind = %(sale)s AND {_counted('t')}) "
        f"GROUP BY s.customer_id"
    )
    body = (
        f"FROM ({acquired}) f JOIN (SELECT l.customer_id, MIN(l.at) AS lost_at FROM ({losses}) l "
        f"GROUP BY l.customer_id) lost ON lost.customer_id = f.customer_id "
        f"WHERE {q.in_scope_at('f.affiliate_id', 'lost.lost_at')}"
    )
    return _part("f.affiliate_id", q.local_day("lost.lost_at"), {"customers_lost": "COUNT(*)"}, body)


def _bonuses(q: _Statement) -> tuple[str, str]:
    """Bonuses on the day they are booked on, minus clawbacks on theirs (both entries carry that local day)."""
    bonus = f"FROM {_table(BonusEntry)} b WHERE b.program_id = %(program)s AND "
    bonus += q.in_scope_on("b.affiliate_id", "b.day")
    clawback = f"FROM {_table(ClawbackEntry)} k WHERE k.program_id = %(program)s AND "
    clawback += q.in_scope_on("k.affiliate_id", "k.day")
    return (
        _part("b.affiliate_id", "b.day", {"bonuses": "SUM(b.amount)"}, bonus),
        _part("k.affiliate_id", "k.day", {"bonuses": "-SUM(k.amount)"}, clawback),
    )


def _fixed_fees(q: _Statement) -> str:
    body = f"FROM {_table(FeeEntry)} f WHERE f.program_id = %(program)s AND {q.in_scope_on('f.affiliate_id', 'f.day')}"
    return _part("f.affiliate_id", "f.day", {"fixed_fees": "SUM(f.amount)"}, body)


def _grouped(parts: list[str], names: tuple[str, ...]) -> str:
    totals = ", ".join(f"COALESCE(SUM(parts.{name}), 0) AS {name}" for name in names)
    union = " UNION ALL ".join(parts)
    return (
        f"SELECT parts.affiliate_id AS affiliate_id, parts.day AS day, {totals} FROM ({union}) parts "
        f"WHERE parts.affiliate_id IS NOT NULL GROUP BY parts.affiliate_id, parts.day"
    )


def _sources_in_window(q: _Statement) -> frozenset[str]:
    """Which optional sources have any row in the scope's window: one round trip of EXISTS probes.

    Parts without rows are left out of the statement (they would add zeros), which spares their planning and
    execution: a program without impressions, fees or cancellations pays nothing for them. An event written
    after this probe marks its cell dirty, so it is counted by the next recompute.
    """
    start, end = q.window()
    first, stop = (q.day(day) for day in q.scope.days)
    conversions, events = _table(Conversion), _table(ConversionEvent)
    in_window = f"program_id = %(program)s AND created_at >= {start} AND created_at < {end}"
    on_days = f"program_id = %(program)s AND day >= {first} AND day < {stop}"
    probes = {
        "impressions": f"SELECT 1 FROM {_table(Impression)} WHERE {in_window} AND NOT is_bot",
        "conversions": f"SELECT 1 FROM {conversions} WHERE {in_window}",
        "reversals": f"SELECT 1 FROM {events} WHERE {in_window} AND to_status = %(reversed)s",
        "cancellations": f"SELECT 1 FROM {conversions} WHERE {in_window} AND kind = %(cancellation)s",
        "bonuses": f"SELECT 1 FROM {_table(BonusEntry)} WHERE {on_days}",
        "clawbacks": f"SELECT 1 FROM {_table(ClawbackEntry)} WHERE {on_days}",
        "fees": f"SELECT 1 FROM {_table(FeeEntry)} WHERE {on_days}",
    }
    sql = "SELECT " + ", ".join(f"EXISTS ({probe})" for probe in probes.values())
    with connection.cursor() as cursor:
        cursor.execute(sql, q.params)
        found = cursor.fetchone()
    return frozenset(name for name, present in zip(probes, found, strict=True) if present)


def _fresh_sql(q: _Statement) -> str:
    """SELECT program_id, affiliate_id, day, <counters> per cell in scope, computed from the raw events.

    Clicks and impressions (many rows, few columns) are grouped on their own and joined to the outcomes
    (everything else: few rows, many columns, grouped together), so the click-sized row set is aggregated
    once and never carries two dozen zero columns through a second aggregation.
    """
    present = _sources_in_window(q)
    outcome_parts = []
    if "conversions" in present:
        outcome_parts += [_conversions(q), _new_customers(q)]
    if "reversals" in present:
        outcome_parts.append(_reversals(q))
    if "reversals" in present or "cancellations" in present:
        outcome_parts.append(_customers_lost(q))
    bonus, clawback = _bonuses(q)
    outcome_parts += [sql for name, sql in (("bonuses", bonus), ("clawbacks", clawback)) if name in present]
    if "fees" in present:
        outcome_parts.append(_fixed_fees(q))
    sources = [("c", _clicks(q), TRAFFIC[:3])]
    if "impressions" in present:
        sources.append(("i", _impressions(q), ("impressions",)))
    if outcome_parts:
        sources.append(("o", _grouped(outcome_parts, OUTCOMES), OUTCOMES))
    # FULL OUTER JOINs on (affiliate, day): a cell may have clicks only, outcomes only, or both.
    source_of = {name: alias for alias, _sql, names in sources for name in names}
    affiliate, day = f"{sources[0][0]}.affiliate_id", f"{sources[0][0]}.day"
    joined = f"({sources[0][1]}) {sources[0][0]}"
    for alias, sql, _names in sources[1:]:
        joined += f" FULL OUTER JOIN ({sql}) {alias} ON {alias}.affiliate_id = {affiliate} AND {alias}.day = {day}"
        affiliate, day = f"COALESCE({affiliate}, {alias}.affiliate_id)", f"COALESCE({day}, {alias}.day)"
    columns = ", ".join(
        f"COALESCE({source_of[name]}.{name}, 0) AS {name}" if name in source_of else f"0 AS {name}" for name in COUNTERS
    )
    return f"SELECT %(program)s AS program_id, {affiliate} AS affiliate_id, {day} AS day, {columns} FROM {joined}"


def _upsert_sql(q: _Statement) -> str:
    """Write the cells in scope whose stored numbers differ from the fresh ones, and only those.

    The fresh aggregates are joined (FULL OUTER JOIN) to the rows stored for the scope: a cell with events
    and no row is inserted, a row whose events are gone is rewritten as zeros, a row whose numbers differ is
    updated, and a row that is right is neither written nor locked — a rebuild of correct rows reads only.
    """
    table = _table(DailyStats)
    columns = ", ".join(["program_id", "affiliate_id", "day", *COUNTERS, "updated_at"])
    stored = f"SELECT * FROM {table} d WHERE d.program_id = %(program)s AND {q.in_scope_on('d.affiliate_id', 'd.day')}"
    values = ", ".join(f"COALESCE(fresh.{name}, 0)" for name in COUNTERS)
    differs = " OR ".join(f"COALESCE(fresh.{name}, 0) <> stored.{name}" for name in COUNTERS)
    updates = ", ".join(f"{name} = excluded.{name}" for name in (*COUNTERS, "updated_at"))
    changed = " OR ".join(f"{table}.{name} <> excluded.{name}" for name in COUNTERS)
    return (
        f"INSERT INTO {table} ({columns}) "
        f"SELECT %(program)s, COALESCE(fresh.affiliate_id, stored.affiliate_id), COALESCE(fresh.day, stored.day), "
        f"{values}, {q.moment(timezone.now())} "
        f"FROM ({_fresh_sql(q)}) fresh FULL OUTER JOIN ({stored}) stored "
        f"ON stored.affiliate_id = fresh.affiliate_id AND stored.day = fresh.day "
        f"WHERE stored.id IS NULL OR {differs} ORDER BY 2, 3 "
        f"ON CONFLICT (program_id, affiliate_id, day) DO UPDATE SET {updates} WHERE {changed}"
    )


# --- Writing -------------------------------------------------------------------------------------------------


def _lock_program(program: Program, *, wait: bool = True) -> bool:
    """Take the program's rollup lock until the transaction ends; False if ``wait`` is off and it is taken.

    One writer of a program's DailyStats at a time: each recompute then reads events after the previous one
    committed, so a slow writer can never overwrite a newer result with numbers from an older snapshot, and
    the goal progress refreshed next to it sees every committed rollup. Event writers never take this lock.
    """
    if connection.vendor != "postgresql":
        return True  # SQLite serialises writers on its own.
    with connection.cursor() as cursor:
        function = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
        cursor.execute(f"SELECT {function}(%s, %s)", [LOCK_CLASS, program.pk % 2**31])
        return wait or bool(cursor.fetchone()[0])


def _write(scope: Scope) -> int:
    q = _Statement(scope)
    sql = _upsert_sql(q)
    with connection.cursor() as cursor:
        cursor.execute(sql, q.params)
        return max(cursor.rowcount, 0)


def recompute_days(*, program: Program, keys: Iterable[Key]) -> int:
    """Recompute the DailyStats cells ``keys`` (affiliate id, local day) of ``program`` from the raw events.

    A handful of grouped aggregate statements for the whole key set, each upserting absolute numbers:
    idempotent, and safe to run concurrently. Listed cells go KEYS_PER_STATEMENT to a statement; a day with
    more than WHOLE_DAY_KEYS dirty cells is recomputed whole, in a statement of its own (one range scan of
    the day beats a long IN list in every part, and a right cell recomputed is not rewritten). Cells whose
    events are gone are rewritten as zeros. Returns how many rows were inserted or changed.
    """
    by_day: dict[date, set[int]] = defaultdict(set)
    for affiliate_id, day in keys:
        by_day[day].add(int(affiliate_id))
    if not by_day:
        return 0
    whole_days = sorted(day for day, affiliate_ids in by_day.items() if len(affiliate_ids) > WHOLE_DAY_KEYS)
    listed = sorted((affiliate_id, day) for day, ids in by_day.items() if day not in whole_days for affiliate_id in ids)
    written = 0
    with transaction.atomic():
        _lock_program(program)
        for day in whole_days:
            written += _write(Scope.of_days(program, day, day + timedelta(days=1)))
        for start in range(0, len(listed), KEYS_PER_STATEMENT):
            written += _write(Scope.of_keys(program, listed[start : start + KEYS_PER_STATEMENT]))
    return written


def recompute_range(*, program: Program, first: date, end: date) -> int:
    """Recompute every DailyStats cell of ``program`` for local days [first, end) in one statement."""
    if first >= end:
        return 0
    with transaction.atomic():
        _lock_program(program)
        return _write(Scope.of_days(program, first, end))


def fresh_stats(*, program: Program, first: date, end: date) -> dict[Key, dict[str, object]]:
    """What DailyStats should hold for local days [first, end), computed from the raw events (no write)."""
    q = _Statement(Scope.of_days(program, first, end))
    with connection.cursor() as cursor:
        cursor.execute(_fresh_sql(q), q.params)
        names = [column[0] for column in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return {(row["affiliate_id"], _as_date(row["day"])): _normalized(row) for row in rows}


def _as_date(value) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value


def _normalized(row: dict) -> dict[str, object]:
    """Counters as int and Decimal to the cent, whatever the database handed back (SQLite sums floats)."""
    return {
        name: Decimal(str(row[name] or 0)).quantize(CENT) if name in MONEY_COUNTERS else int(row[name] or 0)
        for name in COUNTERS
    }


def stored_stats(*, program: Program, first: date, end: date) -> dict[Key, dict[str, object]]:
    """The DailyStats rows of ``program`` for local days [first, end), normalized like fresh_stats."""
    with scope(program=program):
        rows = list(
            DailyStats.objects.filter(program=program, day__gte=first, day__lt=end).values(
                "affiliate_id", "day", *COUNTERS
            )
        )
    return {(row["affiliate_id"], row["day"]): _normalized(row) for row in rows}


# --- The dirty-key loop --------------------------------------------------------------------------------------


def _transient(error: OperationalError) -> bool:
    return getattr(error.__cause__, "pgcode", None) in TRANSIENT_PGCODES


def _goal_progress_refresher() -> Callable | None:
    """goals' refresh_goal_progress (the progress engine, written alongside), or None until it exists."""
    for module in ("goals.services", "goals.progress"):
        try:
            return importlib.import_module(module).refresh_goal_progress
        except (ImportError, AttributeError):
            continue
    logger.info("Goal progress not refreshed: refresh_goal_progress does not exist yet.")
    return None


def _refresh_goal_progress(program: Program, keys: list[Key]) -> None:
    """Refresh the goals the recomputed cells feed: their months, and this month (LTV and churn look back)."""
    refresh_goal_progress = _goal_progress_refresher()
    if refresh_goal_progress is None:
        return
    affiliates_by_month: dict[date, set[int]] = defaultdict(set)
    this_month = month_start(local_now(program).date())
    for affiliate_id, day in keys:
        affiliates_by_month[month_start(day)].add(affiliate_id)
        if month_start(day) < this_month:
            affiliates_by_month[this_month].add(affiliate_id)
    for month, affiliate_ids in sorted(affiliates_by_month.items()):
        # Past a few hundred affiliates, reading the month's goals whole beats sending their ids along.
        listed = sorted(affiliate_ids) if len(affiliate_ids) <= REFRESH_LISTED_AFFILIATES else None
        refresh_goal_progress(program=program, month=month, affiliate_ids=listed)


def _process_program(program: Program, limit: int) -> int:
    """Claim, recompute and clear the marks of up to ``limit`` dirty cells of one program, in one transaction."""
    with scope(program=program), transaction.atomic():
        if not _lock_program(program, wait=False):
            return 0  # Another worker is on this program; its next round picks up what is left.
        cells, claimed = _claim_marks(program, limit)
        if not cells:
            return 0
        recompute_days(program=program, keys=cells)
        # Deleted in the transaction that wrote the rows: a crash before commit leaves every mark. Deleted by
        # id, before the progress refresh, so a clawback it books marks its cell anew, kept for next round.
        _delete_marks(claimed)
        _refresh_goal_progress(program, cells)
    return len(cells)


def _claim_marks(program: Program, limit: int) -> tuple[list[Key], list[int]]:
    """Up to ``limit`` marked cells of the program and the ids of all their marks, in one statement.

    Every committed mark of those cells comes along (a burst of writes on one cell is one recompute); marks
    of events still in flight are invisible here, so they stay for the next round (tracking/dirty.py).
    """
    table = _table(StatsDirtyKey)
    sql = (
        f"WITH cells AS (SELECT DISTINCT affiliate_id, day FROM {table} WHERE program_id = %s "
        f"ORDER BY affiliate_id, day LIMIT %s) SELECT m.id, m.affiliate_id, m.day FROM {table} m "
        "JOIN cells ON cells.affiliate_id = m.affiliate_id AND cells.day = m.day WHERE m.program_id = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [program.pk, limit, program.pk])
        rows = cursor.fetchall()
    cells = sorted({(affiliate_id, _as_date(day)) for _pk, affiliate_id, day in rows})
    return cells, [pk for pk, _affiliate_id, _day in rows]


def _delete_marks(ids: list[int]) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # one array parameter, however many marks
            cursor.execute(f"DELETE FROM {_table(StatsDirtyKey)} WHERE id = ANY(%s)", [ids])
        return
    for start in range(0, len(ids), KEYS_PER_STATEMENT):
        StatsDirtyKey.objects.filter(pk__in=ids[start : start + KEYS_PER_STATEMENT]).delete()


def process_dirty_keys(*, limit: int | None = None) -> int:
    """Recompute up to ``limit`` dirty cells per program, for every program with some; returns how many cells.

    A program's marks are read and deleted in the transaction that upserts their cells' rows, under the
    program's rollup lock, so a crash (or SIGKILL) rolls both back and the marks stay for the next run.
    """
    limit = limit or settings.ROLLUP_BATCH_KEYS
    with scopes_disabled():
        program_ids = sorted(set(StatsDirtyKey.objects.values_list("program_id", flat=True).distinct()))
        programs = list(Program.objects.filter(pk__in=program_ids).order_by("pk"))
    processed = 0
    for program in programs:
        for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
            try:
                processed += _process_program(program, limit)
                break
            except OperationalError as error:
                if not _transient(error) or attempt == TRANSIENT_ATTEMPTS:
                    logger.exception("Rollups of program %s failed; its keys stay dirty.", program.pk)
                    break
                time.sleep(0.05 * attempt)
            except Exception:
                # One program's bad data must not stop the others; its keys stay dirty and are retried.
                logger.exception("Rollups of program %s failed; its keys stay dirty.", program.pk)
                break
    return processed


def drain_dirty_keys(*, seconds: float, limit: int | None = None) -> int:
    """Run process_dirty_keys until nothing is left or ``seconds`` have passed; returns how many keys."""
    limit = limit or settings.ROLLUP_BATCH_KEYS
    deadline = time.monotonic() + seconds
    total = 0
    while True:
        done = process_dirty_keys(limit=limit)
        total += done
        if done == 0 or time.monotonic() >= deadline:
            return total


def dirty_backlog() -> tuple[int, datetime | None]:
    """How many marks wait to be processed (a cell written often has several), and when the oldest was made."""
    with scopes_disabled():
        backlog = StatsDirtyKey.objects.aggregate(count=Count("pk"), oldest=Min("marked_at"))
    return backlog["count"], backlog["oldest"]


# --- Rebuild and reconciliation --------------------------------------------------------------------------------

Progress = Callable[[JobRun, date, date], None]


def _finish(job: JobRun, *, status: str, message: str) -> None:
    job.status, job.message, job.finished_at = status, message, timezone.now()
    job.save(update_fields=["status", "message", "finished_at", "done"])


def rebuild_stats(
    *,
    program: Program,
    first_month: date,
    last_month: date,
    chunk_days: int | None = None,
    on_progress: Progress | None = None,
    created_by=None,
) -> JobRun:
    """Rebuild every DailyStats row of the program-local months [first_month … last_month] from raw events.

    Works through the range ``chunk_days`` local days per transaction, recording days done / total in a
    JobRun that a page can poll; a rebuild that dies half way is simply run again.
    """
    chunk_days = chunk_days or settings.ROLLUP_REBUILD_CHUNK_DAYS
    first, end = month_start(first_month), next_month(month_start(last_month))
    job = JobRun.objects.create(
        program=program,
        kind="rebuild_stats",
        status=JobRun.Status.RUNNING,
        total=(end - first).days,
        created_by=created_by,
        message=f"Rebuilding daily stats {first:%Y-%m} … {last_month:%Y-%m}.",
    )
    written = 0
    try:
        day = first
        while day < end:
            chunk_end = min(day + timedelta(days=chunk_days), end)
            written += recompute_range(program=program, first=day, end=chunk_end)
            job.done = (chunk_end - first).days
            job.save(update_fields=["done"])
            if on_progress:
                on_progress(job, day, chunk_end)
            day = chunk_end
        _refresh_months(program, first, end)
    except Exception as error:
        _finish(job, status=JobRun.Status.FAILED, message=f"Failed after {job.done}/{job.total} days: {error}")
        raise
    _finish(job, status=JobRun.Status.DONE, message=f"Rebuilt {job.total} days; {written} rows changed.")
    return job


def _refresh_months(program: Program, first: date, end: date) -> None:
    """After a rebuild: refresh every goal of the rebuilt months, and of this month (LTV and churn look back)."""
    refresh_goal_progress = _goal_progress_refresher()
    if refresh_goal_progress is None:
        return
    months, month = set(), first
    while month < end:
        months.add(month)
        month = next_month(month)
    this_month = month_start(local_now(program).date())
    if any(month < this_month for month in months):
        months.add(this_month)
    with scope(program=program), transaction.atomic():
        for month in sorted(months):
            # Every goal of the month: no list of the program's affiliates to send along.
            refresh_goal_progress(program=program, month=month)


@contextmanager
def _consistent_snapshot():
    """A transaction in which every read sees one snapshot (PostgreSQL REPEATABLE READ, read only)."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


@dataclass(frozen=True)
class Drift:
    key: Key
    stored: dict[str, object]
    fresh: dict[str, object]

    def describe(self) -> str:
        changes = ", ".join(
            f"{name} {self.stored[name]}→{self.fresh[name]}"
            for name in COUNTERS
            if self.stored[name] != self.fresh[name]
        )
        return f"affiliate {self.key[0]} on {self.key[1]}: {changes}"


def find_drift(*, program: Program, first: date, end: date) -> tuple[list[Drift], int]:
    """Cells of [first, end) whose stored numbers differ from the raw events, and how many cells were checked.

    Read in one snapshot, and cells still marked dirty are not drift (their recompute is on its way): so any
    difference reported is a real defect of the pipeline, not a race with it.
    """
    zero = dict.fromkeys(COUNTERS, 0) | dict.fromkeys(MONEY_COUNTERS, Decimal("0.00"))
    with _consistent_snapshot(), scope(program=program):
        fresh = fresh_stats(program=program, first=first, end=end)
        stored = stored_stats(program=program, first=first, end=end)
        pending = set(
            StatsDirtyKey.objects.filter(program=program, day__gte=first, day__lt=end).values_list(
                "affiliate_id", "day"
            )
        )
    drift = [
        Drift(key, stored.get(key, zero), fresh.get(key, zero))
        for key in sorted(fresh.keys() | stored.keys())
        if key not in pending and stored.get(key, zero) != fresh.get(key, zero)
    ]
    return drift, len(fresh.keys() | stored.keys())


def reconcile_stats(*, program: Program, days: int | None = None, created_by=None) -> JobRun:
    """Recompute the last ``days`` local days of ``program`` from raw events, report any drift, and fix it.

    There should be none: a drift means an event write that did not mark its cell, or a bug here. It is
    logged as a warning and written to the JobRun message (first cells in full), then recomputed.
    """
    days = days or settings.ROLLUP_RECONCILE_DAYS
    end = local_now(program).date() + timedelta(days=1)
    first = end - timedelta(days=days)
    job = JobRun.objects.create(
        program=program, kind="reconcile_stats", status=JobRun.Status.RUNNING, total=days, created_by=created_by
    )
    try:
        drift, checked = find_drift(program=program, first=first, end=end)
        if drift:
            recompute_days(program=program, keys=[item.key for item in drift])
        job.done = days
    except Exception as error:
        _finish(job, status=JobRun.Status.FAILED, message=f"Reconciliation failed: {error}")
        raise
    period = f"{first} … {end - timedelta(days=1)}"
    if drift:
        shown = "; ".join(item.describe() for item in drift[:20])
        more = f" (and {len(drift) - 20} more)" if len(drift) > 20 else ""
        message = f"Drift in {len(drift)} of {checked} cells over {period}, fixed: {shown}{more}."
        logger.warning("Rollup drift in program %s: %s", program.pk, message)
    else:
        message = f"No drift: {checked} cells over {period} match the raw events."
    _finish(job, status=JobRun.Status.DONE, message=message)
    return job
