"""`manage.py reconcile_stats [--program <slug>] [--days N]`: check recent DailyStats against raw events, fix drift."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django_scopes import scope, scopes_disabled

from affiliates.models import Program
from goals.rollups import reconcile_stats


class Command(BaseCommand):
    help = "Recompute the last days of daily stats from raw events, report any drift and fix it."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--program", help="one program's slug (default: every program)")
        parser.add_argument("--days", type=int, default=None, help="local days back, today included")

    def handle(self, *args, program: str | None, days: int | None, **options) -> None:
        days = days or settings.ROLLUP_RECONCILE_DAYS
        with scopes_disabled():
            programs = Program.objects.order_by("pk")
            if program:
                programs = programs.filter(slug=program)
            programs = list(programs)
        if program and not programs:
            raise CommandError(f"No program with the slug {program!r}.")
        drifted = 0
        for done, row in enumerate(programs, start=1):
            with scope(program=row):
                job = reconcile_stats(program=row, days=days)
            drifted += job.message.startswith("Drift")
            style = self.style.WARNING if job.message.startswith("Drift") else self.style.SUCCESS
            self.stdout.write(style(f"{done}/{len(programs)} {row.slug}: {job.message}"))
        self.stdout.write(f"{len(programs)} programs checked, {drifted} with drift.")
