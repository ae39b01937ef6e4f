"""`manage.py rebuild_stats --program <slug> --from YYYY-MM --to YYYY-MM`: DailyStats rebuilt from raw events."""

from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django_scopes import scope, scopes_disabled

from affiliates.models import Program
from goals.models import JobRun
from goals.periods import month_from_text
from goals.rollups import rebuild_stats


def program_and_months(slug: str, first: str, last: str) -> tuple[Program, date, date]:
    """The program and the month range a command was given, or a CommandError saying what is wrong."""
    with scopes_disabled():
        program = Program.objects.filter(slug=slug).first()
    if program is None:
        raise CommandError(f"No program with the slug {slug!r}.")
    try:
        first_month, last_month = month_from_text(first), month_from_text(last)
    except ValueError as error:
        raise CommandError(f"Months are written YYYY-MM: {error}") from error
    if last_month < first_month:
        raise CommandError(f"--to {last} is before --from {first}.")
    return program, first_month, last_month


class Command(BaseCommand):
    help = "Rebuild a program's daily stats for a range of program-local months from the raw events."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--program", required=True, help="the program's slug")
        parser.add_argument("--from", dest="first", required=True, metavar="YYYY-MM", help="first month")
        parser.add_argument("--to", dest="last", required=True, metavar="YYYY-MM", help="last month, included")
        parser.add_argument("--chunk-days", type=int, default=None, help="local days per transaction")

    def handle(self, *args, program: str, first: str, last: str, chunk_days: int | None, **options) -> None:
        program_row, first_month, last_month = program_and_months(program, first, last)

        def progress(job: JobRun, day: date, end: date) -> None:
            self.stdout.write(f"{day} … {end}  {job.done}/{job.total} days")

        with scope(program=program_row):
            job = rebuild_stats(
                program=program_row,
                first_month=first_month,
                last_month=last_month,
                chunk_days=chunk_days,
                on_progress=progress,
            )
        self.stdout.write(self.style.SUCCESS(f"{program_row.slug}: {job.message} (job {job.pk})"))
