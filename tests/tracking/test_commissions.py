"""Commissions: the most specific rule wins; flat, revenue share, tiers, recurring limits; why this payout."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import translation
from django_scopes import scopes_disabled

from tracking import services
from tracking.commissions import explain_commission, paid_renewals
from tracking.models import CommissionPlan, CommissionRule, Conversion, CurrencyRate

pytestmark = pytest.mark.django_db


def sale(sales, order_id, *, amount="120.00", kind="sale", click=None, **fields):
    click = click or sales.click()
    conversion, _ = services.record_conversion(
        program=sales.program,
        source=Conversion.Source.POSTBACK,
        kind=kind,
        order_id=order_id,
        amount=amount,
        click_id=click.click_id,
        **fields,
    )
    return conversion


def paid(conversion) -> tuple:
    return conversion.commission, conversion.commission_rule, conversion.commission_explanation


def test_flat_amount_per_lead(sales):
    rule = sales.rule(kind="lead", rule_type="flat", amount=Decimal("5"))
    sales.rule(kind="sale", rule_type="flat", amount=Decimal("50"))
    lead = sale(sales, None, kind="lead", amount=None)
    assert paid(lead) == (Decimal("5.00"), rule, f"5.00 EUR per lead. Rule #{rule.pk} for every affiliate.")


def test_revenue_share_rounds_half_up_to_the_cent(sales):
    rule = sales.rule(rule_type="revenue_share", percent=Decimal("7.5"))
    conversion = sale(sales, "A-1", amount="0.06")  # 0.0045 → 0.00; 0.07 × 7.5 % = 0.00525 → 0.01
    assert conversion.commission == Decimal("0.00")
    conversion = sale(sales, "A-2", amount="0.07")
    assert paid(conversion) == (
        Decimal("0.01"),
        rule,
        f"7.5 % of 0.07 EUR = 0.01 EUR. Rule #{rule.pk} for every affiliate.",
    )


@time_machine.travel(datetime(2026, 3, 12, 10, 0, tzinfo=UTC), tick=False)
def test_revenue_share_of_a_sale_in_another_currency_explains_the_conversion(sales):
    with scopes_disabled():
        CurrencyRate.objects.create(program=sales.program, currency="USD", day=date(2026, 3, 12), rate=Decimal("0.9"))
    rule = sales.rule(rule_type="revenue_share", percent=Decimal("10"))
    conversion = sale(sales, "A-1", amount="100.00", currency="USD")
    assert paid(conversion) == (
        Decimal("9.00"),
        rule,
        f"10 % of 90.00 EUR (100.00 USD at 0.9) = 9.00 EUR. Rule #{rule.pk} for every affiliate.",
    )


def test_the_most_specific_rule_wins(sales):
    other_offer = sales.offer("Other offer")
    offer, affiliate = sales.tracked.offer, sales.affiliate
    program_wide = sales.rule(rule_type="flat", amount=Decimal("1"))
    newer_program_wide = sales.rule(rule_type="flat", amount=Decimal("2"))
    for_offer = sales.rule(rule_type="flat", amount=Decimal("3"), offer=offer)
    sales.rule(rule_type="flat", amount=Decimal("30"), offer=other_offer)
    for_affiliate = sales.rule(rule_type="flat", amount=Decimal("4"), affiliate=affiliate)
    sales.rule(rule_type="flat", amount=Decimal("40"), affiliate=sales.world.other_affiliate)
    for_both = sales.rule(rule_type="flat", amount=Decimal("5"), affiliate=affiliate, offer=offer)
    sales.rule(rule_type="flat", amount=Decimal("50"), kind="lead", affiliate=affiliate, offer=offer)
    expected = [
        (for_both, Decimal("5.00"), f"Rule #{for_both.pk} for {affiliate.name} on offer “{offer.name}”."),
        (for_affiliate, Decimal("4.00"), f"Rule #{for_affiliate.pk} for {affiliate.name}."),
        (for_offer, Decimal("3.00"), f"Rule #{for_offer.pk} for offer “{offer.name}”."),
        (newer_program_wide, Decimal("2.00"), f"Rule #{newer_program_wide.pk} for every affiliate."),
        (program_wide, Decimal("1.00"), f"Rule #{program_wide.pk} for every affiliate."),
    ]
    for number, (rule, amount, scope_text) in enumerate(expected):
        conversion = sale(sales, f"A-{number}")
        assert paid(conversion) == (amount, rule, f"{amount} EUR per sale. {scope_text}")
        with scopes_disabled():  # a rule that has paid is protected from deletion: retire it to another kind
            CommissionRule.objects.filter(pk=rule.pk).update(kind="engagement")


def test_rules_of_a_plan_that_is_not_the_default_do_not_pay(sales):
    with scopes_disabled():
        plan = CommissionPlan.objects.create(program=sales.program, name="VIP", is_default=False)
        CommissionRule.objects.create(program=sales.program, plan=plan, kind="sale", rule_type="flat", amount=9)
    conversion = sale(sales, "A-1")
    assert paid(conversion) == (
        Decimal("0"),
        None,
        "No commission: the default commission plan has no rule for sales.",
    )


def test_another_programs_rules_do_not_pay(sales, bob_sales):
    bob_sales.rule(rule_type="flat", amount=Decimal("100"))
    assert sale(sales, "A-1").commission == Decimal("0")


def test_unattributed_conversion_pays_nothing(sales):
    sales.rule(rule_type="flat", amount=Decimal("10"))
    conversion, _ = services.record_conversion(
        program=sales.program, source="postback", kind="sale", order_id="A-1", amount="10"
    )
    assert paid(conversion) == (Decimal("0"), None, "No commission: no affiliate is credited with this conversion.")


GOLD_TIERS = [
    {"min_conversions": 1, "percent": "5", "name": "Standard"},
    {"min_conversions": 3, "percent": "8", "name": "Gold"},
    {"min_conversions": 5, "amount": "20"},
]


def test_tiers_follow_the_affiliates_counted_sales_this_program_local_month(sales):
    rule = sales.rule(rule_type="tiered", tiers=GOLD_TIERS)
    # Warsaw is UTC+1 in early March and UTC+2 from 29 March: 31 March 22:30 UTC is already April there.
    with time_machine.travel(datetime(2026, 2, 28, 23, 30, tzinfo=UTC), tick=False):  # 00:30 on 1 March, local
        first = sale(sales, "M-1", click=sales.click(ago=timedelta(minutes=5)))
    with time_machine.travel(datetime(2026, 3, 15, 12, 0, tzinfo=UTC), tick=False):
        second = sale(sales, "M-2", click=sales.click(ago=timedelta(minutes=5)))
        rejected = sale(sales, "M-X", click=sales.click(ago=timedelta(minutes=5)))
        services.change_conversion_status(program=sales.program, conversion=rejected, to_status="rejected")
        sale(sales, "L-1", kind="lead", amount=None, click=sales.click(ago=timedelta(minutes=5)))
    with time_machine.travel(datetime(2026, 3, 31, 21, 0, tzinfo=UTC), tick=False):  # 23:00 local, still March
        third = sale(sales, "M-3", click=sales.click(ago=timedelta(minutes=5)))
    with time_machine.travel(datetime(2026, 3, 31, 22, 30, tzinfo=UTC), tick=False):  # April, local
        april = sale(sales, "A-1", click=sales.click(ago=timedelta(minutes=5)))
    assert [first.commission, second.commission, third.commission, april.commission] == [
        Decimal("6.00"),
        Decimal("6.00"),
        Decimal("9.60"),
        Decimal("6.00"),
    ]
    assert third.commission_explanation == (
        "8 % of 120.00 EUR = 9.60 EUR because of tier “Gold”: ≥ 3 sales this month (this is no. 3). "
        f"Rule #{rule.pk} for every affiliate."
    )
    assert april.commission_explanation == (
        "5 % of 120.00 EUR = 6.00 EUR because of tier “Standard”: ≥ 1 sales this month (this is no. 1). "
        f"Rule #{rule.pk} for every affiliate."
    )


def test_tier_with_a_flat_amount_and_no_name(sales):
    rule = sales.rule(rule_type="tiered", tiers=[{"min_conversions": 0, "amount": "20"}])
    conversion = sale(sales, "A-1")
    assert paid(conversion) == (
        Decimal("20.00"),
        rule,
        "20.00 EUR per sale because of tier “from 0”: ≥ 0 sales this month (this is no. 1). "
        f"Rule #{rule.pk} for every affiliate.",
    )


def test_below_the_lowest_tier_pays_nothing_and_malformed_tiers_are_skipped(sales, caplog):
    rule = sales.rule(
        rule_type="tiered",
        tiers=[{"min_conversions": 5, "percent": "10"}, {"min_conversions": 0}, "junk", {"min_conversions": "x"}],
    )
    conversion = sale(sales, "A-1")
    assert paid(conversion) == (
        Decimal("0"),
        rule,
        f"No commission: 1 sales this month is below the lowest tier. Rule #{rule.pk} for every affiliate.",
    )
    assert "malformed tier" in caplog.text


def test_tier_volume_counts_only_this_affiliates_conversions(sales):
    sales.rule(
        rule_type="tiered", tiers=[{"min_conversions": 0, "percent": "1"}, {"min_conversions": 2, "percent": "50"}]
    )
    other = sales.link()
    sale(sales, "O-1", click=sales.click(link=other))
    sale(sales, "O-2", click=sales.click(link=other))
    assert sale(sales, "A-1").commission == Decimal("1.20")


def test_recurring_rule_pays_the_first_renewals_only(sales):
    rule = sales.rule(rule_type="revenue_share", percent=Decimal("10"), recurring_renewals=2)
    click = sales.click(ago=timedelta(days=1))
    renewals = [sale(sales, f"R-{n}", click=click, customer_id="sub-9") for n in range(4)]
    assert [(c.renewal_number, c.commission) for c in renewals] == [
        (0, Decimal("12.00")),
        (1, Decimal("12.00")),
        (2, Decimal("12.00")),
        (3, Decimal("0")),
    ]
    assert renewals[1].commission_explanation == (
        f"10 % of 120.00 EUR = 12.00 EUR. Rule #{rule.pk} for every affiliate. "
        "Renewal 1 of customer “sub-9”; the rule pays the first 2 renewals only."
    )
    assert renewals[3].commission_explanation == (
        f"No commission: this is renewal 3 of customer “sub-9”, and rule #{rule.pk} for every affiliate pays "
        "the first 2 renewals only."
    )
    assert renewals[3].commission_rule == rule


@pytest.mark.parametrize(
    ("language", "renewals", "text"),
    [
        ("en", 1, "the first 1 renewal only"),
        ("en", 2, "the first 2 renewals only"),
        ("pl", 1, "tylko za pierwsze 1 odnowienie"),
        ("pl", 3, "tylko za pierwsze 3 odnowienia"),
        ("pl", 5, "tylko za pierwszych 5 odnowień"),
        ("ru", 21, "оплачивается только 21 первое продление"),
        ("ru", 3, "оплачиваются только 3 первых продления"),
        ("ru", 5, "оплачиваются только 5 первых продлений"),
        ("sv", 2, "endast de första 2 förnyelserna"),
    ],
)
def test_paid_renewals_agree_with_their_number(language, renewals, text):
    with translation.override(language):
        assert paid_renewals(CommissionRule(recurring_renewals=renewals)) == text


@pytest.mark.parametrize(("renewals", "paid_fourth"), [(None, Decimal("12.00")), (0, Decimal("0"))])
def test_recurring_forever_or_never(sales, renewals, paid_fourth):
    sales.rule(rule_type="revenue_share", percent=Decimal("10"), recurring_renewals=renewals)
    click = sales.click(ago=timedelta(days=1))
    conversions = [sale(sales, f"R-{n}", click=click, customer_id="sub-9") for n in range(4)]
    assert conversions[0].commission == Decimal("12.00")
    assert conversions[3].commission == paid_fourth


def test_explain_commission_returns_the_stored_sentence(sales):
    sales.rule(rule_type="flat", amount=Decimal("3"))
    conversion = sale(sales, "A-1")
    with scopes_disabled():
        stored = Conversion.objects.get(pk=conversion.pk)
    assert explain_commission(stored) == stored.commission_explanation == conversion.commission_explanation
    assert stored.commission_explanation.startswith("3.00 EUR per sale.")


def test_the_same_order_is_paid_once(sales):
    sales.rule(rule_type="flat", amount=Decimal("3"))
    first = sale(sales, "A-1")
    again = sale(sales, "A-1")
    assert again.pk == first.pk
    with scopes_disabled():
        assert list(Conversion.objects.values_list("commission", flat=True)) == [Decimal("3.00")]
