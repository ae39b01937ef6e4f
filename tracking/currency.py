"""Currencies of conversions: ISO 4217 codes, the manager's rate table, and conversion to the program currency.

A conversion keeps the amount and currency it was posted with. Its revenue is in the program currency:
``amount × rate`` rounded half-up to the cent, where the rate is the program's ``CurrencyRate`` for the
currency on the conversion's program-local day, or else the latest one before it that is at most
``RATE_MAX_AGE_DAYS`` old (rate tables skip weekends and holidays). No such rate is an error naming the
currency, so a sale is never converted with a guess.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from affiliates.models import Program
from affiliates.validators import currency_codes
from tracking.models import CurrencyRate

CENT = Decimal("0.01")
RATE_MAX_AGE_DAYS = 7
MAX_AMOUNT = Decimal("999999999999.99")  # 12 integer digits: what a MONEY column holds


@dataclass(frozen=True)
class Money:
    """An amount as received, and its value in the program currency."""

    amount: Decimal
    currency: str
    rate: Decimal
    revenue: Decimal


def to_cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def clean_currency(value: str | None, *, program: Program) -> str:
    """An ISO 4217 code (case-insensitive on input); empty means the program currency."""
    code = (value or "").strip().upper()
    if not code:
        return program.currency
    if code not in currency_codes():
        raise ValidationError(
            {
                "currency": ValidationError(
                    _("“%(code)s” is not an ISO 4217 currency code."),
                    code="unknown_currency",
                    params={"code": code[:8]},
                )
            }
        )
    return code


def local_day(program: Program, moment: datetime) -> date:
    return moment.astimezone(ZoneInfo(program.timezone)).date()


def rate_for(*, program: Program, currency: str, day: date) -> Decimal:
    """The program's rate for ``currency`` on ``day`` or the latest within RATE_MAX_AGE_DAYS before it."""
    rate = (
        CurrencyRate.objects.filter(
            program=program, currency=currency, day__lte=day, day__gte=day - timedelta(days=RATE_MAX_AGE_DAYS)
        )
        .order_by("-day")
        .values_list("rate", flat=True)
        .first()
    )
    if rate is None:
        raise ValidationError(
            {
                "currency": ValidationError(
                    _(
                        "No %(currency)s → %(program_currency)s rate for %(day)s or the %(max_age)s days before it; "
                        "add one to the program's rate table."
                    ),
                    code="missing_rate",
                    params={
                        "currency": currency,
                        "program_currency": program.currency,
                        "day": day.isoformat(),
                        "max_age": RATE_MAX_AGE_DAYS,
                    },
                )
            }
        )
    return rate


def convert(*, program: Program, amount: Decimal, currency: str, moment: datetime) -> Money:
    """``amount`` in ``currency`` at ``moment``, with its revenue in the program currency."""
    if currency == program.currency:
        return Money(amount=amount, currency=currency, rate=Decimal("1"), revenue=to_cents(amount))
    rate = rate_for(program=program, currency=currency, day=local_day(program, moment))
    revenue = to_cents(amount * rate)
    if revenue > MAX_AMOUNT:
        raise ValidationError(
            {"amount": ValidationError(_("The amount is too large in the program currency."), code="invalid_amount")}
        )
    return Money(amount=amount, currency=currency, rate=rate, revenue=revenue)
