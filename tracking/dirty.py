"""Dirty rollup cells: every event write marks the (program, affiliate, local day) cells it changes.

The mark is written in the same transaction as the event, in PostgreSQL, so the record of what DailyStats
must recompute is exactly as durable as the events themselves; Celery only triggers the work
(goals.rollups.process_dirty_keys, docs/rollups.md).

A mark is a plain INSERT of its own row: one row per cell per write, invisible to everyone else until the
event's transaction commits. That is what makes the rollup loop safe without locks: the loop can only claim
(and delete) marks of committed events, which it reads, so it never clears a mark whose event it has not
seen; a mark written while the loop works is a new row for its next round. Marks never wait for each other
or for the loop, so writers of one busy cell (postbacks of one affiliate on one day) do not queue behind
each other's commits. The loop coalesces: all rows of a cell are one recompute (goals.rollups).

(An upsert keeping one row per cell coalesces earlier, but is only safe if the mark locks the existing row
until the event commits, and then every writer of a cell waits for the previous one's commit and fsync:
bench/postback.py measured 0.6x the throughput for one affiliate's postbacks.)
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from zoneinfo import ZoneInfo

from django.db import connection
from django.utils import timezone
from django_scopes import scopes_disabled

from affiliates.models import Program
from tracking.models import Conversion, ConversionEvent, ConversionKind, ConversionStatus, StatsDirtyKey

Key = tuple[int, date]  # (affiliate id, program-local day)
ROWS_PER_STATEMENT = 2000


def local_days(timezone_name: str, moments_or_days: Iterable[datetime | date]) -> set[date]:
    """Program-local days of aware instants (dates are taken as local days already)."""
    zone = ZoneInfo(timezone_name)
    return {
        value.astimezone(zone).date() if isinstance(value, datetime) else value for value in moments_or_days if value
    }


def mark_keys_dirty(*, program_id: int, keys: Iterable[Key]) -> int:
    """Mark (affiliate id, local day) cells of one program dirty; returns how many distinct cells."""
    rows = sorted({(int(affiliate_id), day) for affiliate_id, day in keys if affiliate_id is not None})
    if not rows:
        return 0
    table = connection.ops.quote_name(StatsDirtyKey._meta.db_table)
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[start : start + ROWS_PER_STATEMENT]
            values = ", ".join(["(%s, %s, %s, %s)"] * len(chunk))
            params = []
            for affiliate_id, day in chunk:
                params += [program_id, affiliate_id, connection.ops.adapt_datefield_value(day), now]
            # A plain insert, no ON CONFLICT: see the module docstring.
            cursor.execute(
                f"INSERT INTO {table} (program_id, affiliate_id, day, marked_at) VALUES {values}",  # noqa: S608
                params,
            )
    return len(rows)


def _timezone_of(program_id: int) -> str:
    with scopes_disabled():
        return Program.objects.filter(pk=program_id).values_list("timezone", flat=True).first() or "UTC"


def mark_dirty(
    *,
    program_id: int,
    affiliate_id: int | None,
    moments_or_days: Iterable[datetime | date],
    timezone_name: str | None = None,
) -> int:
    """Mark one affiliate's cells dirty for the local days of ``moments_or_days`` (instants or local dates)."""
    if affiliate_id is None:
        return 0
    days = local_days(timezone_name or _timezone_of(program_id), moments_or_days)
    return mark_keys_dirty(program_id=program_id, keys=[(affiliate_id, day) for day in days])


def mark_events_dirty(*, events: Iterable[tuple[int, int, datetime]], timezones: Mapping[int, str]) -> int:
    """Mark the cells of stored clicks or impressions, given as (program id, affiliate id, time); one statement
    per program, however many events."""
    keys: dict[int, set[Key]] = defaultdict(set)
    zones = {program_id: ZoneInfo(name) for program_id, name in timezones.items()}
    for program_id, affiliate_id, moment in events:
        keys[program_id].add((affiliate_id, moment.astimezone(zones[program_id]).date()))
    return sum(mark_keys_dirty(program_id=program_id, keys=cells) for program_id, cells in sorted(keys.items()))


def conversion_keys(
    *, program: Program, conversions: Iterable[Conversion], moments: Iterable[datetime] = ()
) -> set[Key]:
    """The cells a write of these conversions can change.

    Its own cell (affiliate, day of the conversion) and the cells of ``moments`` (the day of a status change:
    reversals count there). For a customer, also every cell their "new customer" and "customer lost"
    bookings can move between: each affiliate they converted with × each day they converted, cancelled or
    had a sale reversed on. Two queries per write that carries customer ids.
    """
    conversions = list(conversions)
    zone = ZoneInfo(program.timezone)
    extra_days = {moment.astimezone(zone).date() for moment in moments}
    keys: set[Key] = set()
    for conversion in conversions:
        if conversion.affiliate_id is not None:
            keys.add((conversion.affiliate_id, conversion.created_at.astimezone(zone).date()))
            keys.update((conversion.affiliate_id, day) for day in extra_days)
    customers = {conversion.customer_id for conversion in conversions if conversion.customer_id}
    if not customers:
        return keys
    affiliates: dict[str, set[int]] = defaultdict(set)
    days: dict[str, set[date]] = defaultdict(set)
    with scopes_disabled():
        history = Conversion.objects.filter(program=program, customer_id__in=customers).values_list(
            "customer_id", "affiliate_id", "created_at"
        )
        reversals = ConversionEvent.objects.filter(
            program=program,
            to_status=ConversionStatus.REVERSED,
            conversion__kind=ConversionKind.SALE,
            conversion__customer_id__in=customers,
        ).values_list("conversion__customer_id", "created_at")
        for customer_id, affiliate_id, created_at in history:
            if affiliate_id is not None:
                affiliates[customer_id].add(affiliate_id)
            days[customer_id].add(created_at.astimezone(zone).date())
        for customer_id, created_at in reversals:
            days[customer_id].add(created_at.astimezone(zone).date())
    for customer_id in customers:
        days[customer_id] |= extra_days
        keys.update((affiliate_id, day) for affiliate_id in affiliates[customer_id] for day in days[customer_id])
    return keys


def mark_conversions_dirty(
    *, program: Program, conversions: Iterable[Conversion], moments: Iterable[datetime] = ()
) -> int:
    """Mark the cells a conversion create or status change touches (see conversion_keys); call it last in the
    transaction that writes the conversions, so the row locks it takes are held briefly."""
    return mark_keys_dirty(
        program_id=program.pk, keys=conversion_keys(program=program, conversions=conversions, moments=moments)
    )
