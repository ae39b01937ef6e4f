"""Template filters for tracking pages: money in a currency, and human labels for machine codes."""

from decimal import Decimal, InvalidOperation

from babel.numbers import format_currency
from django import template
from django.utils.translation import get_language

from tracking.labels import reason_label

register = template.Library()


@register.filter
def money(value, currency: str) -> str:
    """``value`` (a Decimal, never a float) formatted in ``currency`` for the active language: €1,234.50."""
    if value is None or value == "":
        return "—"
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        return "—"
    locale = (get_language() or "en").replace("-", "_")
    try:
        return format_currency(amount, currency, locale=locale)
    except (ValueError, LookupError):
        return format_currency(amount, currency, locale="en")


@register.filter
def reason(code: str) -> str:
    """A person's words for a machine reason or fraud flag (cap_reached → Cap reached)."""
    return reason_label(code)


@register.filter
def sub_ids(row) -> list[tuple[str, str]]:
    """The filled sub-IDs of a click (or anything with sub1–sub5), as (name, value) pairs."""
    names = ("sub1", "sub2", "sub3", "sub4", "sub5")
    return [(name, getattr(row, name)) for name in names if getattr(row, name, "")]
