"""Demo traffic for `manage.py seed_demo`: offers, links, three months of clicks and conversions.

Clicks go through the same store path as the drain (uniqueness, dirty marks); conversions through
record_conversion, so attribution, commissions, fraud flags and caps are the product's own. A program that
already has offers is left alone, so running the seed twice changes nothing.
"""

import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from affiliates.models import Affiliate, AffiliateStatus, Program, Tier, User
from tracking import clicks as click_store
from tracking.hashing import ip_hash, visitor_hash
from tracking.links import create_link, create_offer, tracking_settings
from tracking.models import (
    CommissionPlan,
    CommissionRule,
    Conversion,
    ConversionStatus,
    Coupon,
    CurrencyRate,
    Link,
    Offer,
)
from tracking.services import change_conversion_status, record_conversion

DAYS = 92
OFFERS = {
    "demo": [
        ("Tents & shelters", "https://shop.demo-outdoor.example/tents"),
        ("Trail running shoes", "https://shop.demo-outdoor.example/trail"),
    ],
    "acme": [
        ("Acme Cloud Pro", "https://acme-software.example/pro"),
        ("Acme Team plan", "https://acme-software.example/team"),
    ],
}
REFERRERS = [
    "",
    "",
    "https://www.google.com/",
    "https://www.facebook.com/",
    "https://t.co/x",
    "https://trailblog.example/review",
    "https://duckduckgo.com/",
]
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/18.0 Safari/605.1.15",
]
BOT_AGENT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
BATCH = 5000


def default_clicks_per_link_day() -> int:
    """A few hundred thousand clicks in all on PostgreSQL; a lighter load on the SQLite default."""
    return 45 if connection.vendor == "postgresql" else 6


def seed_traffic(program: Program, manager: User, clicks_per_day: int | None = None) -> bool:
    """Seed offers, plans, links, clicks and conversions for ``program``; False if it already has traffic."""
    if Offer.objects.filter(program=program).exists():
        return False
    rng = random.Random(f"traffic-{program.slug}")  # noqa: S311 - demo data, not secrets
    with transaction.atomic():
        offers = [
            create_offer(program=program, name=name, destination_url=url, cookie_window_days=30)
            for name, url in OFFERS.get(program.slug, OFFERS["demo"])
        ]
        _commission_plan(program, offers)
        affiliates = list(Affiliate.objects.filter(program=program, status=AffiliateStatus.APPROVED).order_by("pk"))
        links = [
            create_link(program=program, offer=offer, affiliate=affiliate, name=offer.name)
            for affiliate in affiliates
            for offer in offers[: 1 + affiliate.pk % 2]
        ]
        for affiliate in affiliates[:3]:
            Coupon.objects.create(
                program=program, code=f"{affiliate.name.split()[0].upper()}{affiliate.pk}", affiliate=affiliate
            )
        foreign = "USD" if program.currency != "USD" else "EUR"
        today = timezone.localdate()
        CurrencyRate.objects.bulk_create(
            [
                CurrencyRate(
                    program=program,
                    currency=foreign,
                    day=today - timedelta(days=offset),
                    rate=Decimal("0.92") if foreign == "USD" else Decimal("1.08"),
                )
                for offset in range(DAYS + 2)
            ]
        )
    settings = tracking_settings(program)
    settings.hold_days = 30
    settings.save(update_fields=["hold_days"])
    clicks = _seed_clicks(program, links, rng, clicks_per_day or default_clicks_per_link_day())
    _seed_conversions(program, clicks, manager, rng)
    return True


def _commission_plan(program: Program, offers: list[Offer]) -> None:
    plan = CommissionPlan.objects.create(program=program, name="Standard", is_default=True)
    rule = {"program": program, "plan": plan}
    CommissionRule.objects.bulk_create(
        [
            CommissionRule(**rule, kind="sale", rule_type="revenue_share", percent=Decimal("8")),
            CommissionRule(**rule, kind="lead", rule_type="flat", amount=Decimal("4.00")),
            CommissionRule(
                **rule,
                kind="sale",
                rule_type="tiered",
                offer=offers[0],
                tiers=[
                    {"min_conversions": 0, "percent": "8", "name": "Base"},
                    {"min_conversions": 20, "percent": "10", "name": "Silver"},
                    {"min_conversions": 50, "percent": "12", "name": "Gold"},
                ],
            ),
            CommissionRule(
                **rule,
                kind="sale",
                rule_type="revenue_share",
                percent=Decimal("5"),
                recurring_renewals=6,
                offer=offers[-1],
            ),
        ]
    )
    gold = Affiliate.objects.filter(program=program, tier=Tier.GOLD, status=AffiliateStatus.APPROVED).first()
    if gold is not None:
        CommissionRule.objects.create(
            **rule, kind="sale", rule_type="revenue_share", percent=Decimal("15"), affiliate=gold
        )


def _seed_clicks(program: Program, links: list[Link], rng: random.Random, per_day: int) -> list[dict]:
    """Insert three months of clicks and impressions; returns the stored click entries."""
    now = timezone.now()
    entries, stored = [], []
    timezones = {program.pk: program.timezone}
    for link in links:
        quality = rng.uniform(0.2, 1.8)
        visitors = [f"198.51.{rng.randint(0, 255)}.{rng.randint(1, 254)}" for _ in range(per_day * 20)]
        for day in range(DAYS, -1, -1):
            for _ in range(max(0, int(rng.gauss(per_day * quality, per_day * 0.3)))):
                moment = now - timedelta(days=day, seconds=rng.randint(0, 86399))
                if moment > now:
                    continue
                bot = rng.random() < 0.03
                ip, agent = rng.choice(visitors), BOT_AGENT if bot else rng.choice(AGENTS)
                referrer = rng.choice(REFERRERS)
                entry = {
                    "k": click_store.CLICK,
                    "p": program.pk,
                    "id": uuid.uuid4().hex,
                    "l": link.pk,
                    "a": link.affiliate_id,
                    "o": link.offer_id,
                    "t": int(moment.timestamp() * 1_000_000),
                    "s": [rng.choice(["newsletter", "sidebar", "review", ""]), ""],
                    "r": referrer,
                    "u": agent,
                    "ih": ip_hash(program.pk, ip),
                    "vh": visitor_hash(program.pk, ip, agent),
                    "c": rng.choice(["PL", "SE", "DE", "US", "GB"]),
                    "src": _source(referrer),
                    "b": bot,
                    "q": quality,
                }
                entries.append(entry)
                if rng.random() < 0.5:
                    entries.append(
                        {
                            "k": click_store.IMPRESSION,
                            "p": program.pk,
                            "id": uuid.uuid4().hex,
                            "l": link.pk,
                            "a": link.affiliate_id,
                            "o": link.offer_id,
                            "t": entry["t"] - 5_000_000,
                            "b": bot,
                        }
                    )
                if len(entries) >= BATCH:
                    click_store.store_events(entries, timezones=timezones, checked=True)
                    stored += [entry for entry in entries if entry["k"] == click_store.CLICK]
                    entries = []
    click_store.store_events(entries, timezones=timezones, checked=True)
    return stored + [entry for entry in entries if entry["k"] == click_store.CLICK]


def _source(referrer: str) -> str:
    from tracking.sources import traffic_source

    return traffic_source(referrer=referrer, utm_medium="")


def _seed_conversions(program: Program, clicks: list[dict], manager: User, rng: random.Random) -> None:
    """Convert a share of non-bot clicks through the real service, then age the statuses like a real month."""
    now = timezone.now()
    candidates = [entry for entry in clicks if not entry["b"]]
    rng.shuffle(candidates)
    budget = min(900 if connection.vendor == "postgresql" else 450, len(candidates) // 25)
    created = []
    for number, entry in enumerate(candidates[: budget * 6]):
        if len(created) >= budget or rng.random() > 0.04 * entry["q"] * 4:
            continue
        clicked = datetime.fromtimestamp(entry["t"] / 1_000_000, tz=UTC)
        moment = min(now, clicked + timedelta(minutes=rng.randint(3, 600)))
        if number % 97 == 0:
            moment = clicked + timedelta(seconds=2)  # too fast: the fraud check sends it to review
        kind = "lead" if rng.random() < 0.25 else "sale"
        conversion, _ = record_conversion(
            program=program,
            source=Conversion.Source.POSTBACK,
            kind=kind,
            order_id=f"{program.slug.upper()}-{number:06d}",
            click_id=entry["id"],
            amount=Decimal(rng.randint(1500, 32000)) / 100 if kind == "sale" else None,
            currency=program.currency,
            customer_id=f"cust-{rng.randint(1, 600)}",
            occurred_at=moment,
        )
        created.append(conversion)
    for conversion in created:
        age = (now - conversion.created_at).days
        if conversion.status != ConversionStatus.PENDING or conversion.in_review:
            continue
        if age > 30:
            roll = rng.random()
            target = "rejected" if roll < 0.05 else "approved"
            change_conversion_status(
                program=program,
                conversion=conversion,
                to_status=target,
                reason="Demo: checked against orders"
                if target == "approved"
                else "Demo: order cancelled before shipping",
                actor=manager,
            )
            if target == "approved" and roll > 0.97:
                change_conversion_status(
                    program=program,
                    conversion=conversion,
                    to_status="reversed",
                    reason="Demo: refund requested",
                    actor=manager,
                )
        elif age > 7 and rng.random() < 0.6:
            change_conversion_status(
                program=program,
                conversion=conversion,
                to_status="approved",
                reason="Demo: checked against orders",
                actor=manager,
            )
