"""Commissions: which rule of the program's default plan pays a conversion, how much, and why.

The most specific rule for the conversion's kind wins: affiliate + offer > affiliate > offer > program-wide;
among equally specific rules the newest one (of the oldest plan, should two plans be marked default). Rule
types: a flat amount (CPA, CPL), a percentage of the revenue in the program currency, or tiers by the
affiliate's volume this program-local month. Any rule may limit recurring sales: a customer's later sales
are renewals (renewal n = n earlier counted sales of the same customer id), and a rule with
``recurring_renewals = N`` pays the first N renewals only (NULL pays every one). Each conversion stores its
rule and a sentence a person understands ("why this payout").
"""

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from django.db.models import Q
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from affiliates.models import Program
from tracking.caps import COUNTED_STATUSES
from tracking.currency import to_cents
from tracking.models import CommissionRule, Conversion, ConversionKind

logger = logging.getLogger(__name__)

ZERO = Decimal("0")
HUNDRED = Decimal("100")
KIND_PLURALS = {
    ConversionKind.SALE: "sales",
    ConversionKind.LEAD: "leads",
    ConversionKind.ENGAGEMENT: "engagement events",
    ConversionKind.CANCELLATION: "cancellations",
}


@dataclass(frozen=True)
class Payout:
    rule: CommissionRule | None
    amount: Decimal
    explanation: str


@dataclass(frozen=True)
class Tier:
    min_conversions: int
    percent: Decimal | None
    amount: Decimal | None
    name: str


def candidate_rules(
    *, program: Program, kind: str, affiliate_id: int | None, offer_id: int | None
) -> list[CommissionRule]:
    """Rules of the program's default plan that could pay a conversion of this kind, affiliate and offer."""
    return list(
        CommissionRule.objects.filter(program=program, plan__is_default=True, kind=kind).filter(
            Q(affiliate_id=affiliate_id) | Q(affiliate__isnull=True), Q(offer_id=offer_id) | Q(offer__isnull=True)
        )
    )


def specificity(rule: CommissionRule) -> int:
    return 2 * bool(rule.affiliate_id) + bool(rule.offer_id)


def pick_rule(rules: list[CommissionRule]) -> CommissionRule | None:
    """The most specific rule; among equals the older default plan's (if several are marked default), then the
    newest rule."""
    return max(rules, key=lambda rule: (specificity(rule), -rule.plan_id, rule.pk), default=None)


def month_volume(*, conversion: Conversion, month: tuple[datetime, datetime]) -> int:
    """The affiliate's counted conversions of this kind in the program-local month, this one included."""
    start, end = month
    earlier = Conversion.objects.filter(
        program_id=conversion.program_id,
        affiliate_id=conversion.affiliate_id,
        kind=conversion.kind,
        status__in=COUNTED_STATUSES,
        created_at__gte=start,
        created_at__lt=end,
    ).count()
    return earlier + 1


def parse_tiers(rule: CommissionRule) -> list[Tier]:
    """The rule's tiers, lowest first; malformed entries are skipped (and logged), never guessed at."""
    tiers = []
    for entry in rule.tiers if isinstance(rule.tiers, list) else []:
        try:
            percent = Decimal(str(entry["percent"])) if entry.get("percent") not in (None, "") else None
            amount = Decimal(str(entry["amount"])) if entry.get("amount") not in (None, "") else None
            tier = Tier(int(entry.get("min_conversions", 0)), percent, amount, str(entry.get("name", "")))
        except (AttributeError, KeyError, TypeError, ValueError, InvalidOperation):
            logger.warning("Commission rule %s has a malformed tier %r; skipped.", rule.pk, entry)
            continue
        if (percent is None) == (amount is None) or not (percent or amount or ZERO).is_finite():
            logger.warning("Commission rule %s tier %r needs exactly one of percent or amount.", rule.pk, entry)
            continue
        tiers.append(tier)
    return sorted(tiers, key=lambda tier: tier.min_conversions)


def calculate_commission(
    conversion: Conversion, *, rules: list[CommissionRule], month: tuple[datetime, datetime]
) -> Payout:
    """The payout of an unsaved ``conversion`` (affiliate, offer, amounts and renewal number set).

    Tiers count the affiliate's counted conversions of this kind in the program-local ``month``, this one
    included (the 50th sale of the month is paid at a "from 50 sales" tier); only tiered rules pay that query.
    """
    if conversion.affiliate_id is None:
        return Payout(None, ZERO, _("No commission: no affiliate is credited with this conversion."))
    rule = pick_rule(rules)
    if rule is None:
        return Payout(
            None,
            ZERO,
            _("No commission: the default commission plan has no rule for %(kinds)s.")
            % {"kinds": KIND_PLURALS[conversion.kind]},
        )
    renewal = conversion.renewal_number
    if renewal and rule.recurring_renewals is not None and renewal > rule.recurring_renewals:
        return Payout(
            rule,
            ZERO,
            _("No commission: this is renewal %(renewal)s of customer “%(customer)s”, and %(rule)s pays %(paid)s.")
            % {
                "renewal": renewal,
                "customer": conversion.customer_id,
                "rule": describe_rule(rule, conversion),
                "paid": paid_renewals(rule),
            },
        )
    amount, how = _rule_amount(rule, conversion, month)
    rule_text = describe_rule(rule, conversion)
    explanation = f"{how} {rule_text[:1].upper()}{rule_text[1:]}."
    if renewal:
        explanation += " " + _("Renewal %(renewal)s of customer “%(customer)s”; the rule pays %(paid)s.") % {
            "renewal": renewal,
            "customer": conversion.customer_id,
            "paid": paid_renewals(rule),
        }
    return Payout(rule, amount, explanation)


def _rule_amount(rule: CommissionRule, conversion: Conversion, month: tuple[datetime, datetime]) -> tuple[Decimal, str]:
    currency = conversion.program.currency
    if rule.rule_type == CommissionRule.Type.FLAT:
        amount = to_cents(rule.amount)
        return amount, _("%(amount)s per %(kind)s.") % {
            "amount": money(amount, currency),
            "kind": ConversionKind(conversion.kind).label.lower(),
        }
    if rule.rule_type == CommissionRule.Type.REVENUE_SHARE:
        amount = to_cents(conversion.revenue * rule.percent / HUNDRED)
        return amount, _("%(percent)s %% of %(base)s = %(amount)s.") % {
            "percent": number(rule.percent),
            "base": revenue_basis(conversion),
            "amount": money(amount, currency),
        }
    volume = month_volume(conversion=conversion, month=month)
    tiers = [tier for tier in parse_tiers(rule) if tier.min_conversions <= volume]
    kinds = KIND_PLURALS[conversion.kind]
    if not tiers:
        return ZERO, _("No commission: %(volume)s %(kinds)s this month is below the lowest tier.") % {
            "volume": volume,
            "kinds": kinds,
        }
    tier = tiers[-1]
    because = _("because of tier “%(name)s”: ≥ %(min)s %(kinds)s this month (this is no. %(volume)s).") % {
        "name": tier.name or _("from %(min)s") % {"min": tier.min_conversions},
        "min": tier.min_conversions,
        "kinds": kinds,
        "volume": volume,
    }
    if tier.percent is not None:
        amount = to_cents(conversion.revenue * tier.percent / HUNDRED)
        how = _("%(percent)s %% of %(base)s = %(amount)s") % {
            "percent": number(tier.percent),
            "base": revenue_basis(conversion),
            "amount": money(amount, currency),
        }
    else:
        amount = to_cents(tier.amount)
        how = _("%(amount)s per %(kind)s") % {
            "amount": money(amount, currency),
            "kind": ConversionKind(conversion.kind).label.lower(),
        }
    return amount, f"{how} {because}"


def describe_rule(rule: CommissionRule, conversion: Conversion) -> str:
    """'rule #7 for every affiliate' / 'for Acme on offer “Shoes”'; the matched rule's scope is the conversion's."""
    if rule.affiliate_id and rule.offer_id:
        scope = _("for %(affiliate)s on offer “%(offer)s”") % {
            "affiliate": conversion.affiliate.name,
            "offer": conversion.offer.name,
        }
    elif rule.affiliate_id:
        scope = _("for %(affiliate)s") % {"affiliate": conversion.affiliate.name}
    elif rule.offer_id:
        scope = _("for offer “%(offer)s”") % {"offer": conversion.offer.name}
    else:
        scope = _("for every affiliate")
    return _("rule #%(pk)s %(scope)s") % {"pk": rule.pk, "scope": scope}


def paid_renewals(rule: CommissionRule) -> str:
    if rule.recurring_renewals is None:
        return _("every renewal")
    if rule.recurring_renewals == 0:
        return _("no renewals")
    count = rule.recurring_renewals
    return ngettext("the first %(count)s renewal only", "the first %(count)s renewals only", count) % {"count": count}


def revenue_basis(conversion: Conversion) -> str:
    """'120.00 EUR', or '108.00 EUR (100.00 USD at 1.08)' when the sale came in another currency."""
    program_currency = conversion.program.currency
    basis = money(conversion.revenue, program_currency)
    if conversion.currency != program_currency:
        basis += f" ({money(conversion.amount, conversion.currency)} at {number(conversion.exchange_rate)})"
    return basis


def money(value: Decimal, currency: str) -> str:
    return f"{to_cents(value)} {currency}"


def number(value: Decimal) -> str:
    """A decimal without trailing zeros and never in exponent notation: 8.000 → 8, 7.50 → 7.5."""
    return format(value.normalize(), "f")


def explain_commission(conversion: Conversion) -> str:
    """Why ``conversion`` pays what it pays ("why this payout"), for managers and the affiliate.

    The sentence is written once, when the conversion is recorded (it depends on the affiliate's volume at
    that time), and stored as ``commission_explanation``; this returns it.
    """
    return conversion.commission_explanation
