"""Fraud signals: flags that send a conversion to the review queue (pending, ``in_review``), never silent drops.

- ``fast_conversion``: less than ``fraud_min_seconds_to_convert`` passed between the click and the conversion.
- ``click_flood``: ≥ ``fraud_click_flood_count`` clicks from the click's IP hash on its link within the
  ``fraud_click_flood_minutes`` up to and including the click.
- ``self_referral``: the conversion's or the click's IP hash equals the affiliate's last-login IP hash.
- ``conversion_rate_outlier``: the affiliate's conversion rate this program-local month, this conversion
  included, is above ``fraud_conversion_rate_factor`` × the program's, once the affiliate has
  ``CONVERSION_RATE_MIN_CLICKS`` clicks this month, and both it and the program have a few conversions
  (``CONVERSION_RATE_MIN_CONVERSIONS``, ``PROGRAM_MIN_CONVERSIONS``): one early sale is no evidence.
- ``bot_click``: the click was flagged as a bot.
"""

import logging
import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from django.db.models import F, Func, IntegerField, OuterRef, Subquery
from django.http import HttpRequest
from django_scopes import scopes_disabled

from affiliates.models import Affiliate, Program, User
from tracking.caps import COUNTED_STATUSES, UNCAPPED_KINDS
from tracking.hashing import client_ip, ip_hash
from tracking.models import Click, Conversion, TrackingSettings

logger = logging.getLogger(__name__)

FAST_CONVERSION = "fast_conversion"
CLICK_FLOOD = "click_flood"
SELF_REFERRAL = "self_referral"
CONVERSION_RATE_OUTLIER = "conversion_rate_outlier"
BOT_CLICK = "bot_click"
FLAGS = (FAST_CONVERSION, CLICK_FLOOD, SELF_REFERRAL, CONVERSION_RATE_OUTLIER, BOT_CLICK)

# KPI.md's minimum volume for ratio goals: below it a conversion rate says nothing.
CONVERSION_RATE_MIN_CLICKS = 100
# ...and at least this many conversions of the affiliate, and of the program, this month.
CONVERSION_RATE_MIN_CONVERSIONS = 4
PROGRAM_MIN_CONVERSIONS = 10
# Month volumes move slowly relative to this; counting them on every conversion would cost month-long scans.
VOLUME_CACHE_SECONDS = 300


class Volume(NamedTuple):
    clicks: int
    conversions: int


def count_of(queryset) -> Subquery:
    """A scalar subquery counting ``queryset``'s rows (no GROUP BY: COUNT is not seen as an aggregate)."""
    return Subquery(queryset.order_by().values(n=Func(F("pk"), function="COUNT")), output_field=IntegerField())


def flood_clicks(settings: TrackingSettings) -> Subquery:
    """For annotating a Click query: clicks from the same IP hash on the same link in the flood window."""
    window = timedelta(minutes=settings.fraud_click_flood_minutes)
    return count_of(
        Click.objects.filter(
            program_id=OuterRef("program_id"),
            link_id=OuterRef("link_id"),
            ip_hash=OuterRef("ip_hash"),
            created_at__gt=OuterRef("created_at") - window,
            created_at__lte=OuterRef("created_at"),
        )
    )


# (program id, program created_at, affiliate id or None, month start) -> (monotonic expiry, volume). The creation
# time tells apart two programs that got the same id (test databases, SQLite after a rollback).
_volumes: dict[tuple, tuple[float, Volume]] = {}
VOLUMES_KEPT = 10_000  # entries before the expired ones are dropped


def month_volumes(
    *, program: Program, month: tuple[datetime, datetime], affiliate_ids: list[int | None]
) -> dict[int | None, Volume]:
    """Non-bot clicks and counted attributed conversions in ``month`` of each affiliate (None: the program).

    Kept for VOLUME_CACHE_SECONDS in this process's memory, in a plain dict: the rate signal is a heuristic
    over a whole month, and counting a busy affiliate's month of clicks on every conversion, or even a Redis
    round trip for the cached counts, would cost more than the rest of a postback together. (A LocMemCache
    pickles, validates keys and locks on every read, which cost a postback as much as the signal itself.)
    """
    now = time.monotonic()
    volumes = {}
    for affiliate_id in affiliate_ids:
        key = (program.pk, program.created_at, affiliate_id, month[0])
        kept = _volumes.get(key)
        if kept is not None and kept[0] > now:
            volumes[affiliate_id] = kept[1]
            continue
        volumes[affiliate_id] = _count_volume(program, month, affiliate_id)
        if len(_volumes) >= VOLUMES_KEPT:
            for old in [old for old, (expiry, _volume) in _volumes.items() if expiry <= now]:
                del _volumes[old]
            if len(_volumes) >= VOLUMES_KEPT:  # all still fresh: start over rather than grow
                _volumes.clear()
        _volumes[key] = (now + VOLUME_CACHE_SECONDS, volumes[affiliate_id])
    return volumes


def month_volume(*, program: Program, month: tuple[datetime, datetime], affiliate_id: int | None = None) -> Volume:
    """``month_volumes`` of one affiliate, or of the program."""
    return month_volumes(program=program, month=month, affiliate_ids=[affiliate_id])[affiliate_id]


def _count_volume(program: Program, month: tuple[datetime, datetime], affiliate_id: int | None) -> Volume:
    start, end = month
    clicks = Click.objects.filter(program=program, is_bot=False, created_at__gte=start, created_at__lt=end)
    conversions = Conversion.objects.filter(
        program=program, affiliate__isnull=False, status__in=COUNTED_STATUSES, created_at__gte=start, created_at__lt=end
    ).exclude(kind__in=UNCAPPED_KINDS)
    if affiliate_id is not None:
        clicks, conversions = clicks.filter(affiliate_id=affiliate_id), conversions.filter(affiliate_id=affiliate_id)
    return Volume(
        *Program.objects.filter(pk=program.pk)
        .annotate(month_clicks=count_of(clicks), month_conversions=count_of(conversions))
        .values_list("month_clicks", "month_conversions")
        .get()
    )


def fraud_flags(
    *,
    program: Program,
    settings: TrackingSettings,
    click: Click | None,
    affiliate: Affiliate | None,
    moment: datetime,
    conversion_ip_hash: str,
    month: tuple[datetime, datetime],
) -> list[str]:
    """The fraud flags of a conversion at ``moment`` credited to ``affiliate`` through ``click`` (either may be
    None)."""
    flags = []
    if click is not None:
        if (moment - click.created_at).total_seconds() < settings.fraud_min_seconds_to_convert:
            flags.append(FAST_CONVERSION)
        if click.ip_hash and getattr(click, "flood_clicks", 0) >= settings.fraud_click_flood_count:
            flags.append(CLICK_FLOOD)
    if affiliate is not None and affiliate.login_ip_hash:
        seen = {conversion_ip_hash, click.ip_hash if click is not None else ""}
        if affiliate.login_ip_hash in seen:
            flags.append(SELF_REFERRAL)
    if affiliate is not None and is_conversion_rate_outlier(
        program=program, settings=settings, affiliate=affiliate, month=month
    ):
        flags.append(CONVERSION_RATE_OUTLIER)
    if click is not None and click.is_bot:
        flags.append(BOT_CLICK)
    return flags


def is_conversion_rate_outlier(
    *, program: Program, settings: TrackingSettings, affiliate: Affiliate, month: tuple[datetime, datetime]
) -> bool:
    """Whether the affiliate's rate this month, this conversion included, is far above the program's."""
    volumes = month_volumes(program=program, month=month, affiliate_ids=[affiliate.pk, None])
    mine, everyone = volumes[affiliate.pk], volumes[None]
    if mine.clicks < CONVERSION_RATE_MIN_CLICKS or not everyone.clicks:
        return False
    # Both counts include this conversion. Too few conversions say nothing: early in a month the program's
    # rate is near zero and every affiliate's first sale would look like fraud.
    if mine.conversions + 1 < CONVERSION_RATE_MIN_CONVERSIONS or everyone.conversions + 1 < PROGRAM_MIN_CONVERSIONS:
        return False
    affiliate_rate = Decimal(mine.conversions + 1) / mine.clicks
    program_rate = Decimal(everyone.conversions + 1) / everyone.clicks
    return affiliate_rate > settings.fraud_conversion_rate_factor * program_rate


def record_login_ip(sender, request: HttpRequest | None, user: User, **kwargs) -> None:
    """On login, remember the hash of the IP for each of the user's affiliate profiles (self-referral signal).

    Connected to ``user_logged_in`` in TrackingConfig.ready: it records an authentication fact, it does not
    drive domain flow. Hashes are salted per program, so each profile gets its own program's hash.
    """
    if request is None:
        return
    ip = client_ip(request.META)
    if not ip:
        return
    with scopes_disabled():  # one login, every program the person is an affiliate of
        profiles = list(Affiliate.objects.filter(user=user).values_list("pk", "program_id"))
        for pk, program_id in profiles:
            Affiliate.objects.filter(pk=pk).update(login_ip_hash=ip_hash(program_id, ip))
