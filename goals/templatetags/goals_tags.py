"""Template helpers of the goal pages: KPI numbers with their units and definitions, and progress bars.

Every number shown next to a goal goes through ``kpi_number`` so the unit (program currency, %, count), the
two decimals of ratios and "—" for undefined values are decided in one place, from the one KPI registry.
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from babel.numbers import format_currency, format_decimal
from django import template
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from goals.kpis import KPI, REGISTRY, Shape, Unit
from goals.models import Goal, GoalKind, GoalProgress, GoalStatus
from goals.progress import MANUAL_KPI

register = template.Library()

HUNDRED = Decimal(100)
CENTS = Decimal("0.01")
DASH = "—"


def kpi_named(name: str) -> KPI:
    """The registry's KPI, or the manual activity pseudo-KPI for "manual" (and anything unknown)."""
    return REGISTRY.get(name, MANUAL_KPI)


def _decimal(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _locale() -> str:
    return (get_language() or "en").replace("-", "_")


def format_kpi(value, kpi: KPI, currency: str) -> str:
    """A KPI value as people read it: €1,234.50, 5.00 %, 1,200; "—" when undefined."""
    number = _decimal(value)
    if number is None:
        return DASH
    locale = _locale()
    if kpi.unit == Unit.CURRENCY:
        try:
            return format_currency(number, currency, locale=locale)
        except (ValueError, LookupError):
            return format_currency(number, currency, locale="en")
    if kpi.unit == Unit.PERCENT:
        return f"{format_decimal(number.quantize(CENTS, ROUND_HALF_UP), format='#,##0.00', locale=locale)} %"
    if kpi.shape == Shape.RATIO:
        return format_decimal(number.quantize(CENTS, ROUND_HALF_UP), format="#,##0.00", locale=locale)
    # Counts are whole numbers; a manual value may carry decimals ("2.5 articles"), shown as entered.
    pattern = "#,##0" if number == number.to_integral_value() else "#,##0.##"
    return format_decimal(number, format=pattern, locale=locale)


@register.simple_tag(takes_context=True)
def kpi_number(context, value, kpi_name: str) -> str:
    """``{% kpi_number value "conversion_rate" %}`` in the current program's currency."""
    program = context.get("current_program")
    return format_kpi(value, kpi_named(kpi_name), getattr(program, "currency", "EUR"))


@register.simple_tag(takes_context=True)
def money(context, value) -> str:
    """An amount in the current program's currency: €1,234.50; "—" when missing."""
    program = context.get("current_program")
    return format_kpi(value, REGISTRY["commission"], getattr(program, "currency", "EUR"))


@register.filter
def percent(value) -> str:
    """A progress percentage with two decimals: 40.00 %; "—" when undefined."""
    number = _decimal(value)
    if number is None:
        return DASH
    return f"{format_decimal(number.quantize(CENTS, ROUND_HALF_UP), format='#,##0.00', locale=_locale())} %"


@register.filter
def kpi_label(name: str) -> str:
    return str(kpi_named(name).label)


@register.filter
def kpi_definition(name: str) -> str:
    return str(kpi_named(name).definition)


@register.filter
def goal_title(goal: Goal) -> str:
    """What a goal measures in words: the KPI's label, or the manual activity."""
    return goal.label if goal.kind == GoalKind.MANUAL else str(kpi_named(goal.kpi).label)


@register.filter
def goal_kpi(goal: Goal) -> str:
    """The registry name a goal's numbers are formatted with ("manual" for hand-checked activities)."""
    return "manual" if goal.kind == GoalKind.MANUAL else goal.kpi


def _width(value: Decimal | None) -> str:
    """A CSS percentage between 0 and 100, with a dot as decimal separator whatever the language."""
    if value is None:
        return "0"
    return f"{max(Decimal(0), min(HUNDRED, value)).quantize(Decimal('0.1'), ROUND_HALF_UP):f}"


@dataclass(frozen=True)
class Bar:
    """Widths of a progress bar: confirmed and provisional fills, and the pace marker (None: no marker)."""

    confirmed: str
    provisional: str
    pace: str | None
    over: bool  # the provisional progress passed 100 %


@register.filter
def progress_of(goal: Goal) -> GoalProgress | None:
    try:
        return goal.progress
    except GoalProgress.DoesNotExist:
        return None


@register.filter
def bar(goal: Goal) -> Bar | None:
    """The bar of a goal from its stored progress; the pace marker only where pace applies (counts and sums
    where higher is better: expected-by-now as a share of the target)."""
    progress = progress_of(goal)
    if progress is None:
        return None
    kpi = kpi_named(goal_kpi(goal))
    pace = None
    if not kpi.is_ratio and not kpi.lower_is_better and progress.expected_now is not None and goal.target:
        pace = _width(progress.expected_now / goal.target * HUNDRED)
    provisional = progress.progress_provisional
    return Bar(
        confirmed=_width(progress.progress_confirmed),
        provisional=_width(provisional),
        pace=pace,
        over=provisional is not None and provisional > HUNDRED,
    )


@register.filter
def total_bar(total) -> Bar | None:
    """The bar of a totals cell (goals.board.ColumnTotal) for counts and sums; None for ratios."""
    if total is None or total.progress_provisional is None:
        return None
    return Bar(
        confirmed=_width(total.progress_confirmed),
        provisional=_width(total.progress_provisional),
        pace=None if total.pace is None else _width(total.pace),
        over=total.progress_provisional > HUNDRED,
    )


@register.filter
def status_label(status: str) -> str:
    try:
        return str(GoalStatus(status).label)
    except ValueError:
        return _("No progress yet")


@register.filter
def get_item(mapping, key):
    """``mapping|get_item:key`` for dicts keyed by variables."""
    if mapping is None:
        return None
    return mapping.get(key)
