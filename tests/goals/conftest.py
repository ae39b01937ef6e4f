"""Goals fixtures: raw events written straight through the tracking models, for rollup tests."""

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django_scopes import scopes_disabled

from goals.models import BonusEntry, ClawbackEntry, FeeEntry, Goal
from tracking.links import create_link, create_offer
from tracking.models import Click, Conversion, ConversionEvent, ConversionKind, ConversionStatus, Impression


def utc(text: str) -> datetime:
    """'2026-04-02 10:00' as an aware UTC instant."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class Events:
    """Writes raw events of one program the way the tracking pipeline stores them (no services involved)."""

    program: object
    affiliate: object
    other: object
    links: dict

    def _link(self, affiliate):
        return self.links[(affiliate or self.affiliate).pk]

    def click(self, at: str, *, affiliate=None, bot: bool = False, unique: bool = True, count: int = 1) -> list[Click]:
        link = self._link(affiliate)
        with scopes_disabled():
            return Click.objects.bulk_create(
                Click(
                    program=self.program,
                    link=link,
                    affiliate_id=link.affiliate_id,
                    offer_id=link.offer_id,
                    created_at=utc(at),
                    is_bot=bot,
                    is_unique=unique,
                )
                for _ in range(count)
            )

    def impression(self, at: str, *, affiliate=None, bot: bool = False) -> Impression:
        link = self._link(affiliate)
        with scopes_disabled():
            return Impression.objects.create(
                program=self.program,
                link=link,
                affiliate_id=link.affiliate_id,
                offer_id=link.offer_id,
                created_at=utc(at),
                is_bot=bot,
            )

    def conversion(
        self,
        at: str,
        *,
        kind: str = ConversionKind.SALE,
        status: str = ConversionStatus.PENDING,
        revenue: str = "0",
        commission: str = "0",
        customer: str = "",
        affiliate="default",
    ) -> Conversion:
        affiliate = self.affiliate if affiliate == "default" else affiliate
        with scopes_disabled():
            conversion = Conversion.objects.create(
                program=self.program,
                kind=kind,
                order_id=uuid.uuid4().hex,
                status=status,
                created_at=utc(at),
                status_changed_at=utc(at),
                amount=Decimal(revenue),
                currency="EUR",
                revenue=Decimal(revenue),
                commission=Decimal(commission),
                customer_id=customer,
                affiliate=affiliate,
                source=Conversion.Source.API,
            )
            ConversionEvent.objects.create(
                program=self.program, conversion=conversion, from_status="", to_status=status, created_at=utc(at)
            )
        return conversion

    def change_status(self, conversion: Conversion, to_status: str, at: str) -> Conversion:
        with scopes_disabled():
            ConversionEvent.objects.create(
                program=self.program,
                conversion=conversion,
                from_status=conversion.status,
                to_status=to_status,
                created_at=utc(at),
            )
            conversion.status, conversion.status_changed_at = to_status, utc(at)
            conversion.save(update_fields=["status", "status_changed_at"])
        return conversion

    def bonus(self, day: date, amount: str, *, affiliate=None) -> BonusEntry:
        affiliate = affiliate or self.affiliate
        with scopes_disabled():
            goal = Goal.objects.create(
                program=self.program,
                affiliate=affiliate,
                month=day.replace(day=1),
                kpi="clicks",
                label=uuid.uuid4().hex[:8],
                target=Decimal(100),
            )
            return BonusEntry.objects.create(
                program=self.program,
                affiliate=affiliate,
                goal=goal,
                month=day.replace(day=1),
                day=day,
                amount=Decimal(amount),
                explanation="test bonus",
            )

    def clawback(self, bonus: BonusEntry, day: date, amount: str) -> ClawbackEntry:
        with scopes_disabled():
            return ClawbackEntry.objects.create(
                program=self.program,
                affiliate_id=bonus.affiliate_id,
                bonus=bonus,
                month=day.replace(day=1),
                day=day,
                amount=Decimal(amount),
                explanation="test clawback",
            )

    def fee(self, day: date, amount: str, *, affiliate=None) -> FeeEntry:
        with scopes_disabled():
            return FeeEntry.objects.create(
                program=self.program, affiliate=affiliate or self.affiliate, day=day, amount=Decimal(amount), note="fee"
            )


def build_events(world, slug: str) -> Events:
    with scopes_disabled():
        offer = create_offer(
            program=world.program, name=f"{slug} rollup offer", destination_url=f"https://{slug}.test/"
        )
        links = {
            affiliate.pk: create_link(program=world.program, offer=offer, affiliate=affiliate)
            for affiliate in (world.affiliate, world.other_affiliate)
        }
    return Events(program=world.program, affiliate=world.affiliate, other=world.other_affiliate, links=links)


@pytest.fixture
def events(alice) -> Events:
    """alice's program (Europe/Warsaw) with a link for each of its two approved affiliates."""
    return build_events(alice, "alice")


@pytest.fixture
def bob_events(bob) -> Events:
    return build_events(bob, "bob")
