"""`manage.py seed_demo`: demo programs, people, traffic and goals; running it again changes nothing.

It lives in reports, the top of the import chain, because it calls every app's demo seeder in order.
"""

from django.core.management.base import BaseCommand
from django.db import transaction
from django_scopes import scopes_disabled

from affiliates import demo as affiliates_demo


class Command(BaseCommand):
    help = "Create demo programs, users, affiliates and their activity (idempotent)."

    def handle(self, *args, **options) -> None:
        # A management command works across programs on purpose.
        with scopes_disabled(), transaction.atomic():
            affiliates_demo.seed_programs()
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready. Log in at /accounts/login/ with password “{affiliates_demo.DEMO_PASSWORD}”: "
                "manager@demo.test, affiliate@demo.test, admin@demo.test (superuser, /admin/)."
            )
        )
