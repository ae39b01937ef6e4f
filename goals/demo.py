"""Demo goals for `manage.py seed_demo`: three months of targets, two closed months with bonuses, a clawback.

Targets are set from each affiliate's real demo numbers times a spread of factors, so the board shows a mix
of met, on-track, at-risk and behind. Everything goes through the product's services (rollups, set_goal,
close_month, a reversal that claws a bonus back), so the demo is what the code computes.
"""

import random
from decimal import Decimal

from django.utils import timezone

from affiliates.models import Affiliate, AffiliateStatus, Program, User
from goals.closing import close_month
from goals.kpis import View
from goals.models import BonusEntry, Goal
from goals.periods import Period, elapsed_share, month_of, previous_month
from goals.rollups import process_dirty_keys, rebuild_stats
from goals.selectors import kpi_values
from goals.services import set_goal
from tracking.models import Conversion, ConversionStatus
from tracking.services import change_conversion_status

# How far each affiliate's target sits from what they actually do: below 1 is met, far above is behind.
FACTORS = [Decimal("0.6"), Decimal("0.9"), Decimal("1.05"), Decimal("1.15"), Decimal("1.4"), Decimal("2.2")]
TIERS = [{"progress": "100", "amount": "100.00"}, {"progress": "120", "amount": "250.00"}]


def seed_goals(program: Program, manager: User) -> bool:
    """Set goals for the current and previous two months and close the past ones; False if goals exist."""
    if Goal.objects.filter(program=program).exists():
        return False
    now = timezone.now()
    current = month_of(program, now)
    months = [previous_month(previous_month(current)), previous_month(current), current]
    rebuild_stats(program=program, first_month=months[0], last_month=current)
    process_dirty_keys()  # the seeded events marked their days dirty; the rebuild already has them
    affiliates = list(Affiliate.objects.filter(program=program, status=AffiliateStatus.APPROVED).order_by("pk"))
    rng = random.Random(f"goals-{program.slug}")  # noqa: S311 - demo data, not secrets
    chosen = affiliates[:-3]  # a few affiliates stay without goals: the board's "not yet set" view
    for month in months:
        elapsed = elapsed_share(program, month, now) if month == current else Decimal(1)
        actual = kpi_values(
            program=program,
            period=Period.month(month),
            kpis=["clicks", "conversions", "revenue"],
            affiliate_ids=[affiliate.pk for affiliate in chosen],
            view=View.CONFIRMED if month != current else View.PROVISIONAL,
        )
        for affiliate in chosen:
            values = actual[affiliate.pk]
            factor = rng.choice(FACTORS)
            for kpi, bonus in (
                ("clicks", {}),
                ("conversions", {"bonus_type": "fixed", "bonus_amount": Decimal(50)}),
                ("revenue", {"bonus_type": "tiers", "bonus_tiers": TIERS}),
            ):
                projected = (values[kpi] or Decimal(0)) / elapsed
                target = max(Decimal(1), (projected * factor).quantize(Decimal(1)))
                set_goal(
                    program=program, affiliate=affiliate, month=month, kpi=kpi, target=target, actor=manager, **bonus
                )
        set_goal(
            program=program,
            affiliate=chosen[0],
            month=current,
            kpi="manual",
            label="Publish 4 reviews",
            target=4,
            actor=manager,
            note="Reviews of the new tent range",
        )
    for month in months[:2]:
        close_month(program=program, month=month, now=now)
    _clawback_one(program, months[1], manager)
    return True


def _clawback_one(program: Program, month, manager: User) -> None:
    """Refund just enough of one bonus winner's sales in a closed month to fall below target: one clawback."""
    candidates = []
    start, end = Period.month(month).instants(program)
    for bonus in BonusEntry.objects.filter(program=program, month=month, goal__kpi="conversions").select_related(
        "goal"
    ):
        approved = list(
            Conversion.objects.filter(
                program=program,
                affiliate_id=bonus.goal.affiliate_id,
                status=ConversionStatus.APPROVED,
                created_at__gte=start,
                created_at__lt=end,
            ).order_by("pk")
        )
        excess = len(approved) - int(bonus.goal.target) + 1
        if excess > 0:
            candidates.append((excess, bonus.pk, approved[:excess]))
    if not candidates:
        return
    _excess, _bonus, refunds = min(candidates, key=lambda candidate: candidate[:2])
    for conversion in refunds:
        change_conversion_status(
            program=program,
            conversion=conversion,
            to_status="reversed",
            reason="Demo: chargeback from the card issuer",
            actor=manager,
        )
    process_dirty_keys()
