"""Template helpers of the goal pages: KPI numbers with their units and definitions, and progress bars.

Every number shown next to a goal goes through ``kpi_number`` so the unit (program currency, %, count), the
two decimals of ratios and "—" for undefined values are decided in one place, from the one KPI registry.
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from html import escape

from babel import Locale, UnknownLocaleError
from babel.numbers import get_currency_precision, get_decimal_symbol, get_group_symbol
from django import template
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from goals.kpis import KPI, REGISTRY, Shape, Unit
from goals.models import Goal, GoalKind, GoalProgress, GoalStatus
from goals.progress import MANUAL_KPI

register = template.Library()

HUNDRED = Decimal(100)
STEPS = {0: Decimal(1), 2: Decimal("0.01"), 3: Decimal("0.001")}
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


# A board formats about 900 numbers a page. Babel decides each language's symbols and each currency's layout
# once (cached); applying a Babel pattern per number cost a third of a board's render, str.format costs little.
@lru_cache(maxsize=32)
def _babel_locale(language: str) -> Locale:
    try:
        return Locale.parse(language.replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        return Locale.parse("en")


@lru_cache(maxsize=32)
def _symbols(language: str) -> tuple[str, str, str]:
    """(decimal, group, minus) symbols of a language: ".", ",", "-" in English; ",", no-break space, "-" in Polish.

    The minus is Babel's pattern minus ("-") in every language, as Babel's own formatting writes it.
    """
    locale = _babel_locale(language)
    return get_decimal_symbol(locale), get_group_symbol(locale), "-"


def _grouped(number: Decimal, places: int, language: str) -> str:
    decimal, group, minus = _symbols(language)
    rounded = abs(number).quantize(STEPS[places], ROUND_HALF_UP)  # half up, as people round (not half even)
    text = f"{rounded:,f}".replace(",", "\0").replace(".", decimal).replace("\0", group)
    return f"{minus}{text}" if number < 0 else text


@lru_cache(maxsize=64)
def _currency_layout(language: str, currency: str) -> tuple[str, str, int] | None:
    """(prefix, suffix, decimals) of amounts in ``currency``: ("€", "", 2) in English, ("", " €", 2) in Polish."""
    locale = _babel_locale(language)
    try:
        places = min(get_currency_precision(currency), 3)
        sample = locale.currency_formats["standard"].apply(Decimal(1), locale, currency=currency)
    except (ValueError, LookupError):
        return None
    prefix, found, suffix = sample.partition(_grouped(Decimal(1), places, language))
    return (prefix, suffix, places) if found else None


def format_kpi(value, kpi: KPI, currency: str, language: str | None = None) -> str:
    """A KPI value as people read it: €1,234.50, 5.00 %, 1,200; "—" when undefined."""
    number = _decimal(value)
    if number is None:
        return DASH
    language = language or get_language() or "en"
    if kpi.unit == Unit.CURRENCY:
        layout = _currency_layout(language, currency) or _currency_layout("en", currency) or ("", f" {currency}", 2)
        prefix, suffix, places = layout
        text = f"{prefix}{_grouped(abs(number), places, language)}{suffix}"
        return f"{_symbols(language)[2]}{text}" if number < 0 else text
    if kpi.unit == Unit.PERCENT:
        return f"{_grouped(number, 2, language)} %"
    if kpi.shape == Shape.RATIO:
        return _grouped(number, 2, language)
    # Counts show whole numbers, expected-by-now and projections included (146.85 clicks reads oddly); a manual
    # activity's reported value may carry decimals ("2.5 articles"), shown as entered (up to two).
    if number == number.to_integral_value() or kpi.name != MANUAL_KPI.name:
        return _grouped(number, 0, language)
    return _grouped(number, 2, language).rstrip("0")


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
    return f"{_grouped(number, 2, get_language() or 'en')} %"


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


@lru_cache(maxsize=16)
def _words(language: str) -> dict[str, str]:
    """The words around every goal's numbers, translated once per language instead of once per goal."""
    return {
        "provisional": _("Provisional value"),
        "of_target": _("of the target"),
        "confirmed": _("confirmed"),
        "confirmed_title": _("Confirmed: approved conversions only."),
        "expected": _("expected"),
        "expected_title": _("Expected by now at an even pace through the month."),
        "projection": _("projection"),
        "projection_title": _("Projected for the whole month at the current pace."),
        "progress_title": _("Progress towards the target (provisional)"),
        "no_progress": _("No progress yet"),
        "edit_target": _("Edit target"),
        "enter_value": _("Enter value"),
        "confirm": _("Confirm"),
        "set": _("Set"),
        "awaiting": _("Reported by the affiliate, waiting for confirmation"),
        **{status: str(label) for status, label in GoalStatus.choices},
    }


@dataclass(frozen=True)
class GoalDisplay:
    """Everything a goal's progress block shows, formatted once in Python (a board shows 150 of them)."""

    definition: str
    value: str
    target: str
    status: str  # a CSS class: a GoalStatus value, or "none" before the first progress
    status_label: str
    bar: Bar | None
    confirmed: str | None  # None: no progress yet, no detail line
    expected: str | None  # None where pace does not apply
    projection: str
    progress: str
    words: dict


@register.filter
def display(goal: Goal, program) -> GoalDisplay:
    """``{% with d=goal|display:current_program %}``: the goal's numbers in the program's currency."""
    kpi = kpi_named(goal_kpi(goal))
    currency = getattr(program, "currency", "EUR")
    language = get_language() or "en"
    words = _words(language)
    progress = progress_of(goal)
    shown = bar(goal)
    if progress is None:
        return GoalDisplay(
            str(kpi.definition), DASH, format_kpi(goal.target, kpi, currency, language), "none", words["no_progress"],
            None, None, None, DASH, DASH, words,
        )  # fmt: skip
    return GoalDisplay(
        definition=str(kpi.definition),
        value=format_kpi(progress.value_provisional, kpi, currency, language),
        target=format_kpi(goal.target, kpi, currency, language),
        status=progress.status,
        status_label=words.get(progress.status, progress.status),
        bar=shown,
        confirmed=format_kpi(progress.value_confirmed, kpi, currency, language),
        expected=format_kpi(progress.expected_now, kpi, currency, language) if shown and shown.pace else None,
        projection=format_kpi(progress.projection, kpi, currency, language),
        progress=percent(progress.progress_provisional),
        words=words,
    )


@register.simple_tag
def goal_words() -> dict[str, str]:
    """``{% goal_words as w %}``: the goal pages' recurring words in the active language."""
    return _words(get_language() or "en")


# The board shows 150 of these blocks a page, and the portal and the goal pages one each. Built here with
# str.format over escaped values rather than in a template (or with format_html): as a template it cost about
# half a millisecond per goal, which alone took a board page over its 50 ms budget.
BAR = (
    '<div class="goalbar{over}" aria-hidden="true"><span class="fill provisional" style="width: {provisional}%">'
    '</span><span class="fill confirmed" style="width: {confirmed}%"></span>{pace}</div>'
)
PACE = '<span class="pace" style="left: {}%"></span>'
LINE = (
    '<div class="goal-line"><span class="value" title="{definition}"><span class="visually-hidden">{provisional} '
    '</span>{value}</span> <span class="of">/ <span title="{definition}"><span class="visually-hidden">{of_target} '
    '</span>{target}</span></span> <span class="badge goal-status {status}">{status_label}</span></div>'
)
META = '<span title="{} {}">{} {}</span>'


def goal_progress_html(goal: Goal, program) -> SafeString:
    """A goal's progress block: the bar (confirmed over provisional, pace marker), the numbers and status."""
    d = display(goal, program)
    w = d.words
    definition = escape(d.definition)
    parts = []
    if d.bar:
        parts.append(
            BAR.format(
                over=" over" if d.bar.over else "",
                provisional=d.bar.provisional,
                confirmed=d.bar.confirmed,
                pace=PACE.format(d.bar.pace) if d.bar.pace else "",
            )
        )
    parts.append(
        LINE.format(
            definition=definition,
            provisional=escape(w["provisional"]),
            value=escape(d.value),
            of_target=escape(w["of_target"]),
            target=escape(d.target),
            status=escape(d.status),
            status_label=escape(d.status_label),
        )
    )
    if d.confirmed is not None and progress_of(goal).value_provisional is not None:
        meta = [META.format(definition, escape(w["confirmed_title"]), escape(w["confirmed"]), escape(d.confirmed))]
        if d.expected is not None:
            meta.append(META.format(definition, escape(w["expected_title"]), escape(w["expected"]), escape(d.expected)))
        meta.append(
            META.format(definition, escape(w["projection_title"]), escape(w["projection"]), escape(d.projection))
        )
        meta.append(f'<span title="{escape(w["progress_title"])}">{escape(d.progress)}</span>')
        parts.append(f'<div class="goal-meta">{" · ".join(meta)}</div>')
    # Every value above went through html.escape; the rest is this module's own markup.
    return mark_safe(f'<div class="goal-progress">{"".join(parts)}</div>')  # noqa: S308


@register.simple_tag(takes_context=True)
def goal_progress(context, goal: Goal) -> SafeString:
    """``{% goal_progress goal %}`` in the current program's currency."""
    return goal_progress_html(goal, context.get("current_program"))


@register.simple_tag(takes_context=True)
def goal_cell(context, cell) -> SafeString:
    """``{% goal_cell cell %}``: one board cell (goals.board.BoardCell) with its goals and, for managers of an
    open month, their tools. In Python for the same reason as goal_progress_html: a board has 150 of them."""
    program = context.get("current_program")
    words = _words(get_language() or "en")
    prefix = escape(context.get("goal_prefix", ""))
    can_edit = context.get("can_edit")
    goals = []
    for goal in cell.goals:
        manual = goal.kind == GoalKind.MANUAL
        awaiting = manual and goal.manual_value is not None and not goal.manual_confirmed
        parts = []
        if manual:
            note = f' title="{escape(goal.manual_note)}"' if goal.manual_note else ""
            parts.append(f'<div class="goal-label"{note}>{escape(goal.label)}</div>')
        parts.append(goal_progress_html(goal, program))
        if awaiting:
            parts.append(f'<div class="goal-meta warn">{escape(words["awaiting"])}</div>')
        if can_edit:
            url = f"{prefix}{goal.pk}/"
            if not manual:
                tools = (
                    f'<a href="{url}" hx-get="{url}target/" hx-target="closest td" hx-swap="outerHTML">'
                    f"{escape(words['edit_target'])}</a>"
                )
            else:
                tools = f'<a href="{url}value/">{escape(words["enter_value"])}</a>'
                if awaiting:
                    token = escape(str(context.get("csrf_token", "")))
                    tools += (
                        f' <form method="post" action="{url}confirm/" class="inline">'
                        f'<input type="hidden" name="csrfmiddlewaretoken" value="{token}">'
                        f'<button type="submit" class="link">{escape(words["confirm"])}</button></form>'
                    )
            parts.append(f'<div class="goal-tools">{tools}</div>')
        goals.append(f'<div class="goal">{"".join(parts)}</div>')
    if not goals:
        if can_edit:
            kpi = "" if cell.column.key == "manual" else f"&amp;kpi={escape(cell.column.key)}"
            create = escape(context.get("create_url", ""))
            goals.append(
                f'<a class="set-goal" href="{create}?affiliate={cell.affiliate_id}{kpi}">+ {escape(words["set"])}</a>'
            )
        else:
            goals.append('<span class="muted">—</span>')
    oob = ' hx-swap-oob="true"' if context.get("oob") else ""
    # Every value above went through html.escape; the rest is this module's own markup.
    return mark_safe(f'<td id="{escape(cell.dom_id)}" class="goal-cell"{oob}>{"".join(goals)}</td>')  # noqa: S308


@register.filter
def trend(change) -> str:
    """A change in % against earlier months as an arrow of its direction and a signed figure: ▲ +12.50 %."""
    number = _decimal(change)
    if number is None:
        return ""
    arrow = "▲" if number > 0 else "▼" if number < 0 else "·"
    sign = "+" if number > 0 else ""
    return f"{arrow} {sign}{percent(number)}"
