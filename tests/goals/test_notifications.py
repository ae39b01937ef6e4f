"""Status transitions: met and at-risk tell the affiliate and the managers once, in the app and by email."""

from datetime import date
from decimal import Decimal

import pytest
from django.core import mail
from django_scopes import scope, scopes_disabled

from goals.emails import send_notification_email
from goals.models import GoalTransition, Notification
from goals.progress import refresh_goal_progress
from goals.services import update_goal_settings
from tests.goals.builders import APRIL, make_goal, put_stats, utc

pytestmark = pytest.mark.django_db

DAY_16 = utc("2026-04-15 22:00")  # 16 April 00:00 in Warsaw: half of April gone


@pytest.fixture
def program(alice, bob):
    # bob's program sees the same kind of transition; nobody of alice's must hear of it, and vice versa.
    make_goal(bob.affiliate, kpi="clicks", target=Decimal(100))
    put_stats(bob.affiliate, date(2026, 4, 2), clicks=100)
    with scopes_disabled():
        refresh_goal_progress(program=bob.program, month=APRIL, now=DAY_16)
    mail.outbox.clear()
    with scope(program=alice.program):
        yield alice.program


@pytest.fixture
def refresh(django_capture_on_commit_callbacks):
    """A refresh as the rollups run it: in a transaction that commits, so its emails go out."""

    def run(program, now=DAY_16):
        with django_capture_on_commit_callbacks(execute=True):
            refresh_goal_progress(program=program, month=APRIL, now=now)

    return run


def notified(program) -> list[tuple[str, str]]:
    return sorted(
        Notification.objects.filter(program=program).values_list("user__email", "message").order_by("pk"),
    )


def test_at_risk_notifies_the_affiliate_and_managers_once_each(program, alice, refresh):
    goal = make_goal(alice.affiliate, kpi="clicks", target=Decimal(100))
    put_stats(alice.affiliate, date(2026, 4, 3), clicks=45)  # heading for 90 of 100: at risk

    refresh(program)
    refresh(program)

    message = "alice partner one: the goal “Clicks” for April 2026 is at risk, heading for 90 of 100."
    expected = sorted((user.email, message) for user in (alice.affiliate_user, alice.owner, alice.manager))
    assert notified(program) == expected
    assert sorted(m.to[0] for m in mail.outbox) == sorted(email for email, _message in expected)
    assert list(GoalTransition.objects.values_list("goal_id", "status")) == [(goal.pk, "at_risk")]
    affiliate_mail = next(m for m in mail.outbox if m.to == [alice.affiliate_user.email])
    assert affiliate_mail.subject == "Alice: goal update"
    assert message in affiliate_mail.body
    assert "http://127.0.0.1:8000/portal/alice/goals/" in affiliate_mail.body
    manager_mail = next(m for m in mail.outbox if m.to == [alice.manager.email])
    assert "http://127.0.0.1:8000/p/alice/goals/2026-04/" in manager_mail.body


def test_met_notifies_and_never_again_for_the_same_goal_and_status(program, alice, refresh):
    goal = make_goal(alice.affiliate, kpi="clicks", target=Decimal(100))
    put_stats(alice.affiliate, date(2026, 4, 3), clicks=45)
    refresh(program)  # at risk
    put_stats(alice.affiliate, date(2026, 4, 3), clicks=100)
    refresh(program)  # met
    put_stats(alice.affiliate, date(2026, 4, 3), clicks=45)
    refresh(program)  # back to at risk (a rejected batch): not told again
    put_stats(alice.affiliate, date(2026, 4, 3), clicks=100)
    refresh(program)  # met again: not told again

    statuses = list(GoalTransition.objects.filter(goal=goal).order_by("pk").values_list("status", flat=True))
    assert statuses == ["at_risk", "met"]
    assert Notification.objects.filter(program=program).count() == 6  # two transitions × three people
    assert len(mail.outbox) == 6
    met = Notification.objects.filter(program=program, message__contains="met the goal").first()
    assert met.message == "alice partner one met the goal “Clicks” for April 2026: 100 of 100."


def test_on_track_and_behind_are_not_notified(program, alice, refresh):
    make_goal(alice.affiliate, kpi="clicks", target=Decimal(100))
    make_goal(alice.other_affiliate, kpi="clicks", target=Decimal(100))
    put_stats(alice.affiliate, date(2026, 4, 3), clicks=60)  # on track
    put_stats(alice.other_affiliate, date(2026, 4, 3), clicks=10)  # behind

    refresh(program)

    assert notified(program) == []
    assert mail.outbox == []


def test_settings_choose_who_is_told(program, alice, refresh):
    update_goal_settings(program=program, actor=None, notify_affiliates=False)
    make_goal(alice.affiliate, kpi="clicks", target=Decimal(100))
    put_stats(alice.affiliate, date(2026, 4, 3), clicks=100)

    refresh(program)

    assert sorted(email for email, _message in notified(program)) == sorted([alice.owner.email, alice.manager.email])

    update_goal_settings(program=program, actor=None, notify_affiliates=True, notify_managers=False)
    make_goal(alice.other_affiliate, kpi="clicks", target=Decimal(100))
    put_stats(alice.other_affiliate, date(2026, 4, 3), clicks=100)
    refresh(program)

    assert Notification.objects.filter(program=program, user=alice.other_affiliate_user).count() == 1
    assert Notification.objects.filter(program=program).count() == 3


def test_notifications_stay_in_their_program(program, alice, bob):
    with scopes_disabled():
        bob_people = {n.user_id for n in Notification.objects.filter(program=bob.program)}
        assert bob_people == {bob.affiliate_user.pk, bob.owner.pk, bob.manager.pk}
    assert notified(program) == []


def test_a_notification_is_emailed_at_most_once(program, alice, refresh):
    make_goal(alice.affiliate, kpi="clicks", target=Decimal(100))
    put_stats(alice.affiliate, date(2026, 4, 3), clicks=100)
    refresh(program)
    notification = Notification.objects.filter(program=program, user=alice.affiliate_user).get()
    mail.outbox.clear()

    # A duplicated or retried task finds the email claimed already.
    assert send_notification_email(program=program, notification_id=notification.pk) is False
    assert mail.outbox == []
    notification.refresh_from_db()
    assert notification.emailed_at is not None
