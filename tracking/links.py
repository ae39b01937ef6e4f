"""Offers and links: creation with validation, and the cached view of a link that the redirect reads."""

from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from affiliates.models import Affiliate, AffiliateStatus, Program
from tracking.models import Link, Offer, TrackingSettings

# Short enough that pausing a link or suspending an affiliate reaches the redirect within minutes.
LINK_CACHE_SECONDS = 300
LINK_CACHE_PREFIX = "link:"


def https_host(url: str, field: str) -> str:
    """The host of an https URL, or a ValidationError naming ``field``; refuses javascript:, http:, userinfo."""
    parts = urlsplit(url.strip())
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
        raise ValidationError({field: _("Enter an https:// address.")})
    return parts.hostname.lower()


def allowed_hosts(offer: Offer) -> set[str]:
    hosts = {urlsplit(offer.destination_url).hostname.lower()}
    hosts.update(line.strip().lower() for line in offer.allowed_domains.splitlines() if line.strip())
    return hosts


def tracking_settings(program: Program) -> TrackingSettings:
    """The program's tracking settings, created with defaults on first use."""
    settings, _ = TrackingSettings.objects.get_or_create(program=program)
    return settings


def create_offer(*, program: Program, name: str, destination_url: str, **fields) -> Offer:
    """Create an offer of ``program`` whose destination is an https URL."""
    https_host(destination_url, "destination_url")
    offer = Offer(program=program, name=name.strip(), destination_url=destination_url.strip(), **fields)
    offer.full_clean()
    offer.save()
    return offer


def update_offer(*, program: Program, offer: Offer, **fields) -> Offer:
    if offer.program_id != program.pk:
        raise ValidationError(_("This offer does not belong to this program."))
    for name, value in fields.items():
        setattr(offer, name, value)
    https_host(offer.destination_url, "destination_url")
    offer.full_clean()
    with transaction.atomic():
        offer.save()
        # Every link of the offer redirects according to the offer: drop their cached copies.
        codes = list(Link.objects.filter(program=program, offer=offer).values_list("code", flat=True))
        transaction.on_commit(lambda: forget_links(codes))
    return offer


def create_link(*, program: Program, offer: Offer, affiliate: Affiliate, name: str = "", landing_url: str = "") -> Link:
    """Create a tracking link for an approved affiliate; a landing page must be on the offer's domains."""
    if offer.program_id != program.pk or affiliate.program_id != program.pk:
        raise ValidationError(_("The offer and the affiliate must belong to this program."))
    if affiliate.status != AffiliateStatus.APPROVED:
        raise ValidationError(_("Only approved affiliates can create links."))
    if offer.status != Offer.Status.ACTIVE:
        raise ValidationError({"offer": _("This offer is paused.")})
    if landing_url and https_host(landing_url, "landing_url") not in allowed_hosts(offer):
        raise ValidationError(
            {
                "landing_url": _("The landing page must be on one of the offer's domains: %(hosts)s.")
                % {"hosts": ", ".join(sorted(allowed_hosts(offer)))}
            }
        )
    link = Link(program=program, offer=offer, affiliate=affiliate, name=name.strip(), landing_url=landing_url.strip())
    link.full_clean()
    link.save()
    return link


def set_link_status(*, program: Program, link: Link, status: str) -> Link:
    if link.program_id != program.pk:
        raise ValidationError(_("This link does not belong to this program."))
    link.status = status
    link.full_clean()
    link.save(update_fields=["status"])
    transaction.on_commit(lambda: forget_links([link.code]))
    return link


@dataclass(frozen=True)
class CachedLink:
    """Everything the redirect needs about a link, so a cached click does no SQL."""

    code: str
    program_id: int
    link_id: int
    affiliate_id: int
    offer_id: int
    destination: str
    click_id_param: str
    cookie_days: int
    fallback_url: str
    active: bool
    # affiliates.services.STATUS_GENERATION_KEY when this was read: a different one means an affiliate's
    # status changed since, and ``active`` may be stale.
    status_generation: int = 0


def load_link(code: str, *, status_generation: int = 0) -> CachedLink | None:
    """The redirect's view of a link, read from the database and cached; None for unknown codes.

    ``status_generation`` is the affiliates' status generation the caller read before calling, stored with
    the link so that a later status change makes the click path read it again (tracking.clicks.lookup_link).
    """
    from django_scopes import scopes_disabled

    key = LINK_CACHE_PREFIX + code
    # The code is the only key a click carries: the program is learned from the link itself.
    with scopes_disabled():
        link = Link.objects.select_related("offer", "affiliate").filter(code=code).first()
    if link is None:
        cache.set(key, {}, 60)  # remember misses briefly so a scan of random codes stays cheap
        return None
    offer = link.offer
    data = CachedLink(
        code=code,
        program_id=link.program_id,
        link_id=link.pk,
        affiliate_id=link.affiliate_id,
        offer_id=offer.pk,
        destination=link.landing_url or offer.destination_url,
        click_id_param=offer.click_id_param,
        cookie_days=offer.cookie_window_days,
        fallback_url=offer.fallback_url,
        active=(
            link.status == Link.Status.ACTIVE
            and offer.status == Offer.Status.ACTIVE
            and link.affiliate.status == AffiliateStatus.APPROVED
        ),
        status_generation=status_generation,
    )
    cache.set(key, asdict(data), LINK_CACHE_SECONDS)
    return data


def forget_links(codes: list[str]) -> None:
    cache.delete_many([LINK_CACHE_PREFIX + code for code in codes])
