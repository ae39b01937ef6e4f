"""A per-program lock that orders goal changes against the start of a month close (PostgreSQL only).

Goal writes check "is this month closed?" and then write; a close creates its MonthClose row and then
freezes the month. Without an order between the two, a goal written in the gap would miss the freeze and
its bonus. Goal writes take the lock shared (they do not wait for each other), the close's claim takes it
exclusively; both are transaction-scoped, so nothing is left held when a worker dies. SQLite serialises
writers by itself.
"""

from django.db import connection

from affiliates.models import Program

# Distinct from goals.rollups.LOCK_CLASS: the two locks guard different things and never wait for each other.
GOALS_LOCK_CLASS = 571_002


def lock_program_goals(program: Program, *, exclusive: bool) -> None:
    """Take the program's goals lock until the current transaction ends (call inside transaction.atomic)."""
    if connection.vendor != "postgresql":
        return
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s, %s)", [GOALS_LOCK_CLASS, program.pk % 2**31])
