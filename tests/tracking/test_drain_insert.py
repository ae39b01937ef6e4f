"""Storing a drained batch: unique flags against stored clicks and the batch itself, once per click, on both paths.

On PostgreSQL with CLICK_DRAIN_METHOD="copy" the flags are decided in SQL over the staged batch; with
"bulk_create" (and on SQLite) in Python by mark_unique_clicks. Each test runs both, so the two must agree.
"""

import random
import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction
from django_scopes import scopes_disabled

from tests.tracking.conftest import needs_redis
from tracking.clicks import CLICK, IMPRESSION, buffered_count, drain_buffer, store_events
from tracking.models import Click, Impression


@pytest.fixture(params=["copy", "bulk_create"], autouse=True)
def method(request, settings) -> str:
    settings.CLICK_DRAIN_METHOD = request.param
    return request.param


@pytest.fixture
def zones(alice_link, bob_link):
    """Alice's program in Warsaw, bob's in New York: both have a DST change in the days the tests use."""
    with scopes_disabled():
        for tracked, zone in ((alice_link, "Europe/Warsaw"), (bob_link, "America/New_York")):
            tracked.program.timezone = zone
            tracked.program.save(update_fields=["timezone"])


def entry(tracked, at: str, *, visitor: str = "visitor-1", ip: str = "ip-1", kind: str = CLICK) -> dict:
    """A buffer entry as the redirect writes it, at ``at`` (UTC, "YYYY-MM-DD HH:MM")."""
    moment = datetime.strptime(at, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    link = tracked.link
    return {
        "k": kind,
        "id": uuid.uuid4().hex,
        "t": int(moment.timestamp()) * 1_000_000,
        "p": link.program_id,
        "l": link.pk,
        "a": link.affiliate_id,
        "o": link.offer_id,
        "s": ["spring"],
        "u": "Firefox",
        "ih": ip,
        "vh": visitor,
    }


def flags(entries: list[dict]) -> list[bool | None]:
    """The stored is_unique of each entry's click, in the entries' order (None: not stored)."""
    with scopes_disabled():
        stored = dict(Click.objects.values_list("click_id", "is_unique"))
    return [stored.get(uuid.UUID(item["id"])) for item in entries]


def stored_clicks(tracked) -> int:
    with scopes_disabled():
        return Click.objects.filter(program=tracked.program).count()


@pytest.mark.usefixtures("zones")
def test_unique_flag_against_stored_clicks_and_earlier_clicks_of_the_batch(alice_link, bob_link):
    # Warsaw moves to summer time on 29 March 2026: that local day is 28 Mar 23:00 UTC to 29 Mar 22:00 UTC.
    # New York moved on 8 March: its 29 March is 04:00 UTC to 04:00 UTC the next day.
    stored = entry(alice_link, "2026-03-29 08:00")
    store_events([stored])
    batch = [
        entry(alice_link, "2026-03-29 23:00"),  # 30 March in Warsaw, after the click below: not unique
        entry(alice_link, "2026-03-29 21:30"),  # 29 March 23:30 in Warsaw: the stored click is that day
        entry(alice_link, "2026-03-29 22:30"),  # 30 March 00:30 in Warsaw: first of the day
        entry(alice_link, "2026-03-29 21:00", visitor="visitor-2"),  # same IP, another browser
        entry(bob_link, "2026-03-30 04:00"),  # 30 March 00:00 in New York
        entry(bob_link, "2026-03-30 03:59"),  # 29 March 23:59 in New York, after the one below
        entry(bob_link, "2026-03-29 21:30"),  # another program's link: its own first click
    ]

    assert store_events(batch) == 7

    assert flags([stored]) == [True]
    assert flags(batch) == [False, False, True, True, True, False, True]


@pytest.mark.usefixtures("zones")
def test_unique_flags_of_random_batches_follow_the_rule(alice_link, bob_link):
    # Three days around Warsaw's DST change, two programs, visitors sharing IPs, batches out of time order.
    rng = random.Random(7)
    start = int(datetime(2026, 3, 28, tzinfo=UTC).timestamp())
    batches = [
        [
            entry(
                rng.choice([alice_link, bob_link]),
                datetime.fromtimestamp(start + rng.randrange(3 * 86400), tz=UTC).strftime("%Y-%m-%d %H:%M"),
                visitor=f"visitor-{number}",
                ip=f"ip-{number // 2}",
            )
            for number in (rng.randrange(6) for _ in range(60))
        ]
        for _batch in range(4)
    ]
    zone = {
        alice_link.link.program_id: ZoneInfo("Europe/Warsaw"),
        bob_link.link.program_id: ZoneInfo("America/New_York"),
    }

    def key(item: dict) -> tuple:
        day = datetime.fromtimestamp(item["t"] / 1_000_000, tz=UTC).astimezone(zone[item["p"]]).date()
        return item["l"], item["vh"], day

    stored_keys: set[tuple] = set()
    expected = {}
    for batch in batches:
        store_events(batch)
        seen = set(stored_keys)
        for item in sorted(batch, key=lambda item: item["t"]):
            expected[item["id"]] = key(item) not in seen
            seen.add(key(item))
        stored_keys |= seen

    everything = [item for batch in batches for item in batch]
    assert flags(everything) == [expected[item["id"]] for item in everything]


def test_batch_stored_again_inserts_nothing_and_keeps_its_flags(alice_link):
    batch = [entry(alice_link, "2026-03-10 09:00"), entry(alice_link, "2026-03-10 10:00")]
    store_events(batch)
    # A drain that died after committing and before deleting its entries reads them again, with newer ones.
    later = entry(alice_link, "2026-03-10 11:00")
    store_events([*batch, later])
    store_events([*batch, later])

    with scopes_disabled():
        assert Click.objects.count() == 3
    assert flags([*batch, later]) == [True, False, False]


def test_click_read_twice_in_one_batch_is_stored_once(alice_link):
    first = entry(alice_link, "2026-03-10 09:00")
    other = entry(alice_link, "2026-03-10 09:05", visitor="visitor-2")

    assert store_events([first, other, first]) == 3

    with scopes_disabled():
        assert Click.objects.count() == 2
    assert flags([first, other]) == [True, True]


def test_clicks_and_impressions_of_one_batch_are_stored_together(alice_link):
    clicks = [entry(alice_link, "2026-03-10 09:00"), entry(alice_link, "2026-03-10 09:01")]
    impressions = [entry(alice_link, "2026-03-10 08:59", kind=IMPRESSION) for _ in range(2)]

    store_events([impressions[0], *clicks, impressions[1]])

    with scopes_disabled():
        assert sorted(Impression.objects.values_list("event_id", flat=True)) == sorted(
            uuid.UUID(item["id"]) for item in impressions
        )
    assert flags(clicks) == [True, False]


def test_batch_that_fails_stores_nothing_and_can_be_stored_again(alice_link):
    batch = [entry(alice_link, "2026-03-10 09:00"), entry(alice_link, "2026-03-10 09:01")]

    def drain_that_dies() -> None:
        with transaction.atomic():
            store_events(batch)
            raise RuntimeError("the drain dies before commit")

    with pytest.raises(RuntimeError):
        drain_that_dies()
    assert flags(batch) == [None, None]

    store_events(batch)
    assert flags(batch) == [True, False]


def test_two_batches_in_one_transaction_see_each_other(alice_link):
    # find_click drains inside a conversion's transaction: batches stored before it commits still count.
    first = [entry(alice_link, "2026-03-10 09:00"), entry(alice_link, "2026-03-10 09:01", visitor="visitor-2")]
    second = [entry(alice_link, "2026-03-10 09:02"), entry(alice_link, "2026-03-10 09:03", visitor="visitor-3")]

    with transaction.atomic():
        store_events(first)
        store_events(second)

    assert flags([*first, *second]) == [True, True, False, True]


@needs_redis
@pytest.mark.usefixtures("buffered")
def test_drain_deletes_what_it_stored_and_nothing_newer(alice_link, wsgi_get, django_capture_on_commit_callbacks):
    for _ in range(3):
        wsgi_get(f"/c/{alice_link.link.code}")

    with django_capture_on_commit_callbacks(execute=True):
        assert drain_buffer(limit=2) == 2
    assert buffered_count() == 1
    wsgi_get(f"/c/{alice_link.link.code}")

    with django_capture_on_commit_callbacks(execute=True):
        assert drain_buffer() == 2
    assert buffered_count() == 0
    assert stored_clicks(alice_link) == 4


@needs_redis
@pytest.mark.usefixtures("buffered")
def test_drain_inside_a_transaction_that_rolls_back_keeps_the_entries(
    alice_link, wsgi_get, django_capture_on_commit_callbacks
):
    wsgi_get(f"/c/{alice_link.link.code}")
    wsgi_get(f"/c/{alice_link.link.code}")

    def conversion_that_fails() -> None:
        with transaction.atomic():
            assert drain_buffer() == 2
            raise RuntimeError("the conversion that drained fails")

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        conversion_that_fails()

    assert buffered_count() == 2
    with django_capture_on_commit_callbacks(execute=True):
        assert drain_buffer() == 2
    assert buffered_count() == 0
    assert stored_clicks(alice_link) == 2
