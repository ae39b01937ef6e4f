"""tracking.instances builds the objects the ORM builds: the same field values, related-object caches and state,
and the ORM's own behaviour for everything it does not handle."""

from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone
from django_scopes import scopes_disabled

from affiliates.models import Program
from tracking.instances import attach, loaded_instance, new_instance
from tracking.models import Click, Conversion, ConversionEvent, PostbackAttempt

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _still_clock():
    with time_machine.travel("2026-03-10 11:00:00+00:00", tick=False):  # default times equal in both objects
        yield


def described(obj) -> tuple:
    """Everything Model.__init__ or from_db leaves on an object, fresh defaults (lists, dicts) compared by value."""
    values = {name: value for name, value in vars(obj).items() if name != "_state"}
    return values, dict(obj._state.fields_cache), obj._state.db, obj._state.adding


def test_new_objects_equal_the_orms_for_every_postback_object(sales):
    click = sales.click()
    rule = sales.rule(rule_type="revenue_share", percent=Decimal("10"))
    program, affiliate, offer = sales.program, sales.affiliate, sales.tracked.offer
    moment = timezone.now()
    conversion_fields = {
        "program": program,
        "kind": "sale",
        "order_id": "A-1",
        "created_at": moment,
        "amount": Decimal("49.90"),
        "currency": "EUR",
        "customer_id": "",
        "click": click,
        "affiliate": affiliate,
        "offer": offer,
        "link_id": click.link_id,
        "commission_rule": rule,
        "source": Conversion.Source.POSTBACK,
    }
    cases = [
        (Conversion, conversion_fields),
        (Conversion, {**conversion_fields, "affiliate": None, "offer": None, "click": None}),
        (Conversion, {"program_id": program.pk, "kind": "lead"}),
        (ConversionEvent, {"program": program, "from_status": "", "to_status": "pending", "reason": "By postback."}),
        (
            PostbackAttempt,
            {"program": program, "method": "GET", "params": {"order_id": "A-1"}, "ip_hash": "x", "replay_of": None},
        ),
    ]
    for model, fields in cases:
        built, orm = new_instance(model, **fields), model(**fields)
        assert type(built) is model
        assert described(built) == described(orm), model
    built = new_instance(Conversion, **conversion_fields)
    assert built.fraud_flags == []
    assert built.fraud_flags is not new_instance(Conversion).fraud_flags
    assert built.program is program
    assert built.click is click
    assert built.commission_rule is rule


def test_new_objects_save_and_reload_as_the_orms_do(sales):
    with scopes_disabled():
        event_fields = {"program": sales.program, "from_status": "", "to_status": "pending", "reason": "By hand."}
        conversion = new_instance(Conversion, program=sales.program, kind="lead", order_id="L-1")
        conversion.save(force_insert=True)
        event = new_instance(ConversionEvent, conversion=conversion, **event_fields)
        event.save(force_insert=True)
        stored = ConversionEvent.objects.select_related("conversion").get(pk=event.pk)
    assert (stored.conversion.order_id, stored.reason, stored.program_id) == ("L-1", "By hand.", sales.program.pk)


def test_what_the_fast_path_does_not_handle_goes_to_the_orm(sales):
    with pytest.raises(TypeError, match="unexpected keyword"):
        new_instance(Conversion, program=sales.program, not_a_field=1)
    with pytest.raises(ValueError, match="must be a"):
        new_instance(Conversion, program=sales.affiliate)
    both = new_instance(Conversion, program=sales.program, program_id=sales.program.pk)
    assert described(both) == described(Conversion(program=sales.program, program_id=sales.program.pk))


def test_loaded_objects_equal_from_db(sales):
    with scopes_disabled():
        row = Program.objects.filter(pk=sales.program.pk).values_list(
            *(field.attname for field in Program._meta.concrete_fields)
        )[0]
    assert described(loaded_instance(Program, list(row))) == described(Program.from_db("default", None, list(row)))


def test_attach_leaves_what_assigning_the_foreign_key_leaves(sales):
    click = sales.click()
    for given in (click, None):
        attached, assigned = Conversion(program=sales.program), Conversion(program=sales.program)
        attach(attached, "click", given)
        assigned.click = given
        assert described(attached) == described(assigned)
    with pytest.raises(TypeError, match="not a single-column foreign key"):
        attach(attached, "kind", None)


def test_loaded_objects_with_deferred_fields_equal_from_db(sales):
    click = sales.click(sub1="campaign-7")
    names = ("id", "program_id", "click_id", "created_at")
    with scopes_disabled():
        row = list(Click.objects.filter(pk=click.pk).values_list(*names)[0])
        loaded, orm = loaded_instance(Click, row, attnames=names), Click.from_db("default", names, row)
        assert described(loaded) == described(orm)
        assert loaded.get_deferred_fields() == orm.get_deferred_fields() > {"sub1", "link_id"}
        assert loaded.sub1 == "campaign-7"  # read when first used, as Django does for deferred fields
