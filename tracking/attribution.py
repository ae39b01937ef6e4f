"""Attribution: which affiliate (and click, link, offer) a conversion is credited to, in this order.

1. An explicit ``click_id``: it must be a click of this program. An unknown id, or another program's, is
   refused (the caller answers 400 ``unknown_click_id`` and the postback log keeps the attempt for replay);
   a sale is never silently credited to nobody when the advertiser said who sent it.
2. A ``coupon`` code of this program that is active and bound to an affiliate (codes match case-insensitively).
3. The customer's affiliate (``CustomerLink``), when the program has ``lifetime_customers`` on.
4. Nobody: the conversion is kept, unattributed, in the review queue.

First-click programs: a postback carries one click id (the advertiser's cookie), so Goalpost cannot see a
visitor's earlier clicks by itself. When the conversion names a ``customer_id`` whose first counted
conversion was credited to another affiliate within the offer's cookie window, that first affiliate wins over
the click or coupon (the conversion is then ``attributed_by = customer``, without the other affiliate's
click). Advertisers on first-click should also keep the first click id in their cookie, not the last.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef
from django.utils.translation import gettext as _
from django_scopes import scopes_disabled

from affiliates.models import Affiliate, Program
from tracking.caps import COUNTED_STATUSES, applicable_caps
from tracking.clicks import find_click
from tracking.fraud import count_of, flood_clicks
from tracking.models import (
    Click,
    Conversion,
    ConversionKind,
    Coupon,
    CustomerLink,
    Offer,
    TrackingSettings,
)

logger = logging.getLogger(__name__)

OUTSIDE_WINDOW = "outside_window"


@dataclass
class Attribution:
    """Who gets the credit, and the evidence for it."""

    attributed_by: str
    affiliate_id: int | None = None
    offer: Offer | None = None
    link_id: int | None = None
    click: Click | None = None
    note: str = ""  # why, when it is not obvious (first-click overrides)


@dataclass
class Customer:
    """What Goalpost knows of a customer id before this conversion."""

    link: CustomerLink | None
    earlier_sales: int  # counted sales of this customer before this conversion: this one's renewal number


def parse_click_id(value) -> uuid.UUID | None:
    """The click id as a UUID; None for empty; a ValidationError naming ``click_id`` for anything else."""
    if value in (None, ""):
        return None
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value).strip())
    except ValueError as error:
        raise ValidationError(
            {"click_id": ValidationError(_("This is not a click id."), code="invalid_click_id")}
        ) from error


def load_click(*, program: Program, settings: TrackingSettings, click_id: uuid.UUID) -> Click:
    """The program's click with its offer, affiliate and flood count; refused if unknown or another program's.

    The affiliate comes with ``has_caps`` (whether any conversion cap covers it on this offer), as
    ``load_affiliate`` gives it, so a postback learns everything about its click in one round trip.
    """
    click = _click_query(program, settings, click_id).first()
    # Not stored yet? The click path buffers clicks; find_click drains the buffer once and looks again.
    if click is None and find_click(program=program, click_id=click_id) is not None:
        click = _click_query(program, settings, click_id).first()
    if click is None:
        with scopes_disabled():
            elsewhere = Click.objects.filter(click_id=click_id).values_list("program_id", flat=True).first()
        if elsewhere is not None:
            # Same answer as an unknown id: nothing about another program is revealed. Logged for support.
            logger.warning("Program %s got a conversion for program %s's click %s.", program.pk, elsewhere, click_id)
        raise ValidationError(
            {"click_id": ValidationError(_("Unknown click_id for this program."), code="unknown_click_id")}
        )
    click.affiliate.has_caps = click.affiliate_has_caps
    return click


def _click_query(program: Program, settings: TrackingSettings, click_id: uuid.UUID):
    caps = applicable_caps(program=program, affiliate_id=OuterRef("affiliate_id"), offer_id=OuterRef("offer_id"))
    return (
        Click.objects.filter(program=program, click_id=click_id)
        .select_related("offer", "affiliate")  # the link's id is enough
        .annotate(flood_clicks=flood_clicks(settings), affiliate_has_caps=Exists(caps))
    )


def load_customer(*, program: Program, customer_id: str, before: datetime) -> Customer:
    """The customer's link (affiliate, first conversion) and how many counted sales they had before ``before``."""
    if not customer_id:
        return Customer(link=None, earlier_sales=0)
    earlier_sales = Conversion.objects.filter(
        program=program,
        customer_id=customer_id,
        kind=ConversionKind.SALE,
        status__in=COUNTED_STATUSES,
        created_at__lt=before,
    )
    link = (
        CustomerLink.objects.filter(program=program, customer_id=customer_id)
        .annotate(earlier_sales=count_of(earlier_sales))
        .first()
    )
    # No link means no counted conversion yet (every counted one with a customer id creates the link).
    return Customer(link=link, earlier_sales=link.earlier_sales if link else 0)


def attribute(
    *,
    program: Program,
    settings: TrackingSettings,
    click: Click | None,
    coupon: str,
    customer: Customer,
    moment: datetime,
) -> Attribution:
    """Apply the attribution order (module docstring) to what a conversion carries."""
    if click is not None:
        found = Attribution(
            Conversion.Attribution.CLICK, click.affiliate_id, offer=click.offer, link_id=click.link_id, click=click
        )
    elif coupon and (match := _coupon(program, coupon)) is not None:
        found = Attribution(Conversion.Attribution.COUPON, match.affiliate_id, offer=match.offer)
    elif settings.lifetime_customers and customer.link is not None and customer.link.affiliate_id:
        return Attribution(Conversion.Attribution.CUSTOMER, customer.link.affiliate_id)
    else:
        return Attribution(Conversion.Attribution.NONE)
    if settings.attribution_model == settings.Attribution.FIRST_CLICK:
        return _first_click(program, found, customer, moment)
    return found


def _coupon(program: Program, code: str) -> Coupon | None:
    return (
        Coupon.objects.filter(program=program, code__iexact=code.strip(), active=True, affiliate__isnull=False)
        .select_related("offer")
        .first()
    )


def _first_click(program: Program, found: Attribution, customer: Customer, moment: datetime) -> Attribution:
    first = customer.link
    if first is None or not first.affiliate_id or first.affiliate_id == found.affiliate_id:
        return found
    window_days = found.offer.cookie_window_days if found.offer else program.default_cookie_window_days
    if moment - first.first_conversion_at > timedelta(days=window_days):
        return found
    return Attribution(
        Conversion.Attribution.CUSTOMER,
        first.affiliate_id,
        offer=found.offer,
        note=_("First-click: customer “%(customer)s” came first through affiliate #%(affiliate)s.")
        % {"customer": first.customer_id, "affiliate": first.affiliate_id},
    )


def outside_window(attribution: Attribution, moment: datetime) -> bool:
    """Whether a click-attributed conversion came after the offer's cookie window had closed."""
    click = attribution.click
    if click is None or attribution.offer is None:
        return False
    return moment - click.created_at > timedelta(days=attribution.offer.cookie_window_days)


def load_affiliate(*, program: Program, affiliate_id: int, offer_id: int | None) -> Affiliate:
    """The credited affiliate (coupon or customer credit) with ``has_caps``, as ``load_click`` gives it."""
    caps = applicable_caps(program=program, affiliate_id=OuterRef("pk"), offer_id=offer_id)
    return Affiliate.objects.filter(program=program, pk=affiliate_id).annotate(has_caps=Exists(caps)).get()
