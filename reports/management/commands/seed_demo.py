"""`manage.py seed_demo`: demo programs, people, traffic and goals; running it again changes nothing.

It lives in reports, the top of the import chain, because it calls every app's demo seeder in order.
"""

from django.core.management.base import BaseCommand
from django.db import transaction
from django.test.utils import override_settings
from django_scopes import scopes_disabled

from affiliates import demo as affiliates_demo
from affiliates.models import User
from goals import demo as goals_demo
from tracking import demo as tracking_demo


class Command(BaseCommand):
    help = "Create demo programs, users, affiliates and their activity (idempotent)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--clicks-per-day",
            type=int,
            default=None,
            help="Average clicks per link and day (default: 45 on PostgreSQL, 6 on SQLite).",
        )

    def handle(self, *args, **options) -> None:
        # A management command works across programs on purpose; the demo's hundreds of goal notifications
        # stay in the app (in-app notifications) instead of flooding the console with emails.
        with scopes_disabled(), override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
            with transaction.atomic():
                programs = affiliates_demo.seed_programs()
            manager = User.objects.get(email="manager@demo.test")
            for program in programs:
                if tracking_demo.seed_traffic(program, manager, options["clicks_per_day"]):
                    self.stdout.write(f"{program.name}: offers, links, three months of clicks and conversions.")
                if goals_demo.seed_goals(program, manager):
                    self.stdout.write(f"{program.name}: goals for three months, two months closed with bonuses.")
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready. Log in at /accounts/login/ with password “{affiliates_demo.DEMO_PASSWORD}”: "
                "manager@demo.test, affiliate@demo.test, admin@demo.test (superuser, /admin/)."
            )
        )
