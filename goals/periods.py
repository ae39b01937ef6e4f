"""Program-local calendar arithmetic: days and months in the program's time zone, stored as UTC instants."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.utils import timezone

from affiliates.models import Program


def program_zone(program: Program) -> ZoneInfo:
    return ZoneInfo(program.timezone)


def local_now(program: Program) -> datetime:
    return timezone.now().astimezone(program_zone(program))


def local_date(program: Program, moment: datetime) -> date:
    """The program-local calendar day of an aware instant."""
    return moment.astimezone(program_zone(program)).date()


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(month: date) -> date:
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1)


def previous_month(month: date) -> date:
    return (month.replace(day=1) - timedelta(days=1)).replace(day=1)


def month_from_text(text: str) -> date:
    """A month written YYYY-MM (URLs, commands, task arguments) as its first day; ValueError if it is not one."""
    year, month = text.strip().split("-")
    return date(int(year), int(month), 1)


def month_of(program: Program, moment: datetime) -> date:
    """First day of the program-local month an instant falls in (KPI.md example 9)."""
    return month_start(local_date(program, moment))


def day_start(program: Program, day: date) -> datetime:
    """The UTC instant a program-local day begins (DST-aware: some local days last 23 or 25 hours)."""
    return datetime.combine(day, time.min, tzinfo=program_zone(program)).astimezone(ZoneInfo("UTC"))


@dataclass(frozen=True)
class Period:
    """A half-open range of program-local days [first, end)."""

    first: date
    end: date

    @classmethod
    def month(cls, month: date) -> "Period":
        return cls(month_start(month), next_month(month))

    @property
    def days(self) -> int:
        return (self.end - self.first).days

    def instants(self, program: Program) -> tuple[datetime, datetime]:
        """The period as UTC instants [start, end) for querying raw events."""
        return day_start(program, self.first), day_start(program, self.end)


def elapsed_share(program: Program, month: date, now: datetime | None = None) -> Decimal:
    """Share of the program-local month gone at ``now``, in local wall-clock time: 0 < share ≤ 1.

    Wall-clock, not UTC seconds, so day 10 at 00:00 is 9/30 of a 30-day month even across a DST change.
    """
    zone = program_zone(program)
    moment = (now or timezone.now()).astimezone(zone).replace(tzinfo=None)
    start = datetime.combine(month_start(month), time.min)
    end = datetime.combine(next_month(month), time.min)
    share = Decimal((moment - start).total_seconds()) / Decimal((end - start).total_seconds())
    # Clamp: before the month nothing is expected yet, but the share must stay above 0 for projections.
    return min(Decimal(1), max(share, Decimal(1) / Decimal((end - start).total_seconds())))
