"""`manage.py close_month --program <slug> --month YYYY-MM`: close one month of one program, now.

Idempotent and resumable like the periodic close: running it again after it finished changes nothing, and
running it after a crash finishes what the crashed run began.

For the crash test only: with GOALPOST_CLOSE_PAUSE_AFTER_BONUSES=N in the environment the command prints
"paused after N bonuses" once at least N bonuses are committed and then waits to be killed.
"""

import os
import sys
import time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django_scopes import scope

from affiliates.models import Program
from goals.closing import CLOSE_BATCH_SIZE, close_month
from goals.periods import month_from_text

PAUSE_VARIABLE = "GOALPOST_CLOSE_PAUSE_AFTER_BONUSES"
PAUSE_SECONDS = 600


def pause_after(count: int):
    """A bonus-batch hook that stops the close after ``count`` bonuses until the process is killed."""

    def hook(awarded: int) -> None:
        if awarded >= count:
            sys.stdout.write(f"paused after {awarded} bonuses\n")
            sys.stdout.flush()
            time.sleep(PAUSE_SECONDS)  # the test SIGKILLs the process here
            raise CommandError("The pause for the crash test ended without the process being killed.")

    return hook


class Command(BaseCommand):
    help = "Close a program's month: freeze goal results, award bonuses once, write monthly reviews."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--program", required=True, help="The program's slug.")
        parser.add_argument("--month", required=True, help="The month to close, YYYY-MM (program-local).")
        parser.add_argument("--batch-size", type=int, default=CLOSE_BATCH_SIZE, help="Bonuses committed per batch.")

    def handle(self, *args, program: str, month: str, batch_size: int, **options) -> None:
        found = Program.objects.filter(slug=program).first()
        if found is None:
            raise CommandError(f"No program with the slug {program!r}.")
        try:
            first_day = month_from_text(month)
        except ValueError as error:
            raise CommandError(f"The month must be written YYYY-MM, not {month!r}.") from error
        pause = os.environ.get(PAUSE_VARIABLE)
        hook = pause_after(int(pause)) if pause else None
        with scope(program=found):
            try:
                close = close_month(program=found, month=first_day, batch_size=batch_size, after_bonus_batch=hook)
            except ValidationError as error:
                raise CommandError(" ".join(error.messages)) from error
        self.stdout.write(self.style.SUCCESS(f"{found.slug} {first_day:%Y-%m}: {close.get_status_display()}."))
