"""Recording conversions through the one service, the bad input it refuses, currencies, and the lifecycle."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from affiliates.models import AffiliateStatus
from tracking import services
from tracking.models import Conversion, ConversionEvent, Coupon, CurrencyRate, CustomerLink, StatsDirtyKey
from tracking.tasks import auto_approve_all_programs_task, auto_approve_conversions_task

pytestmark = pytest.mark.django_db


def record(sales, **fields):
    fields.setdefault("source", Conversion.Source.POSTBACK)
    fields.setdefault("kind", "sale")
    return services.record_conversion(program=sales.program, **fields)


def error_of(excinfo) -> tuple[str | None, str]:
    field, code, _message = services.describe_error(excinfo.value)
    return field, code


def events(conversion) -> list[tuple[str, str]]:
    with scopes_disabled():
        return list(
            ConversionEvent.objects.filter(conversion=conversion).order_by("pk").values_list("from_status", "to_status")
        )


def test_new_conversion_is_attributed_paid_and_audited(sales):
    click = sales.click(ip_hash="abc")
    sales.rule(rule_type="revenue_share", percent=Decimal("10"))
    conversion, created = record(sales, order_id="A-1", amount="120.00", click_id=str(click.click_id))
    assert created is True
    with scopes_disabled():
        stored = Conversion.objects.get(pk=conversion.pk)
    assert (stored.status, stored.kind, stored.order_id, stored.affiliate, stored.offer, stored.link) == (
        "pending",
        "sale",
        "A-1",
        sales.affiliate,
        sales.tracked.offer,
        sales.tracked.link,
    )
    assert (stored.amount, stored.currency, stored.revenue, stored.commission) == (
        Decimal("120.00"),
        "EUR",
        Decimal("120.00"),
        Decimal("12.00"),
    )
    assert stored.click_id == click.click_id
    assert stored.attributed_by == "click"
    assert (
        stored.commission_explanation
        == f"10 % of 120.00 EUR = 12.00 EUR. Rule #{stored.commission_rule_id} for every affiliate."
    )
    assert timezone.is_aware(stored.created_at)
    assert events(stored) == [("", "pending")]


def test_same_order_twice_is_one_conversion_with_one_event(sales):
    click = sales.click()
    first, created_first = record(sales, order_id="A-1", amount="10", click_id=click.click_id)
    second, created_second = record(sales, order_id="A-1", amount="99", click_id=click.click_id)
    assert (created_first, created_second) == (True, False)
    assert second.pk == first.pk
    assert second.amount == Decimal("10.00")
    with scopes_disabled():
        assert Conversion.objects.filter(program=sales.program).count() == 1
        assert ConversionEvent.objects.filter(program=sales.program).count() == 1


def test_same_order_id_of_another_kind_is_another_conversion(sales):
    record(sales, order_id="A-1", kind="sale")
    _lead, created = record(sales, order_id="A-1", kind="lead")
    assert created is True


def test_leads_without_order_id_never_collide(sales):
    first, _ = record(sales, kind="lead")
    second, created = record(sales, kind="lead")
    assert created is True
    assert first.pk != second.pk
    assert (first.order_id, second.order_id) == (None, None)


def test_same_order_id_in_two_programs_is_two_conversions(sales, bob_sales):
    alice_conversion, _ = record(sales, order_id="A-1")
    bob_conversion, created = record(bob_sales, order_id="A-1")
    assert created is True
    assert (alice_conversion.program, bob_conversion.program) == (sales.program, bob_sales.program)


def test_sale_without_order_id_is_refused(sales):
    with pytest.raises(ValidationError) as excinfo:
        record(sales, order_id=None, amount="10")
    assert error_of(excinfo) == ("order_id", "required")
    with scopes_disabled():
        assert not Conversion.objects.filter(program=sales.program).exists()


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("-1", "The amount cannot be negative."),
        ("-0.01", "The amount cannot be negative."),
        ("NaN", "The amount must be a finite number."),
        ("nan", "The amount must be a finite number."),
        ("sNaN", "The amount must be a finite number."),
        ("Infinity", "The amount must be a finite number."),
        ("inf", "The amount must be a finite number."),
        ("-inf", "The amount must be a finite number."),
        ("12345678901234567890", "At most 12 digits before the decimal point."),
        ("1000000000000", "At most 12 digits before the decimal point."),
        ("1.234", "At most 2 digits after the decimal point."),
        ("ten", "The amount must be a number such as 49.90."),
        ("12,50", "The amount must be a number such as 49.90."),
        ("0x10", "The amount must be a number such as 49.90."),
        ("9" * 41, "The amount has too many digits."),
        (True, "The amount must be a number."),
        (Decimal("NaN"), "The amount must be a finite number."),
        (Decimal("-5"), "The amount cannot be negative."),
    ],
)
def test_bad_amount_is_refused_naming_the_field(sales, amount, message):
    with pytest.raises(ValidationError) as excinfo:
        record(sales, order_id="A-1", amount=amount)
    assert services.describe_error(excinfo.value) == ("amount", "invalid_amount", message)
    with scopes_disabled():
        assert not Conversion.objects.filter(program=sales.program).exists()


@pytest.mark.parametrize(
    ("amount", "stored"),
    [
        ("0", Decimal("0.00")),
        ("", Decimal("0.00")),
        (None, Decimal("0.00")),
        (" 49.9 ", Decimal("49.90")),
        ("1.230", Decimal("1.23")),
        ("999999999999.99", Decimal("999999999999.99")),
        (Decimal("19.99"), Decimal("19.99")),
        (7, Decimal("7.00")),
    ],
)
def test_good_amount_is_stored_as_decimal_cents(sales, amount, stored):
    conversion, _ = record(sales, order_id="A-1", amount=amount)
    with scopes_disabled():
        assert Conversion.objects.get(pk=conversion.pk).amount == stored


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        ({"kind": "purchase"}, "kind", "invalid_kind"),
        ({"order_id": "x" * 129}, "order_id", "invalid_order_id"),
        ({"order_id": "A\n1"}, "order_id", "invalid_order_id"),
        ({"currency": "EURO"}, "currency", "unknown_currency"),
        ({"currency": "ABC"}, "currency", "unknown_currency"),
        ({"click_id": "not-a-uuid"}, "click_id", "invalid_click_id"),
        ({"coupon": "c" * 65}, "coupon", "invalid_coupon"),
        ({"customer_id": "c" * 129}, "customer_id", "invalid_customer_id"),
        ({"status": "paid"}, "status", "invalid_status"),
        ({"status": "reversed"}, "status", "invalid_status"),
        ({"occurred_at": datetime(2026, 1, 1, 12, 0)}, "occurred_at", "invalid_occurred_at"),  # noqa: DTZ001
    ],
)
def test_bad_field_is_refused_naming_it(sales, fields, field, code):
    fields.setdefault("order_id", "A-1")
    with pytest.raises(ValidationError) as excinfo:
        record(sales, **fields)
    assert error_of(excinfo) == (field, code)


def test_conversion_time_in_the_future_is_refused(sales):
    with pytest.raises(ValidationError) as excinfo:
        record(sales, order_id="A-1", occurred_at=timezone.now() + timedelta(hours=1))
    assert error_of(excinfo) == ("occurred_at", "invalid_occurred_at")


def test_lower_case_currency_is_read_as_its_code(sales):
    conversion, _ = record(sales, order_id="A-1", amount="10", currency="eur")
    assert conversion.currency == "EUR"


def add_rate(program, currency, day, rate):
    with scopes_disabled():
        CurrencyRate.objects.create(program=program, currency=currency, day=day, rate=Decimal(rate))


@time_machine.travel(datetime(2026, 3, 12, 10, 0, tzinfo=UTC), tick=False)
def test_other_currency_is_kept_and_converted_with_the_days_rate(sales):
    add_rate(sales.program, "USD", date(2026, 3, 12), "0.9")
    add_rate(sales.program, "USD", date(2026, 3, 11), "0.5")
    conversion, _ = record(sales, order_id="A-1", amount="100.00", currency="USD")
    assert (conversion.amount, conversion.currency, conversion.exchange_rate, conversion.revenue) == (
        Decimal("100.00"),
        "USD",
        Decimal("0.9"),
        Decimal("90.00"),
    )


@time_machine.travel(datetime(2026, 3, 16, 10, 0, tzinfo=UTC), tick=False)
def test_weekend_without_rate_uses_the_latest_rate_of_the_week_before(sales):
    add_rate(sales.program, "USD", date(2026, 3, 13), "0.8")  # a Friday; the conversion is on Monday
    conversion, _ = record(sales, order_id="A-1", amount="10.00", currency="USD")
    assert conversion.revenue == Decimal("8.00")


@time_machine.travel(datetime(2026, 3, 16, 10, 0, tzinfo=UTC), tick=False)
def test_rate_older_than_a_week_or_missing_is_refused_naming_the_currency(sales):
    add_rate(sales.program, "USD", date(2026, 3, 8), "0.8")
    add_rate(sales.program, "GBP", date(2026, 3, 17), "1.2")  # after the conversion: not used
    for code in ("USD", "GBP", "JPY"):
        with pytest.raises(ValidationError) as excinfo:
            record(sales, order_id=f"A-{code}", amount="10.00", currency=code)
        field, error_code, message = services.describe_error(excinfo.value)
        assert (field, error_code) == ("currency", "missing_rate")
        assert message.startswith(f"No {code} → EUR rate for 2026-03-16")


@time_machine.travel(datetime(2026, 3, 31, 22, 30, tzinfo=UTC), tick=False)
def test_rate_day_is_the_programs_local_day(sales):
    # 22:30 UTC on 31 March is 00:30 on 1 April in Warsaw (KPI.md example 9).
    add_rate(sales.program, "USD", date(2026, 3, 31), "0.5")
    add_rate(sales.program, "USD", date(2026, 4, 1), "0.9")
    conversion, _ = record(sales, order_id="A-1", amount="10.00", currency="USD")
    assert conversion.revenue == Decimal("9.00")


@time_machine.travel(datetime(2026, 3, 12, 10, 0, tzinfo=UTC), tick=False)
def test_converted_revenue_rounds_half_up_to_the_cent(sales):
    add_rate(sales.program, "USD", date(2026, 3, 12), "1.5")
    conversion, _ = record(sales, order_id="A-1", amount="3.35", currency="USD")  # 5.025
    assert conversion.revenue == Decimal("5.03")


def test_manual_entry_needs_a_reason_and_records_who(sales):
    with pytest.raises(ValidationError) as excinfo:
        record(sales, source=Conversion.Source.MANUAL, order_id="OFF-1", amount="50", actor=sales.world.manager)
    assert error_of(excinfo) == ("reason", "required")
    conversion, created = record(
        sales,
        source=Conversion.Source.MANUAL,
        order_id="OFF-1",
        amount="50",
        status="approved",
        actor=sales.world.manager,
        reason="Sold at the fair",
    )
    with scopes_disabled():
        event = ConversionEvent.objects.get(conversion=conversion)
    # Nobody is credited, so it waits in review instead of being approved as asked.
    assert (created, conversion.status, conversion.in_review, conversion.status_reason) == (
        True,
        "pending",
        True,
        "unattributed",
    )
    assert (event.to_status, event.actor, event.reason) == (
        "pending",
        sales.world.manager,
        "Sold at the fair Kept for review: no click, coupon or known customer credits an affiliate.",
    )


def test_manual_entry_may_name_the_affiliate_and_offer_to_credit(sales):
    sales.rule(rule_type="flat", amount=Decimal("12"), offer=sales.tracked.offer)
    conversion, created = record(
        sales,
        source=Conversion.Source.MANUAL,
        order_id="OFF-1",
        amount="50",
        status="approved",
        actor=sales.world.manager,
        reason="Phone order",
        affiliate=sales.affiliate,
        offer=sales.tracked.offer,
    )
    assert created
    assert (conversion.affiliate, conversion.offer, conversion.attributed_by) == (
        sales.affiliate,
        sales.tracked.offer,
        "manager",
    )
    assert (conversion.status, conversion.in_review, conversion.commission) == ("approved", False, Decimal("12.00"))


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        ({"source": Conversion.Source.POSTBACK}, "affiliate", "not_allowed"),
        ({"coupon": "FAIR"}, "affiliate", "ambiguous_credit"),
        ({"affiliate": None, "offer": "own"}, "offer", "required"),
        ({"affiliate": "bob"}, "affiliate", "unknown_affiliate"),
        ({"offer": "bob"}, "offer", "unknown_offer"),
    ],
)
def test_a_manager_credit_is_checked_and_nothing_is_saved(sales, bob_sales, fields, field, code):
    objects = {
        "affiliate": {"bob": bob_sales.affiliate, None: None},
        "offer": {"bob": bob_sales.tracked.offer, "own": sales.tracked.offer},
    }
    entry = {
        "source": Conversion.Source.MANUAL,
        "order_id": "OFF-1",
        "amount": "50",
        "actor": sales.world.manager,
        "reason": "Phone order",
        "affiliate": sales.affiliate,
    }
    for name, value in fields.items():
        entry[name] = objects[name][value] if name in objects else value
    with pytest.raises(ValidationError) as excinfo:
        record(sales, **entry)
    assert error_of(excinfo) == (field, code)
    with scopes_disabled():
        assert not Conversion.objects.filter(program__in=[sales.program, bob_sales.program]).exists()


def test_manual_entry_with_a_coupon_can_start_approved(sales):
    with scopes_disabled():
        Coupon.objects.create(program=sales.program, code="FAIR", affiliate=sales.affiliate)
    conversion, _ = record(
        sales,
        source=Conversion.Source.MANUAL,
        order_id="OFF-1",
        amount="50",
        coupon="FAIR",
        status="approved",
        actor=sales.world.manager,
        reason="Sold at the fair",
    )
    with scopes_disabled():
        event = ConversionEvent.objects.get(conversion=conversion)
    assert (conversion.status, conversion.affiliate, conversion.attributed_by) == (
        "approved",
        sales.affiliate,
        "coupon",
    )
    assert (event.from_status, event.to_status, event.actor, event.reason) == (
        "",
        "approved",
        sales.world.manager,
        "Sold at the fair",
    )


# --- Lifecycle ------------------------------------------------------------------------------------------------


def attributed(sales, order_id="A-1", **fields):
    conversion, _ = record(sales, order_id=order_id, amount="10", click_id=sales.click().click_id, **fields)
    return conversion


def change(sales, conversion, to_status, *, actor=None, reason=""):
    return services.change_conversion_status(
        program=sales.program, conversion=conversion, to_status=to_status, reason=reason, actor=actor
    )


@pytest.mark.parametrize(
    ("path", "by_person"),
    [
        (["approved"], False),
        (["approved", "reversed"], False),
        (["reversed"], False),
        (["rejected"], False),
        (["rejected", "approved"], True),
        (["approved", "reversed"], True),
    ],
)
def test_allowed_transitions_each_leave_an_event(sales, path, by_person):
    conversion = attributed(sales)
    actor = sales.world.manager if by_person else None
    for to_status in path:
        conversion = change(sales, conversion, to_status, actor=actor, reason="checked")
    with scopes_disabled():
        stored = Conversion.objects.get(pk=conversion.pk)
        assert stored.status == path[-1]
        assert list(ConversionEvent.objects.filter(conversion=stored).values_list("actor", "reason").order_by("pk"))[
            1:
        ] == [(actor.pk if actor else None, "checked")] * len(path)
    assert [to for _from, to in events(stored)] == ["pending", *path]


@pytest.mark.parametrize(
    ("path", "refused", "code"),
    [
        ([], "pending", "unchanged"),
        (["approved"], "rejected", "invalid_transition"),
        (["approved"], "pending", "invalid_transition"),
        (["reversed"], "approved", "invalid_transition"),
        (["rejected"], "reversed", "invalid_transition"),
        (["rejected"], "approved", "invalid_transition"),  # only a person may pay a rejected conversion
        ([], "lost", "invalid_status"),
    ],
)
def test_refused_transitions_change_nothing(sales, path, refused, code):
    conversion = attributed(sales)
    for to_status in path:
        conversion = change(sales, conversion, to_status)
    with pytest.raises(ValidationError) as excinfo:
        change(sales, conversion, refused)
    assert error_of(excinfo) == ("status", code)
    with scopes_disabled():
        assert Conversion.objects.get(pk=conversion.pk).status == (path[-1] if path else "pending")
        assert ConversionEvent.objects.filter(conversion=conversion).count() == 1 + len(path)


def test_a_person_must_say_why_they_reject_or_reverse(sales):
    conversion = attributed(sales)
    for to_status in ("rejected", "reversed"):
        with pytest.raises(ValidationError) as excinfo:
            change(sales, conversion, to_status, actor=sales.world.manager, reason="  ")
        assert error_of(excinfo) == ("reason", "required")


def test_another_programs_conversion_cannot_be_changed(sales, bob_sales):
    bob_conversion = attributed(bob_sales)
    with pytest.raises(ValidationError):
        change(sales, bob_conversion, "approved", actor=sales.world.manager)
    with scopes_disabled():
        assert Conversion.objects.get(pk=bob_conversion.pk).status == "pending"


def test_conversion_in_review_is_approved_by_a_person_only(sales):
    conversion = attributed(sales, order_id="R-1")
    with scopes_disabled():
        Conversion.objects.filter(pk=conversion.pk).update(in_review=True)
        conversion.refresh_from_db()
    with pytest.raises(ValidationError) as excinfo:
        change(sales, conversion, "approved")
    assert error_of(excinfo) == ("status", "in_review")
    approved = change(sales, conversion, "approved", actor=sales.world.manager)
    assert (approved.status, approved.in_review, approved.status_reason) == ("approved", False, "manager")


def test_bulk_change_moves_what_can_move_and_skips_the_rest(sales, bob_sales):
    pending = [attributed(sales, order_id=f"P-{n}") for n in range(3)]
    reversed_one = change(sales, attributed(sales, order_id="X-1"), "reversed")
    bob_conversion = attributed(bob_sales, order_id="B-1")
    moved = services.bulk_change_conversion_status(
        program=sales.program,
        conversion_ids=[*(c.pk for c in pending), reversed_one.pk, bob_conversion.pk],
        to_status="rejected",
        reason="Duplicate orders",
        actor=sales.world.manager,
    )
    assert moved == 3
    with scopes_disabled():
        statuses = dict(Conversion.objects.values_list("order_id", "status"))
        assert statuses == {
            "P-0": "rejected",
            "P-1": "rejected",
            "P-2": "rejected",
            "X-1": "reversed",
            "B-1": "pending",
        }
        assert (
            list(ConversionEvent.objects.filter(to_status="rejected").values_list("reason", "actor", "from_status"))
            == [("Duplicate orders", sales.world.manager.pk, "pending")] * 3
        )


def test_bulk_reject_needs_a_reason(sales):
    conversion = attributed(sales)
    with pytest.raises(ValidationError) as excinfo:
        services.bulk_change_conversion_status(
            program=sales.program, conversion_ids=[conversion.pk], to_status="rejected", reason="", actor=None
        )
    assert error_of(excinfo) == ("reason", "required")


def test_nothing_is_deleted_by_the_lifecycle(sales):
    conversion = attributed(sales)
    change(sales, change(sales, conversion, "approved"), "reversed")
    with scopes_disabled():
        assert Conversion.objects.filter(program=sales.program).count() == 1
        assert events(conversion) == [("", "pending"), ("pending", "approved"), ("approved", "reversed")]


# --- Auto-approve -----------------------------------------------------------------------------------------------


def test_auto_approve_takes_pending_conversions_past_the_hold_period_only(sales, bob_sales):
    sales.settings(hold_days=30)
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        due = attributed(sales, order_id="DUE")
        flagged = attributed(sales, order_id="FLAGGED")
        approved_already = change(sales, attributed(sales, order_id="DONE"), "approved")
        bob_due = attributed(bob_sales, order_id="BOB")
    with scopes_disabled():
        Conversion.objects.filter(pk=flagged.pk).update(in_review=True)
    with time_machine.travel(start + timedelta(days=29), tick=False):
        recent = attributed(sales, order_id="RECENT")
    with time_machine.travel(start + timedelta(days=30, seconds=1), tick=False):
        assert services.auto_approve_due_conversions(program=sales.program) == 1
        assert services.auto_approve_due_conversions(program=sales.program) == 0
    with scopes_disabled():
        statuses = dict(Conversion.objects.values_list("order_id", "status"))
        assert statuses == {
            "DUE": "approved",
            "FLAGGED": "pending",
            "DONE": "approved",
            "RECENT": "pending",
            "BOB": "pending",
        }
        event = ConversionEvent.objects.filter(conversion=due).order_by("pk").last()
        assert (event.from_status, event.to_status, event.actor, event.reason) == (
            "pending",
            "approved",
            None,
            "Approved automatically after the 30-day hold period.",
        )
        assert Conversion.objects.get(pk=due.pk).status_reason == "hold_elapsed"
    assert approved_already.status == "approved"
    assert bob_due.program == bob_sales.program
    assert recent.status == "pending"


def test_auto_approve_task_runs_in_the_programs_scope_and_beat_fans_out(sales, bob_sales):
    sales.settings(hold_days=0)
    bob_sales.settings(hold_days=0)
    with time_machine.travel(timezone.now() - timedelta(hours=1), tick=False):
        attributed(sales, order_id="A-1")
        attributed(bob_sales, order_id="B-1")
    assert auto_approve_conversions_task(program_id=sales.program.pk) == 1
    with scopes_disabled():
        assert dict(Conversion.objects.values_list("order_id", "status")) == {"A-1": "approved", "B-1": "pending"}
    assert auto_approve_all_programs_task() == 1  # only bob's program still has pending conversions
    with scopes_disabled():
        assert dict(Conversion.objects.values_list("order_id", "status")) == {"A-1": "approved", "B-1": "approved"}


def test_unapproved_affiliate_conversion_is_recorded_rejected(sales):
    click = sales.click()
    with scopes_disabled():
        sales.affiliate.status = AffiliateStatus.SUSPENDED
        sales.affiliate.save()
    conversion, created = record(sales, order_id="A-1", amount="10", click_id=click.click_id)
    assert (created, conversion.status, conversion.status_reason, conversion.affiliate) == (
        True,
        "rejected",
        "affiliate_not_approved",
        sales.affiliate,
    )


def test_services_work_outside_a_scope_and_inside_another_programs(sales, bob_sales):
    with scope(program=bob_sales.program):
        conversion, _ = record(sales, order_id="A-1")
    assert conversion.program == sales.program


def dirty_cells(program) -> list[tuple[int, date]]:
    """The marked cells (a cell written twice has two marks)."""
    with scopes_disabled():
        return sorted(set(StatsDirtyKey.objects.filter(program=program).values_list("affiliate_id", "day")))


def test_writes_mark_the_rollup_cells_they_change(sales):
    """Creation marks the conversion's program-local day; a status change also marks the day it happens."""
    affiliate = sales.affiliate.pk
    with time_machine.travel(datetime(2026, 3, 31, 22, 30, tzinfo=UTC), tick=False):  # 1 April in Warsaw
        conversion = attributed(sales)
        unattributed, _ = record(sales, order_id="NOBODY")
    assert dirty_cells(sales.program) == [(affiliate, date(2026, 4, 1))]
    with scopes_disabled():
        StatsDirtyKey.objects.all().delete()
    with time_machine.travel(datetime(2026, 4, 3, 9, 0, tzinfo=UTC), tick=False):
        change(sales, conversion, "approved")
    assert dirty_cells(sales.program) == [(affiliate, date(2026, 4, 1)), (affiliate, date(2026, 4, 3))]
    assert unattributed.affiliate_id is None


def test_bulk_changes_and_auto_approve_mark_their_cells(sales):
    sales.settings(hold_days=1)
    with time_machine.travel(datetime(2026, 4, 1, 9, 0, tzinfo=UTC), tick=False):
        first, second = attributed(sales, order_id="A-1"), attributed(sales, order_id="A-2")
    with scopes_disabled():
        StatsDirtyKey.objects.all().delete()
    with time_machine.travel(datetime(2026, 4, 5, 9, 0, tzinfo=UTC), tick=False):
        services.bulk_change_conversion_status(
            program=sales.program, conversion_ids=[first.pk], to_status="rejected", reason="dup", actor=None
        )
    with time_machine.travel(datetime(2026, 4, 7, 9, 0, tzinfo=UTC), tick=False):
        assert services.auto_approve_due_conversions(program=sales.program) == 1
    affiliate = sales.affiliate.pk
    assert dirty_cells(sales.program) == [
        (affiliate, date(2026, 4, 1)),
        (affiliate, date(2026, 4, 5)),
        (affiliate, date(2026, 4, 7)),
    ]
    assert second.pk != first.pk


def test_approving_a_rejected_conversion_links_its_customer(sales):
    sales.settings(lifetime_customers=True)
    with scopes_disabled():
        sales.tracked.offer.cookie_window_days = 1
        sales.tracked.offer.save()
    old_click = sales.click(ago=timedelta(days=2))
    late, _ = record(sales, order_id="LATE", amount="10", click_id=old_click.click_id, customer_id="cust-1")
    assert (late.status, late.status_reason) == ("rejected", "outside_window")
    with scopes_disabled():
        assert not CustomerLink.objects.filter(program=sales.program).exists()
    change(sales, late, "approved", actor=sales.world.manager)
    later, _ = record(sales, order_id="LATER", customer_id="cust-1")
    assert (later.affiliate, later.attributed_by) == (sales.affiliate, "customer")
