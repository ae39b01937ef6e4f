"""Validators for the standard codes a program is configured with (IANA zones, ISO 4217, ISO 3166)."""

import zoneinfo
from functools import cache

from babel import Locale
from babel.numbers import list_currencies
from django.core.exceptions import ValidationError
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _


@cache
def timezone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def validate_timezone(value: str) -> None:
    if value not in timezone_names():
        raise ValidationError(
            _("“%(value)s” is not an IANA time zone such as Europe/Warsaw."),
            params={"value": value},
            code="invalid_timezone",
        )


@cache
def currency_codes() -> frozenset[str]:
    return frozenset(list_currencies())


def validate_currency(value: str) -> None:
    if value not in currency_codes():
        raise ValidationError(
            _("“%(value)s” is not an ISO 4217 currency code such as EUR."),
            params={"value": value},
            code="invalid_currency",
        )


def country_choices() -> list[tuple[str, str]]:
    """ISO 3166 alpha-2 countries, named in the active language and sorted by name."""
    language = (get_language() or "en").replace("-", "_")
    try:
        territories = Locale.parse(language).territories
    except (ValueError, LookupError):
        territories = Locale("en").territories
    codes = ((code, name) for code, name in territories.items() if len(code) == 2 and code.isalpha())
    return sorted(codes, key=lambda item: item[1])


def validate_country(value: str) -> None:
    if value not in Locale("en").territories or len(value) != 2 or not value.isalpha():
        raise ValidationError(
            _("“%(value)s” is not an ISO 3166 country code such as PL."),
            params={"value": value},
            code="invalid_country",
        )
