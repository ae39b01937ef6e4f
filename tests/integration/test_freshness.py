"""The rollup tasks in a real Celery worker: a committed event reaches DailyStats and goal progress."""

import time
from decimal import Decimal

import pytest
from django.utils import timezone
from django_scopes import scopes_disabled

from goals.models import DailyStats, Goal, GoalProgress
from goals.periods import local_now, month_start
from goals.tasks import process_rollups_task, sweep_rollups_task
from tracking.clicks import CLICK, store_events
from tracking.links import create_link, create_offer
from tracking.models import StatsDirtyKey

pytestmark = pytest.mark.integration


def wait_for(read, expected, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if value == expected or time.monotonic() >= deadline:
            return value
        time.sleep(0.1)


@pytest.mark.parametrize("task", [process_rollups_task, sweep_rollups_task], ids=["beat task", "sweep"])
def test_stored_clicks_reach_dailystats_and_goal_progress_through_the_worker(worker, application, task):
    program, affiliate = application.program, application.applicant
    with scopes_disabled():
        affiliate.status = "approved"
        affiliate.save()
        offer = create_offer(program=program, name="Offer", destination_url="https://harbor.test/")
        link = create_link(program=program, offer=offer, affiliate=affiliate)
        today = local_now(program).date()
        goal = Goal.objects.create(
            program=program, affiliate=affiliate, month=month_start(today), kpi="clicks", target=Decimal(10)
        )
    moment = timezone.now()
    entries = [
        {
            "k": CLICK,
            "p": program.pk,
            "l": link.pk,
            "a": affiliate.pk,
            "o": offer.pk,
            "id": f"00000000-0000-4000-8000-00000000000{index}",
            "t": int(moment.timestamp() * 1_000_000),
        }
        for index in range(3)
    ]
    store_events(entries)  # commits the clicks and their dirty cell, as the drain does

    task.delay()

    def clicks() -> int | None:
        with scopes_disabled():
            return (
                DailyStats.objects.filter(program=program, affiliate=affiliate, day=today)
                .values_list("clicks", flat=True)
                .first()
            )

    def progress() -> Decimal | None:
        with scopes_disabled():
            return GoalProgress.objects.filter(goal=goal).values_list("value_provisional", flat=True).first()

    assert wait_for(clicks, 3) == 3
    assert wait_for(progress, Decimal(3)) == Decimal(3)
    with scopes_disabled():
        assert StatsDirtyKey.objects.filter(program=program).count() == 0
