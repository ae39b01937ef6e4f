"""Demo programs, people and affiliates for `manage.py seed_demo`; running it again changes nothing."""

import random
from datetime import timedelta

from django.utils import timezone

from affiliates.models import (
    Affiliate,
    AffiliateStatus,
    AffiliateStatusChange,
    Membership,
    Program,
    Role,
    Tier,
    User,
)

DEMO_PASSWORD = "demo"  # noqa: S105 - published demo credentials, printed by `make run`

PROGRAMS = [
    {
        "slug": "demo",
        "name": "Demo Outdoor Gear",
        "timezone": "Europe/Warsaw",
        "currency": "EUR",
        "manager": "manager@demo.test",
        "owner": "owner@demo.test",
        "analyst": "analyst@demo.test",
    },
    {
        "slug": "acme",
        "name": "Acme Software",
        "timezone": "America/New_York",
        "currency": "USD",
        "manager": "manager@acme.test",
        "owner": "owner@acme.test",
        "analyst": "analyst@acme.test",
    },
]

FIRST = [
    "Anna",
    "Piotr",
    "Olga",
    "Erik",
    "Maja",
    "Ivan",
    "Sara",
    "Jan",
    "Elin",
    "Tomasz",
    "Nina",
    "Lars",
    "Kasia",
    "Dmitri",
    "Ingrid",
    "Marek",
    "Sofia",
    "Oskar",
    "Alicja",
    "Pavel",
]
NICHES = [
    "trail",
    "camping",
    "bike",
    "climb",
    "deals",
    "tech",
    "saas",
    "review",
    "coupon",
    "travel",
    "family",
    "budget",
    "green",
    "fitness",
    "photo",
]
KINDS = ["blog", "hub", "daily", "lab", "corner", "insider", "weekly", "zone"]
SOURCES = [
    "Blog with product reviews",
    "Newsletter, 12k subscribers",
    "YouTube channel",
    "Instagram",
    "Coupon site",
    "Comparison site",
    "Paid search (brand bidding excluded)",
    "Podcast sponsorships",
]
COUNTRIES = ["PL", "SE", "DE", "GB", "US", "UA", "NO", "FI", "CZ", "LT"]
STATUS_MIX = (
    [AffiliateStatus.APPROVED] * 18
    + [AffiliateStatus.PENDING] * 6
    + [AffiliateStatus.REJECTED] * 3
    + [AffiliateStatus.SUSPENDED] * 3
)
AFFILIATES_PER_PROGRAM = 30


def seed_programs() -> list[Program]:
    """Create (or find) the demo programs with their people and affiliates; call with scopes disabled."""
    seeder = Seeder()
    admin = seeder.user("admin@demo.test", "Demo Admin", superuser=True)
    affiliate_user = seeder.user("affiliate@demo.test", "Anna Trailblazer")
    programs = []
    for index, spec in enumerate(PROGRAMS):
        program = seeder.program(spec)
        for role in (Role.OWNER, Role.MANAGER, Role.ANALYST):
            seeder.member(program, seeder.user(spec[role.value], f"{role.label} {program.name}"), role)
        seeder.member(program, seeder.user("manager@demo.test", "Maria Manager"), Role.MANAGER)
        seeder.affiliates(program, affiliate_user if index == 0 else None, admin)
        programs.append(program)
    return programs


class Seeder:
    def user(self, email: str, name: str, superuser: bool = False) -> User:
        user = User.objects.filter(email=email).first()
        if user is None:
            create = User.objects.create_superuser if superuser else User.objects.create_user
            user = create(email=email, password=DEMO_PASSWORD, name=name)
        return user

    def program(self, spec: dict) -> Program:
        program, _ = Program.objects.get_or_create(
            slug=spec["slug"],
            defaults={"name": spec["name"], "timezone": spec["timezone"], "currency": spec["currency"]},
        )
        return program

    def member(self, program: Program, user: User, role: str) -> None:
        Membership.objects.get_or_create(program=program, user=user, defaults={"role": role})

    def affiliates(self, program: Program, featured: User | None, reviewer: User) -> None:
        now = timezone.now()
        for number in range(AFFILIATES_PER_PROGRAM):
            # One generator per affiliate, seeded by its identity, so a rerun rebuilds the same people.
            rng = random.Random(f"{program.slug}-{number}")  # noqa: S311 - demo data, not secrets
            first = FIRST[number % len(FIRST)]
            site = f"{rng.choice(NICHES)}{rng.choice(KINDS)}{number}"
            status = STATUS_MIX[number % len(STATUS_MIX)]
            user = featured if number == 0 and featured else None
            email = user.email if user else f"{first.lower()}.{site}@partners.{program.slug}.test"
            if Affiliate.objects.filter(program=program, email=email).exists():
                continue
            applied = now - timedelta(days=rng.randint(5, 400), hours=rng.randint(0, 23))
            affiliate = Affiliate.objects.create(
                program=program,
                user=user,
                name=f"{first} · {site.title()}",
                email=email,
                website=f"https://{site}.example",
                traffic_sources=rng.choice(SOURCES),
                country=rng.choice(COUNTRIES),
                payout_email=email,
                status=status,
                tier=rng.choice([Tier.STANDARD] * 3 + [Tier.SILVER] * 2 + [Tier.GOLD]),
                status_reason={
                    "rejected": "Traffic sources do not fit the program.",
                    "suspended": "Brand bidding found in paid search.",
                }.get(status, ""),
                terms_accepted_at=applied,
            )
            Affiliate.objects.filter(pk=affiliate.pk).update(created_at=applied)
            AffiliateStatusChange.objects.create(
                program=program,
                affiliate=affiliate,
                to_status="pending",
                reason="Application received.",
                created_at=applied,
            )
            if status != AffiliateStatus.PENDING:
                AffiliateStatusChange.objects.create(
                    program=program,
                    affiliate=affiliate,
                    from_status="pending",
                    to_status=status,
                    reason=affiliate.status_reason,
                    changed_by=reviewer,
                    created_at=applied + timedelta(days=2),
                )
            if user is not None:
                Membership.objects.get_or_create(program=program, user=user, defaults={"role": Role.AFFILIATE})
