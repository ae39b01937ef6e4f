"""Writes of conversions: recording them (postback, API, manual entry), their lifecycle, and postbacks.

Three ways in, one service behind them: ``record_conversion``. ``(program, kind, order_id)`` is unique, so
the same order posted any number of times, even concurrently, is one conversion: the insert runs in its own
transaction and a unique-constraint error returns the row that won. Lifecycle: ``pending`` → ``approved`` |
``rejected`` | ``reversed``; ``approved`` → ``reversed``; a person may approve a ``rejected`` conversion (a
sale the cap or the cookie window refused that the manager wants to pay). Every creation and change writes a
``ConversionEvent`` (who, when, why); nothing is deleted. docs/tracking-conversions.md has the decisions.
"""

import hashlib
import hmac
import ipaddress
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from urllib.parse import quote

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from django_scopes import scope

from affiliates.models import Affiliate, AffiliateStatus, Program, User
from tracking import attribution, caps, commissions, currency, dirty, fraud, hotpath
from tracking.hashing import ip_hash as hash_ip
from tracking.hashing import sender_ip_hash
from tracking.instances import new_instance
from tracking.links import tracking_settings
from tracking.models import (
    Conversion,
    ConversionEvent,
    ConversionKind,
    ConversionStatus,
    CustomerLink,
    Offer,
    PostbackAttempt,
    TrackingSettings,
)

logger = logging.getLogger(__name__)

PENDING, APPROVED = ConversionStatus.PENDING, ConversionStatus.APPROVED
REJECTED, REVERSED = ConversionStatus.REJECTED, ConversionStatus.REVERSED
COUNTED = caps.COUNTED_STATUSES

# Which status may follow which. Rejected → approved needs a person (see PERSON_ONLY).
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({APPROVED, REJECTED, REVERSED}),
    APPROVED: frozenset({REVERSED}),
    REJECTED: frozenset({APPROVED}),
    REVERSED: frozenset(),
}
PERSON_ONLY = frozenset({(REJECTED, APPROVED)})
NEW_CONVERSION_STATUSES = frozenset({PENDING, APPROVED})
# Words advertisers' platforms use for the same statuses.
STATUS_ALIASES = {"refunded": REVERSED, "chargeback": REVERSED, "declined": REJECTED, "confirmed": APPROVED}

# status_reason codes (short, stable; the sentence for people goes into the ConversionEvent).
AFFILIATE_NOT_APPROVED = "affiliate_not_approved"
OUTSIDE_WINDOW = attribution.OUTSIDE_WINDOW
CAP_REACHED = "cap_reached"
FRAUD_REVIEW = "fraud_review"
UNATTRIBUTED = "unattributed"
HOLD_ELAPSED = "hold_elapsed"

MAX_FUTURE = timedelta(minutes=5)  # clocks of advertisers' servers drift
MAX_AMOUNT = currency.MAX_AMOUNT
AUTO_APPROVE_BATCH = 500
ZERO = Decimal("0")
# Computed once: ``Choices.values`` builds a new list on every access, and every postback checks its kind.
KINDS, STATUSES = frozenset(ConversionKind.values), frozenset(ConversionStatus.values)
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f]")


# --- Input ---------------------------------------------------------------------------------------------------


def field_error(field: str, message: str, code: str) -> ValidationError:
    return ValidationError({field: ValidationError(message, code=code)})


def describe_error(error: ValidationError) -> tuple[str | None, str, str]:
    """(field or None, code, message) of the first problem in a ValidationError, for JSON answers and logs."""
    if hasattr(error, "error_dict"):
        field, errors = next(iter(error.error_dict.items()))
        first = errors[0]
        return (None if field == "__all__" else field), first.code or "invalid", " ".join(first.messages)
    first = error.error_list[0]
    return None, first.code or "invalid", " ".join(first.messages)


def clean_kind(value) -> str:
    kind = str(value or ConversionKind.SALE).strip().lower()
    if kind not in KINDS:
        raise field_error(
            "kind", _("Use one of: %(kinds)s.") % {"kinds": ", ".join(ConversionKind.values)}, "invalid_kind"
        )
    return kind


def clean_text(value, *, field: str, max_length: int) -> str:
    text = "" if value is None else str(value).strip()
    if len(text) > max_length:
        raise field_error(field, _("At most %(max)s characters.") % {"max": max_length}, f"invalid_{field}")
    if CONTROL_CHARACTER.search(text):
        raise field_error(field, _("Control characters are not allowed."), f"invalid_{field}")
    return text


def clean_order_id(value, *, kind: str) -> str | None:
    order_id = clean_text(value, field="order_id", max_length=128) or None
    if order_id is None and kind == ConversionKind.SALE:
        raise field_error("order_id", _("A sale needs an order_id, so that it is recorded once."), "required")
    return order_id


def clean_amount(value) -> Decimal:
    """A finite, non-negative amount with at most 12 digits before the decimal point and 2 after it."""
    if value is None or value == "":
        return ZERO
    if isinstance(value, bool):
        raise field_error("amount", _("The amount must be a number."), "invalid_amount")
    text = format(value, "f") if isinstance(value, Decimal) and value.is_finite() else str(value).strip()
    if len(text) > 40:
        raise field_error("amount", _("The amount has too many digits."), "invalid_amount")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise field_error("amount", _("The amount must be a number such as 49.90."), "invalid_amount") from None
    if not amount.is_finite():
        raise field_error("amount", _("The amount must be a finite number."), "invalid_amount")
    if amount < 0:
        raise field_error("amount", _("The amount cannot be negative."), "invalid_amount")
    if amount > MAX_AMOUNT:
        raise field_error("amount", _("At most 12 digits before the decimal point."), "invalid_amount")
    if amount != amount.quantize(currency.CENT):
        raise field_error("amount", _("At most 2 digits after the decimal point."), "invalid_amount")
    return amount.quantize(currency.CENT)


def clean_status(value) -> str | None:
    if value in (None, ""):
        return None
    status = str(value).strip().lower()
    status = STATUS_ALIASES.get(status, status)
    if status not in STATUSES:
        raise field_error(
            "status",
            _("Use one of: %(statuses)s.") % {"statuses": ", ".join(ConversionStatus.values)},
            "invalid_status",
        )
    return status


def clean_moment(value: datetime | None) -> datetime:
    now = timezone.now()
    if value is None:
        return now
    if timezone.is_naive(value):
        raise field_error("occurred_at", _("Give the time with its time zone."), "invalid_occurred_at")
    if value > now + MAX_FUTURE:
        raise field_error("occurred_at", _("The conversion time is in the future."), "invalid_occurred_at")
    return value


@dataclass(frozen=True)
class ConversionInput:
    kind: str
    order_id: str | None
    amount: Decimal
    currency: str
    click_id: object
    coupon: str
    customer_id: str
    status: str | None
    moment: datetime


def clean_conversion_input(*, program: Program, **raw) -> ConversionInput:
    """Check every field's shape; the first bad one raises a ValidationError naming it."""
    kind = clean_kind(raw["kind"])
    return ConversionInput(
        kind=kind,
        order_id=clean_order_id(raw["order_id"], kind=kind),
        amount=clean_amount(raw["amount"]),
        currency=currency.clean_currency(raw["currency"], program=program),
        click_id=attribution.parse_click_id(raw["click_id"]),
        coupon=clean_text(raw["coupon"], field="coupon", max_length=64),
        customer_id=clean_text(raw["customer_id"], field="customer_id", max_length=128),
        status=clean_status(raw["status"]),
        moment=clean_moment(raw["occurred_at"]),
    )


def settings_of(program: Program) -> TrackingSettings:
    """The program's tracking settings: already loaded by the postback view's select_related, else fetched."""
    try:
        return program.tracking_settings
    except TrackingSettings.DoesNotExist:
        settings = tracking_settings(program)
        program.tracking_settings = settings
        return settings


# --- Recording ------------------------------------------------------------------------------------------------


def record_conversion(
    *,
    program: Program,
    source: str,
    kind: str,
    order_id: str | None = None,
    amount: Decimal | str | None = None,
    currency: str | None = None,
    click_id: str | None = None,
    coupon: str = "",
    customer_id: str = "",
    status: str | None = None,
    occurred_at: datetime | None = None,
    ip_hash: str = "",
    actor: User | None = None,
    reason: str = "",
    affiliate: Affiliate | None = None,
    offer: Offer | None = None,
    attempt: PostbackAttempt | None = None,
    context: hotpath.PostbackContext | None = None,
) -> tuple[Conversion, bool]:
    """Record a conversion of ``program`` once; returns ``(conversion, created)``, the existing row for a duplicate.

    ``source`` is a ``Conversion.Source``; ``status`` may ask for ``pending`` (default) or ``approved`` for a new
    conversion (fraud flags, caps and the cookie window still decide); ``occurred_at`` (aware) backdates it;
    ``ip_hash`` is the customer's hashed IP (``tracking.hashing.ip_hash``); ``actor`` and ``reason`` go into the
    audit entry, and manual entries need a reason. A manual entry may name the ``affiliate`` (and ``offer``)
    to credit instead of a click id or coupon. Bad input raises a ValidationError naming the field.

    The postback handler passes its log entry ``attempt`` (saved with a new conversion, in its transaction,
    as ``created``) and ``context``, what its single read loaded already (tracking/hotpath.py).
    """
    credited = _manager_credit(
        program, source=source, affiliate=affiliate, offer=offer, click_id=click_id, coupon=coupon
    )
    with scope(program=program):
        data = clean_conversion_input(
            program=program,
            kind=kind,
            order_id=order_id,
            amount=amount,
            currency=currency,
            click_id=click_id,
            coupon=coupon,
            customer_id=customer_id,
            status=status,
            occurred_at=occurred_at,
        )
        if data.status is not None and data.status not in NEW_CONVERSION_STATUSES:
            raise field_error("status", _("A new conversion starts as pending or approved."), "invalid_status")
        if source == Conversion.Source.MANUAL and not reason.strip():
            raise field_error("reason", _("Say why this conversion is entered by hand."), "required")
        return _record(
            program,
            settings_of(program),
            data,
            source=source,
            ip_hash=ip_hash,
            actor=actor,
            reason=reason.strip(),
            attempt=attempt,
            context=context,
            credited=credited,
        )


def _manager_credit(
    program: Program, *, source: str, affiliate: Affiliate | None, offer: Offer | None, click_id, coupon: str
) -> attribution.Attribution | None:
    """The credit a manager gives by hand (manual entry naming an affiliate), checked; None when not given."""
    if affiliate is None:
        if offer is not None:
            raise field_error("offer", _("Name the affiliate the offer's conversion is credited to."), "required")
        return None
    if source != Conversion.Source.MANUAL:
        raise field_error("affiliate", _("Only a manager's manual entry names the affiliate."), "not_allowed")
    if click_id or coupon:
        raise field_error(
            "affiliate", _("Give a click id, a coupon or an affiliate, not more than one."), "ambiguous_credit"
        )
    # Another program's affiliate or offer is refused like an unknown one (tenancy: nothing is revealed).
    if affiliate.program_id != program.pk:
        raise field_error("affiliate", _("Unknown affiliate for this program."), "unknown_affiliate")
    if offer is not None and offer.program_id != program.pk:
        raise field_error("offer", _("Unknown offer for this program."), "unknown_offer")
    return attribution.Attribution(Conversion.Attribution.MANAGER, affiliate.pk, offer=offer)


def _record(
    program: Program,
    settings: TrackingSettings,
    data: ConversionInput,
    *,
    source: str,
    ip_hash: str,
    actor: User | None,
    reason: str,
    attempt: PostbackAttempt | None,
    context: hotpath.PostbackContext | None,
    credited: attribution.Attribution | None,
) -> tuple[Conversion, bool]:
    moment = data.moment
    month = caps.local_period(program, moment, "month")
    click = None
    if data.click_id:
        click = context.click_for(data.click_id) if context is not None else None
        if click is None:
            click = attribution.load_click(program=program, settings=settings, click_id=data.click_id)
    customer = attribution.load_customer(program=program, customer_id=data.customer_id, before=moment)
    credit = credited or attribution.attribute(
        program=program, settings=settings, click=click, coupon=data.coupon, customer=customer, moment=moment
    )
    money = currency.convert(program=program, amount=data.amount, currency=data.currency, moment=moment)
    affiliate = None
    if click is not None and credit.affiliate_id == click.affiliate_id:
        affiliate = click.affiliate  # loaded with has_caps by load_click
    elif credit.affiliate_id is not None:
        affiliate = attribution.load_affiliate(
            program=program, affiliate_id=credit.affiliate_id, offer_id=credit.offer.pk if credit.offer else None
        )
    conversion = new_instance(
        Conversion,
        program=program,
        kind=data.kind,
        order_id=data.order_id,
        created_at=moment,
        amount=money.amount,
        currency=money.currency,
        exchange_rate=money.rate,
        revenue=money.revenue,
        customer_id=data.customer_id,
        renewal_number=customer.earlier_sales if data.kind == ConversionKind.SALE else 0,
        coupon=data.coupon,
        click=credit.click,
        affiliate=affiliate,
        offer=credit.offer,
        link_id=credit.link_id,
        attributed_by=credit.attributed_by,
        source=source,
        ip_hash=ip_hash,
    )
    rules = []
    if affiliate is not None:
        rules = (
            context.rules_for(kind=data.kind, affiliate_id=affiliate.pk, offer_id=conversion.offer_id)
            if context
            else None
        )
        if rules is None:
            rules = commissions.candidate_rules(
                program=program, kind=data.kind, affiliate_id=affiliate.pk, offer_id=conversion.offer_id
            )
    payout = commissions.calculate_commission(conversion, rules=rules, month=month)
    conversion.commission, conversion.commission_rule = payout.amount, payout.rule
    conversion.commission_explanation = payout.explanation
    if data.kind != ConversionKind.CANCELLATION:
        conversion.fraud_flags = fraud.fraud_flags(
            program=program,
            settings=settings,
            click=credit.click,
            affiliate=affiliate,
            moment=moment,
            conversion_ip_hash=ip_hash,
            month=month,
        )
    notes = [reason or default_reason(source), credit.note]
    _decide_status(conversion, requested=data.status, affiliate=affiliate, credit=credit, notes=notes)
    if hotpath.enabled() and not data.customer_id and not _capped(conversion, affiliate):
        # The common case in one statement (tracking/hotpath.py); no customer id means no customer link to
        # write and one dirty cell, which conversion_keys finds without a query.
        event = _creation_event(program, conversion, notes, actor)
        _log_created(attempt, conversion)
        keys = sorted(dirty.conversion_keys(program=program, conversions=[conversion]))
        cursor = context.cursor if context is not None else None
        if hotpath.insert_conversion(conversion=conversion, event=event, attempt=attempt, keys=keys, cursor=cursor):
            return conversion, True
        existing = _existing_order(program, data)
        if existing is not None:
            return existing, False
    try:
        with transaction.atomic():
            if _capped(conversion, affiliate):
                locked = caps.lock_caps(program=program, affiliate_id=affiliate.pk, offer_id=conversion.offer_id)
                cap = caps.first_reached_cap(
                    program=program, caps=locked, moment=moment, commission=conversion.commission
                )
                if cap is not None:
                    conversion.status, conversion.status_reason, conversion.in_review = REJECTED, CAP_REACHED, False
                    notes.append(_("Rejected: cap reached (%(cap)s).") % {"cap": caps.describe_cap(cap)})
            conversion.is_new_customer = (
                bool(data.customer_id) and customer.link is None and conversion.status in COUNTED
            )
            conversion.save(force_insert=True)
            _creation_event(program, conversion, notes, actor).save(force_insert=True)
            if data.customer_id and conversion.status in COUNTED:
                _link_customer(program, conversion, customer)
            if attempt is not None:
                _log_created(attempt, conversion)
                attempt.save(force_insert=True)  # one commit for the conversion and its postback log entry
            # Last, so the locks the marks take are held briefly (tracking/dirty.py).
            dirty.mark_conversions_dirty(program=program, conversions=[conversion])
    except IntegrityError:
        # Another request recorded this order first (the unique constraint decided): that row is the answer.
        existing = _existing_order(program, data)
        if existing is None:
            raise
        return existing, False
    return conversion, True


def _creation_event(program: Program, conversion: Conversion, notes: list[str], actor: User | None):
    return new_instance(
        ConversionEvent,
        program=program,
        conversion=conversion,
        from_status="",
        to_status=conversion.status,
        reason=" ".join(note for note in notes if note),
        actor=actor,
    )


def _log_created(attempt: PostbackAttempt | None, conversion: Conversion) -> None:
    if attempt is not None:
        attempt.result, attempt.reason, attempt.conversion = (
            PostbackAttempt.Result.CREATED,
            conversion.status_reason,
            conversion,
        )
        attempt.http_status = 200


def _existing_order(program: Program, data: ConversionInput) -> Conversion | None:
    if data.order_id is None:
        return None
    return Conversion.objects.filter(program=program, kind=data.kind, order_id=data.order_id).first()


DEFAULT_REASONS = {
    Conversion.Source.POSTBACK: gettext_noop("Received by postback."),
    Conversion.Source.API: gettext_noop("Received through the API."),
    Conversion.Source.MANUAL: gettext_noop("Entered by hand."),
}


def default_reason(source: str) -> str:
    reason = DEFAULT_REASONS.get(source)
    return _(reason) if reason else ""  # only the one needed is translated: this runs on every conversion


def _decide_status(conversion: Conversion, *, requested: str | None, affiliate, credit, notes: list[str]) -> None:
    """The first status of a new conversion, before caps: refusals first, then review, then what was asked."""
    countable = conversion.kind != ConversionKind.CANCELLATION
    if affiliate is not None and affiliate.status != AffiliateStatus.APPROVED:
        conversion.status, conversion.status_reason = REJECTED, AFFILIATE_NOT_APPROVED
        notes.append(_("Rejected: the affiliate is %(status)s.") % {"status": affiliate.get_status_display().lower()})
    elif attribution.outside_window(credit, conversion.created_at):
        conversion.status, conversion.status_reason = REJECTED, OUTSIDE_WINDOW
        notes.append(
            _("Rejected: the click was %(days)s days before the conversion, outside the %(window)s-day cookie window.")
            % {
                "days": (conversion.created_at - credit.click.created_at).days,
                "window": credit.offer.cookie_window_days,
            }
        )
    elif countable and conversion.fraud_flags:
        conversion.status, conversion.status_reason, conversion.in_review = PENDING, FRAUD_REVIEW, True
        notes.append(_("Sent to review: %(flags)s.") % {"flags": ", ".join(conversion.fraud_flags)})
    elif countable and credit.attributed_by == Conversion.Attribution.NONE:
        conversion.status, conversion.status_reason, conversion.in_review = PENDING, UNATTRIBUTED, True
        notes.append(_("Kept for review: no click, coupon or known customer credits an affiliate."))
    else:
        conversion.status = requested or PENDING


def _capped(conversion: Conversion, affiliate) -> bool:
    return (
        affiliate is not None
        and affiliate.has_caps
        and conversion.status in COUNTED
        and conversion.kind not in caps.UNCAPPED_KINDS
    )


def _link_customer(program: Program, conversion: Conversion, customer: attribution.Customer) -> None:
    """Remember the customer's first counted conversion and, once known, the affiliate who brought them."""
    if customer.link is None:
        # ON CONFLICT DO NOTHING: a concurrent first order of the same customer may have linked them already.
        CustomerLink.objects.bulk_create(
            [
                CustomerLink(
                    program=program,
                    customer_id=conversion.customer_id,
                    affiliate_id=conversion.affiliate_id,
                    first_conversion_at=conversion.created_at,
                )
            ],
            ignore_conflicts=True,
        )
    elif customer.link.affiliate_id is None and conversion.affiliate_id is not None:
        CustomerLink.objects.filter(pk=customer.link.pk, affiliate__isnull=True).update(
            affiliate_id=conversion.affiliate_id
        )


# --- Lifecycle ------------------------------------------------------------------------------------------------


def check_transition(conversion: Conversion, to_status: str, *, by_person: bool) -> None:
    """Raise a ValidationError (field ``status``) unless ``conversion`` may move to ``to_status`` now."""
    if to_status not in ConversionStatus.values:
        raise field_error("status", _("Unknown status “%(status)s”.") % {"status": to_status}, "invalid_status")
    current = ConversionStatus(conversion.status)
    target = ConversionStatus(to_status)
    if current == target:
        raise field_error(
            "status", _("This conversion is already %(status)s.") % {"status": target.label.lower()}, "unchanged"
        )
    if target not in ALLOWED_TRANSITIONS[current] or ((current, target) in PERSON_ONLY and not by_person):
        raise field_error(
            "status",
            _("A %(from)s conversion cannot be %(to)s.") % {"from": current.label.lower(), "to": target.label.lower()},
            "invalid_transition",
        )
    if target == APPROVED and conversion.in_review and not by_person:
        raise field_error("status", _("This conversion is in review; a manager decides."), "in_review")


def change_conversion_status(
    *, program: Program, conversion: Conversion, to_status: str, reason: str = "", actor: User | None = None
) -> Conversion:
    """Move a conversion of ``program`` to ``to_status`` and record who and why; returns the updated row.

    A person (``actor``) must give a reason to reject or reverse, and is the only one who may approve a
    conversion in review or a rejected one. Refused transitions raise a ValidationError naming ``status``.
    """
    with scope(program=program), transaction.atomic():
        return _change_status(
            program,
            conversion,
            to_status,
            reason=reason,
            actor=actor,
            by_person=actor is not None,
            code="manager" if actor is not None else "system",
        )


def _change_status(
    program: Program, conversion: Conversion, to_status: str, *, reason: str, actor, by_person: bool, code: str
) -> Conversion:
    if conversion.program_id != program.pk:
        raise ValidationError(_("This conversion does not belong to this program."))
    reason = reason.strip()
    if by_person and to_status in (REJECTED, REVERSED) and not reason:
        raise field_error("reason", _("Give a reason; the affiliate will see it."), "required")
    # Lock the row so two managers (or a manager and a postback) cannot both apply a transition.
    current = Conversion.objects.select_for_update().get(program=program, pk=conversion.pk)
    check_transition(current, to_status, by_person=by_person)
    previous = current.status
    current.status, current.status_reason = to_status, code
    current.status_changed_at, current.in_review = timezone.now(), False
    current.save(update_fields=["status", "status_reason", "status_changed_at", "in_review"])
    ConversionEvent.objects.create(
        program=program, conversion=current, from_status=previous, to_status=to_status, reason=reason, actor=actor
    )
    if previous == REJECTED:
        _link_customers(program, [current])
    dirty.mark_conversions_dirty(program=program, conversions=[current], moments=[current.status_changed_at])
    return current


def _link_customers(program: Program, conversions: list[Conversion]) -> None:
    """A rejected conversion a person approves counts from now on: link its customer if nothing did yet."""
    links = [
        CustomerLink(
            program=program,
            customer_id=conversion.customer_id,
            affiliate_id=conversion.affiliate_id,
            first_conversion_at=conversion.created_at,
        )
        for conversion in conversions
        if conversion.customer_id
    ]
    if links:
        CustomerLink.objects.bulk_create(links, ignore_conflicts=True)


def bulk_change_conversion_status(
    *, program: Program, conversion_ids: list[int], to_status: str, reason: str, actor: User | None
) -> int:
    """Move the listed conversions of ``program`` that may move to ``to_status`` (the review queue's bulk action).

    Ids of other programs and conversions that cannot make this move are skipped; returns how many moved.
    """
    reason = reason.strip()
    if to_status in (REJECTED, REVERSED) and not reason:
        raise field_error("reason", _("Give a reason; the affiliates will see it."), "required")
    with scope(program=program), transaction.atomic():
        rows = list(
            Conversion.objects.select_for_update().filter(program=program, pk__in=list(conversion_ids)).order_by("pk")
        )
        movable = []
        for row in rows:
            try:
                check_transition(row, to_status, by_person=actor is not None)
            except ValidationError:
                continue
            movable.append(row)
        now = timezone.now()
        Conversion.objects.filter(program=program, pk__in=[row.pk for row in movable]).update(
            status=to_status, status_reason="manager" if actor else "system", status_changed_at=now, in_review=False
        )
        ConversionEvent.objects.bulk_create(
            ConversionEvent(
                program=program,
                conversion=row,
                from_status=row.status,
                to_status=to_status,
                reason=reason,
                actor=actor,
                created_at=now,
            )
            for row in movable
        )
        _link_customers(program, [row for row in movable if row.status == REJECTED])
        dirty.mark_conversions_dirty(program=program, conversions=movable, moments=[now])
    return len(movable)


def auto_approve_due_conversions(*, program: Program) -> int:
    """Approve the program's pending conversions not in review whose hold period is over; returns how many.

    Rows are claimed with SELECT … FOR UPDATE SKIP LOCKED, so two runs (or a manager acting meanwhile)
    never approve or audit one conversion twice.
    """
    approved = 0
    with scope(program=program):
        hold_days = settings_of(program).hold_days
        while True:
            with transaction.atomic():
                now = timezone.now()
                rows = list(
                    Conversion.objects.select_for_update(skip_locked=True)
                    .filter(
                        program=program,
                        status=PENDING,
                        in_review=False,
                        created_at__lte=now - timedelta(days=hold_days),
                    )
                    .only("pk", "affiliate_id", "created_at", "customer_id")
                    .order_by("pk")[:AUTO_APPROVE_BATCH]
                )
                if not rows:
                    return approved
                due = [row.pk for row in rows]
                Conversion.objects.filter(program=program, pk__in=due).update(
                    status=APPROVED, status_reason=HOLD_ELAPSED, status_changed_at=now
                )
                reason = _("Approved automatically after the %(days)s-day hold period.") % {"days": hold_days}
                ConversionEvent.objects.bulk_create(
                    ConversionEvent(
                        program=program,
                        conversion_id=pk,
                        from_status=PENDING,
                        to_status=APPROVED,
                        reason=reason,
                        created_at=now,
                    )
                    for pk in due
                )
                dirty.mark_conversions_dirty(program=program, conversions=rows, moments=[now])
                approved += len(due)
            if len(due) < AUTO_APPROVE_BATCH:
                return approved


# --- Postbacks ------------------------------------------------------------------------------------------------

TOKEN_HEADER = "x-goalpost-token"  # noqa: S105 - a header name, not a secret
SIGNATURE_HEADER = "x-goalpost-signature"
PROTOCOL_HEADERS = (TOKEN_HEADER, SIGNATURE_HEADER)  # the headers _check_postback_access reads
SECRET_PARAMS = frozenset({"token", "signature"})
POSTBACK_PARAMS = ("click_id", "order_id", "amount", "currency", "kind", "customer_id", "coupon", "status", "ip")
STORED_VALUE_LENGTH = 300
# Refusals a manager may not replay: nothing proves the advertiser sent them.
NOT_REPLAYABLE = frozenset(
    {"missing_token", "bad_token", "missing_signature", "bad_signature", "method_not_allowed", "invalid_body"}
)


class PostbackRefused(Exception):
    def __init__(self, http_status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.http_status, self.code, self.message, self.field = http_status, code, message, field


def canonical_postback_string(params: dict) -> str:
    """The string a postback signature covers: every parameter but token and signature, sorted by name,
    each name and value percent-encoded as in RFC 3986 (UTF-8, unreserved characters kept), as name=value
    pairs joined by '&'. Example: amount=49.90&kind=sale&order_id=A%2F17."""
    pairs = sorted((str(name), str(value)) for name, value in params.items() if name not in SECRET_PARAMS)
    return "&".join(f"{quote(name, safe='-_.~')}={quote(value, safe='-_.~')}" for name, value in pairs)


def postback_signature(secret: str, params: dict) -> str:
    """Hex HMAC-SHA256 of ``canonical_postback_string(params)`` with the program's signing secret."""
    return hmac.new(secret.encode(), canonical_postback_string(params).encode(), hashlib.sha256).hexdigest()


def parse_allowlist(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The networks of an allowlist (one CIDR or address per line); a bad line raises a ValidationError."""
    networks = []
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as error:
            raise field_error(
                "postback_ip_allowlist",
                _("“%(entry)s” is not an IP address or CIDR range.") % {"entry": entry},
                "invalid_cidr",
            ) from error
    return networks


def ip_allowed(ip: str, allowlist: str) -> bool:
    """Whether ``ip`` is inside one of the allowlist's networks (an empty allowlist allows every address)."""
    if not allowlist.strip():
        return True
    try:
        networks = parse_allowlist(allowlist)
    except ValidationError:
        logger.warning("A postback allowlist has a line that is not a network; refusing postbacks until it is fixed.")
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def _check_postback_access(
    program: Program, settings: TrackingSettings, params: dict, method: str, ip: str, headers: dict
) -> None:
    """Method, token (constant-time), signature, then IP: a refusal raises PostbackRefused."""
    if method not in ("GET", "POST"):
        raise PostbackRefused(405, "method_not_allowed", _("Send postbacks with GET or POST."))
    token = headers.get(TOKEN_HEADER) or params.get("token") or ""
    if not token:
        raise PostbackRefused(401, "missing_token", _("The postback token is missing."), "token")
    if not hmac.compare_digest(str(token).encode(), program.postback_token.encode()):
        raise PostbackRefused(401, "bad_token", _("The postback token is wrong."), "token")
    if settings.postback_require_signature:
        given = str(headers.get(SIGNATURE_HEADER) or params.get("signature") or "").strip().lower()
        if not given:
            raise PostbackRefused(403, "missing_signature", _("This program requires signed postbacks."), "signature")
        expected = postback_signature(settings.postback_signing_secret, params)
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise PostbackRefused(403, "bad_signature", _("The postback signature does not match."), "signature")
    if not ip_allowed(ip, settings.postback_ip_allowlist):
        raise PostbackRefused(403, "ip_not_allowed", _("Postbacks are not accepted from this address."))


def _stored_params(program: Program, params: dict) -> dict:
    """What the postback log keeps: the known parameters, never the token or the raw customer IP."""
    stored = {}
    for name in POSTBACK_PARAMS:
        value = params.get(name)
        if value in (None, ""):
            continue
        if name == "ip":
            stored["ip_hash"] = hash_ip(program.pk, str(value).strip())
        else:
            stored[name] = str(value)[:STORED_VALUE_LENGTH]
    return stored


def _customer_ip_hash(program: Program, params: dict, *, replay: bool) -> str:
    if replay:  # the log holds only the hash (see _stored_params)
        return str(params.get("ip_hash") or "")
    ip = str(params.get("ip") or "").strip()
    if not ip:
        return ""
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        raise field_error("ip", _("This is not an IP address."), "invalid_ip") from None
    return hash_ip(program.pk, ip)


def handle_postback(
    *,
    program: Program,
    params: dict,
    method: str,
    ip: str,
    headers: dict,
    replay_of: PostbackAttempt | None = None,
    context: hotpath.PostbackContext | None = None,
) -> tuple[int, dict]:
    """Process one server-to-server postback for ``program``: returns (HTTP status, JSON body).

    ``params`` are the query and body parameters (one value each), ``ip`` the sender's address, ``headers``
    the request headers. Every call writes a PostbackAttempt with its result and reason (never the token).
    Answers: 200 ``{"status": "created" | "duplicate" | "updated", "conversion_id", "conversion_status",
    "reason"}``; errors ``{"error": {"code", "message", "field"}}`` with 400 (bad field), 401 (token), 403
    (signature, IP) or 405 (method). ``replay_of`` skips the access checks the original attempt passed;
    ``context`` is what ``postback_context`` read for this request (the program must be its program).
    """
    status, body, _attempt = _handle_postback(
        program, params, method=method, ip=ip, headers=headers, replay_of=replay_of, actor=None, context=context
    )
    return status, body


def _handle_postback(
    program: Program,
    params: dict,
    *,
    method: str,
    ip: str,
    headers: dict,
    replay_of: PostbackAttempt | None,
    actor: User | None,
    context: hotpath.PostbackContext | None = None,
) -> tuple[int, dict, PostbackAttempt]:
    with scope(program=program):
        settings = settings_of(program)
        headers = {str(name).lower(): value for name, value in headers.items()}
        attempt = new_instance(
            PostbackAttempt,
            program=program,
            method=method[:8],
            params=dict(params) if replay_of is not None else _stored_params(program, params),
            ip_hash=replay_of.ip_hash if replay_of is not None else sender_ip_hash(program.pk, ip),
            replay_of=replay_of,
        )
        try:
            if replay_of is None:
                _check_postback_access(program, settings, params, method, ip, headers)
            http_status, body, conversion = _apply_postback(
                program, params, attempt=attempt, replay_of=replay_of, actor=actor, context=context
            )
        except PostbackRefused as refusal:
            http_status, body = refusal.http_status, _error_body(refusal.code, refusal.message, refusal.field)
            attempt.result, attempt.reason, attempt.message = (
                PostbackAttempt.Result.REFUSED,
                refusal.code,
                refusal.message,
            )
        except ValidationError as error:
            field, code, message = describe_error(error)
            http_status, body = 400, _error_body(code, message, field)
            attempt.result, attempt.reason = PostbackAttempt.Result.REFUSED, code[:64]
            attempt.message = f"{field}: {message}" if field else message
        else:
            attempt.result, attempt.reason, attempt.conversion = body["status"], body["reason"][:64], conversion
        if attempt.pk is None:  # a new conversion saved it in its own transaction already
            attempt.http_status = http_status
            attempt.save(force_insert=True)
        return http_status, body, attempt


def refuse_unreadable_postback(*, program: Program, method: str, ip: str, message: str) -> tuple[int, dict]:
    """Log and answer a postback whose body could not be read (bad JSON, too many parameters): 400."""
    with scope(program=program):
        PostbackAttempt.objects.create(
            program=program,
            method=method[:8],
            params={},
            ip_hash=sender_ip_hash(program.pk, ip),
            result=PostbackAttempt.Result.REFUSED,
            reason="invalid_body",
            message=message,
            http_status=400,
        )
    return 400, _error_body("invalid_body", message, None)


def _error_body(code: str, message: str, field: str | None) -> dict:
    return {"error": {"code": code, "message": message, "field": field}}


def _apply_postback(
    program: Program,
    params: dict,
    *,
    attempt: PostbackAttempt,
    replay_of: PostbackAttempt | None,
    actor: User | None,
    context: hotpath.PostbackContext | None,
) -> tuple[int, dict, Conversion]:
    kind = clean_kind(params.get("kind"))
    order_id = clean_order_id(params.get("order_id"), kind=kind)
    status = clean_status(params.get("status"))
    reason = (
        _("Replay of postback attempt #%(pk)s.") % {"pk": replay_of.pk} if replay_of else _("Received by postback.")
    )
    if status is not None and order_id is not None:
        existing = Conversion.objects.filter(program=program, kind=kind, order_id=order_id).first()
        if existing is not None:
            reason = f"{reason} " + _("The advertiser reports status “%(status)s”.") % {"status": status}
            return _postback_status_change(program, existing, status, reason=reason, actor=actor)
    if status in (REJECTED, REVERSED):
        raise field_error(
            "order_id",
            _("No %(kind)s with this order_id to mark %(status)s.") % {"kind": kind, "status": status},
            "unknown_order",
        )

    conversion, created = record_conversion(
        program=program,
        source=Conversion.Source.POSTBACK,
        kind=kind,
        order_id=order_id,
        amount=params.get("amount"),
        currency=params.get("currency"),
        click_id=params.get("click_id"),
        coupon=params.get("coupon") or "",
        customer_id=params.get("customer_id") or "",
        status=status,
        occurred_at=None,
        ip_hash=_customer_ip_hash(program, params, replay=replay_of is not None),
        actor=actor,
        reason=reason,
        attempt=attempt,
        context=context,
    )
    if not created:
        # Whatever was saved of the attempt was rolled back with the losing insert: log the duplicate anew.
        attempt.pk, attempt._state.adding = None, True
    result = PostbackAttempt.Result.CREATED if created else PostbackAttempt.Result.DUPLICATE
    return 200, _success_body(result, conversion, conversion.status_reason if created else ""), conversion


def _postback_status_change(
    program: Program, existing: Conversion, status: str, *, reason: str, actor: User | None
) -> tuple[int, dict, Conversion]:
    try:
        with transaction.atomic():
            changed = _change_status(
                program, existing, status, reason=reason, actor=actor, by_person=False, code="postback"
            )
    except ValidationError as error:
        _field, code, _message = describe_error(error)
        if code not in ("unchanged", "in_review"):
            raise
        # Resent or not ours to decide (a manager reviews it): nothing changes, and the sender need not retry.
        existing.refresh_from_db()
        return (
            200,
            _success_body(PostbackAttempt.Result.DUPLICATE, existing, "" if code == "unchanged" else code),
            existing,
        )
    return 200, _success_body(PostbackAttempt.Result.UPDATED, changed, changed.status_reason), changed


def _success_body(result: str, conversion: Conversion, reason: str) -> dict:
    return {
        "status": str(result),
        "conversion_id": conversion.pk,
        "conversion_status": conversion.status,
        "reason": reason,
    }


def replay_postback(*, program: Program, attempt: PostbackAttempt, actor: User) -> PostbackAttempt:
    """Run a refused postback of ``program`` again (after the manager fixed a rate, the allowlist, …).

    Only attempts refused after their token (and signature) checked out can be replayed; the new attempt
    points at the old one with ``replay_of`` and its conversion's audit entry names ``actor``.
    """
    if attempt.program_id != program.pk:
        raise ValidationError(_("This postback does not belong to this program."))
    if attempt.result != PostbackAttempt.Result.REFUSED or attempt.reason in NOT_REPLAYABLE:
        raise ValidationError(_("Only postbacks refused after a valid token can be replayed."))
    _status, _body, replayed = _handle_postback(
        program, dict(attempt.params), method=attempt.method, ip="", headers={}, replay_of=attempt, actor=actor
    )
    return replayed
