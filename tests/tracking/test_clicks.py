"""The click redirect and impression pixel: answers, stored rows, unique and bot flags, the buffer and its drain."""

import json
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_scopes import scopes_disabled

from affiliates.models import AffiliateStatus
from tests.tracking.conftest import needs_redis
from tracking.clicks import buffered_count, event_buffer, find_click
from tracking.hashing import ip_hash, sender_ip_hash, visitor_hash
from tracking.links import set_link_status, update_offer
from tracking.models import Cap, Click, Impression, Link, Offer
from tracking.tasks import drain_event_buffer_task

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
NOON = datetime(2026, 3, 10, 11, 0, tzinfo=UTC)


def clicks_of(program) -> list[Click]:
    with scopes_disabled():
        return list(Click.objects.filter(program=program).order_by("created_at", "pk"))


def only_click(tracked, drain_all) -> Click:
    drain_all()
    clicks = clicks_of(tracked.program)
    assert len(clicks) == 1
    return clicks[0]


# --- The answer ---------------------------------------------------------------------------------------------


def test_click_redirects_with_click_id_keeping_query_and_fragment(alice_link, wsgi_get, drain_all):
    with scopes_disabled():
        update_offer(
            program=alice_link.program,
            offer=alice_link.offer,
            destination_url="https://shop.alice.test/spring?lang=en&a=1#offer",
            click_id_param="aff_click",
        )

    response = wsgi_get(f"/c/{alice_link.link.code}")

    click = only_click(alice_link, drain_all)
    assert response.status == 302
    assert response.location == f"https://shop.alice.test/spring?lang=en&a=1&aff_click={click.click_id.hex}#offer"
    assert response.body == b""
    assert "no-store" in response.header("Cache-Control")


def test_click_passes_utm_parameters_on_but_not_sub_ids(alice_link, wsgi_get, drain_all):
    response = wsgi_get(
        f"/c/{alice_link.link.code}", query="sub1=banner&utm_source=news+letter&utm_medium=email&foo=bar&sub2=x"
    )

    click = only_click(alice_link, drain_all)
    assert response.location == (
        f"https://shop.alice.test/spring?lang=en&click_id={click.click_id.hex}&utm_source=news+letter&utm_medium=email"
    )
    assert (click.sub1, click.sub2) == ("banner", "x")


def test_click_utm_parameter_replaces_the_destinations_own(alice_link, wsgi_get, drain_all):
    with scopes_disabled():
        update_offer(
            program=alice_link.program,
            offer=alice_link.offer,
            destination_url="https://shop.alice.test/?utm_source=site&keep=1",
        )

    response = wsgi_get(f"/c/{alice_link.link.code}", query="utm_source=partner")

    click = only_click(alice_link, drain_all)
    assert response.location == f"https://shop.alice.test/?keep=1&click_id={click.click_id.hex}&utm_source=partner"


def test_click_sets_first_party_cookie_for_the_offers_window(alice_link, wsgi_get, drain_all):
    with scopes_disabled():
        update_offer(program=alice_link.program, offer=alice_link.offer, cookie_window_days=45)

    plain = wsgi_get(f"/c/{alice_link.link.code}")
    secure = wsgi_get(f"/c/{alice_link.link.code}", https=True)

    drain_all()
    first, second = clicks_of(alice_link.program)
    by_id = {first.click_id.hex, second.click_id.hex}
    offer_id = alice_link.offer.pk
    plain_id = plain.header("Set-Cookie").split(";")[0].split("=")[1]
    assert plain.header("Set-Cookie") == (
        f"gp_click_{offer_id}={plain_id}; Max-Age=3888000; Path=/; SameSite=Lax; HttpOnly"
    )
    secure_id = secure.header("Set-Cookie").split(";")[0].split("=")[1]
    assert secure.header("Set-Cookie") == (
        f"gp_click_{offer_id}={secure_id}; Max-Age=3888000; Path=/; SameSite=Lax; HttpOnly; Secure"
    )
    assert {plain_id, secure_id} == by_id


def test_click_served_by_django_url_for_runserver(alice_link, client, drain_all):
    response = client.get(f"/c/{alice_link.link.code}?utm_campaign=spring", headers={"user-agent": FIREFOX})

    click = only_click(alice_link, drain_all)
    assert response.status_code == 302
    assert response["Location"] == (
        f"https://shop.alice.test/spring?lang=en&click_id={click.click_id.hex}&utm_campaign=spring"
    )
    cookie = response.cookies[f"gp_click_{alice_link.offer.pk}"]
    assert (cookie.value, cookie["max-age"], cookie["samesite"], cookie["httponly"]) == (
        click.click_id.hex,
        30 * 86400,
        "Lax",
        True,
    )


# --- The stored row -----------------------------------------------------------------------------------------


@time_machine.travel(NOON, tick=False)
def test_click_row_holds_request_facts_but_never_the_raw_ip(alice_link, wsgi_get, drain_all):
    wsgi_get(
        f"/c/{alice_link.link.code}",
        query="sub1=a&sub2=b&sub3=c&sub4=d&sub5=e&sub6=ignored",
        HTTP_REFERER="https://blog.example/best-shoes",
        HTTP_CF_IPCOUNTRY="se",
        REMOTE_ADDR="198.51.100.23",
        HTTP_USER_AGENT=CHROME,
    )

    click = only_click(alice_link, drain_all)
    program = alice_link.program
    assert (click.program, click.link, click.affiliate, click.offer) == (
        program,
        alice_link.link,
        alice_link.world.affiliate,
        alice_link.offer,
    )
    assert click.created_at == NOON
    assert [click.sub1, click.sub2, click.sub3, click.sub4, click.sub5] == ["a", "b", "c", "d", "e"]
    assert (click.referrer, click.user_agent, click.country) == ("https://blog.example/best-shoes", CHROME, "SE")
    assert click.ip_hash == ip_hash(program.pk, "198.51.100.23")
    assert click.visitor_hash == visitor_hash(program.pk, "198.51.100.23", CHROME)
    assert "198.51.100.23" not in {click.ip_hash, click.visitor_hash}
    assert (click.source, click.is_bot, click.is_unique) == ("referral", False, True)


def test_visitor_hashes_keep_their_definition(settings):
    """Stored hashes are compared with new ones (unique clicks, click flooding, self-referral): the digest is
    HMAC-SHA256 under a per-program key derived from SECRET_KEY, and stays so however it is computed."""
    import hashlib
    import hmac

    key = hmac.new(settings.SECRET_KEY.encode(), b"goalpost-visitor:7", hashlib.sha256).digest()
    assert ip_hash(7, "198.51.100.23") == hmac.new(key, b"ip\x1f198.51.100.23", hashlib.sha256).hexdigest()
    assert visitor_hash(7, "198.51.100.23", CHROME) == (
        hmac.new(key, f"visitor\x1f198.51.100.23\x1f{CHROME}".encode(), hashlib.sha256).hexdigest()
    )
    assert ip_hash(7, "198.51.100.23") != ip_hash(8, "198.51.100.23")
    assert sender_ip_hash(7, "198.51.100.23") == ip_hash(7, "198.51.100.23")  # kept, not computed each time
    assert sender_ip_hash(7, "") == ip_hash(7, "") == ""
    settings.SECRET_KEY = "another-" + "s" * 50
    assert ip_hash(7, "198.51.100.23") != hmac.new(key, b"ip\x1f198.51.100.23", hashlib.sha256).hexdigest()
    assert sender_ip_hash(7, "198.51.100.23") == ip_hash(7, "198.51.100.23")  # a new secret, a new digest


def test_click_country_from_x_country_code_and_blank_when_unknown(alice_link, wsgi_get, drain_all):
    wsgi_get(f"/c/{alice_link.link.code}", HTTP_X_COUNTRY_CODE="PL")
    wsgi_get(f"/c/{alice_link.link.code}", HTTP_CF_IPCOUNTRY="XX")
    wsgi_get(f"/c/{alice_link.link.code}", HTTP_CF_IPCOUNTRY="T1")
    wsgi_get(f"/c/{alice_link.link.code}")

    drain_all()
    assert [click.country for click in clicks_of(alice_link.program)] == ["PL", "", "", ""]


@pytest.mark.parametrize(
    ("query", "referrer", "source"),
    [
        ("utm_medium=cpc", "https://www.google.com/", "paid"),
        ("utm_medium=PPC", "", "paid"),
        ("utm_medium=display", "https://news.example/", "paid"),
        ("utm_medium=paid", "", "paid"),
        ("utm_medium=email", "https://m.facebook.com/story", "social"),
        ("", "https://t.co/abc", "social"),
        ("", "https://www.google.de/search?q=shoes", "organic"),
        ("", "https://duckduckgo.com/", "organic"),
        ("", "https://blog.example/post", "referral"),
        ("", "https://notgoogle.com/", "referral"),
        ("", "", "direct"),
    ],
)
def test_click_traffic_source_follows_kpi_rules(alice_link, wsgi_get, drain_all, query, referrer, source):
    wsgi_get(f"/c/{alice_link.link.code}", query=query, HTTP_REFERER=referrer or None)

    assert only_click(alice_link, drain_all).source == source


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_USER_AGENT": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"},
        {"HTTP_USER_AGENT": "curl/8.5.0"},
        {"HTTP_USER_AGENT": None},
        {"HTTP_USER_AGENT": "   "},
        {"HTTP_PURPOSE": "prefetch"},
        {"HTTP_SEC_PURPOSE": "prefetch;prerender"},
        {"HTTP_X_MOZ": "prefetch"},
    ],
)
def test_click_from_bot_is_flagged_and_still_redirected(alice_link, wsgi_get, drain_all, headers):
    response = wsgi_get(f"/c/{alice_link.link.code}", **headers)

    click = only_click(alice_link, drain_all)
    assert response.status == 302
    assert response.location.startswith("https://shop.alice.test/spring?lang=en&click_id=")
    assert click.is_bot is True


def test_click_from_browser_is_not_a_bot(alice_link, wsgi_get, drain_all):
    wsgi_get(f"/c/{alice_link.link.code}", HTTP_USER_AGENT=CHROME)

    assert only_click(alice_link, drain_all).is_bot is False


# --- Unique clicks: first of a visitor on a link per program-local day -------------------------------------


def test_unique_flag_per_visitor_link_and_local_day(alice_link, bob_link, wsgi_get, drain_all):
    code = alice_link.link.code
    # Europe/Warsaw is UTC+1 in early March: 22:59 UTC is still the 10th, 23:00 UTC is the 11th.
    with time_machine.travel(datetime(2026, 3, 10, 8, 0, tzinfo=UTC), tick=False):
        wsgi_get(f"/c/{code}")
    drain_all()  # the first click is in the database before the second arrives
    with time_machine.travel(datetime(2026, 3, 10, 22, 59, tzinfo=UTC), tick=False):
        wsgi_get(f"/c/{code}")
        wsgi_get(f"/c/{code}", HTTP_USER_AGENT=CHROME)  # another visitor: same IP, other browser
        wsgi_get(f"/c/{code}", REMOTE_ADDR="192.0.2.99")  # another visitor: other IP
        wsgi_get(f"/c/{bob_link.link.code}")  # same person on another program's link
    with time_machine.travel(datetime(2026, 3, 10, 23, 0, tzinfo=UTC), tick=False):
        wsgi_get(f"/c/{code}")  # the next local day
        wsgi_get(f"/c/{code}")  # in the same batch as the one before

    drain_all()
    # Clicks with the same time have no order among them: compare each visitor's flags per moment.
    program = alice_link.program.pk
    firefox = visitor_hash(program, "203.0.113.7", FIREFOX)
    chrome = visitor_hash(program, "203.0.113.7", CHROME)
    elsewhere = visitor_hash(program, "192.0.2.99", FIREFOX)
    flags: dict[tuple, list[bool]] = {}
    for click in clicks_of(alice_link.program):
        flags.setdefault((click.created_at.strftime("%d %H:%M"), click.visitor_hash), []).append(click.is_unique)
    assert {key: sorted(values) for key, values in flags.items()} == {
        ("10 08:00", firefox): [True],
        ("10 22:59", firefox): [False],  # the same visitor earlier that local day
        ("10 22:59", chrome): [True],
        ("10 22:59", elsewhere): [True],
        ("10 23:00", firefox): [False, True],  # the next local day: the first of the two is unique
    }
    assert [click.is_unique for click in clicks_of(bob_link.program)] == [True]


def test_unique_flag_within_one_batch_follows_click_time(alice_link, wsgi_get, drain_all):
    with time_machine.travel(NOON, tick=False):
        wsgi_get(f"/c/{alice_link.link.code}")
        wsgi_get(f"/c/{alice_link.link.code}")
        wsgi_get(f"/c/{alice_link.link.code}")

    drain_all()
    assert [click.is_unique for click in clicks_of(alice_link.program)] == [True, False, False]


# --- Refusals -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["doesNotExist", "ab", "x" * 17, "abc$def", "abc def", "..", "a/b/c", "ünïcødé"])
def test_unknown_or_malformed_code_is_404_and_records_nothing(alice_link, wsgi_get, drain_all, code):
    response = wsgi_get(f"/c/{code}")

    assert response.status == 404
    assert b"This link does not exist or is no longer active." in response.body
    assert response.header("Location") is None
    drain_all()
    assert clicks_of(alice_link.program) == []


def pause_link(tracked):
    with scopes_disabled():
        set_link_status(program=tracked.program, link=tracked.link, status=Link.Status.PAUSED)


def pause_offer(tracked):
    with scopes_disabled():
        update_offer(program=tracked.program, offer=tracked.offer, status=Offer.Status.PAUSED)


def suspend_affiliate(tracked):
    with scopes_disabled():
        affiliate = tracked.world.affiliate
        affiliate.status = AffiliateStatus.SUSPENDED
        affiliate.save()


def pending_affiliate(tracked):
    with scopes_disabled():
        affiliate = tracked.world.affiliate
        affiliate.status = AffiliateStatus.PENDING
        affiliate.save()


@pytest.mark.parametrize("make_inactive", [pause_link, pause_offer, suspend_affiliate, pending_affiliate])
def test_inactive_link_is_404_for_clicks_and_impressions(
    alice_link, wsgi_get, drain_all, django_capture_on_commit_callbacks, make_inactive
):
    with django_capture_on_commit_callbacks(execute=True):  # services forget cached links after commit
        make_inactive(alice_link)

    assert wsgi_get(f"/c/{alice_link.link.code}").status == 404
    assert wsgi_get(f"/i/{alice_link.link.code}").status == 404
    drain_all()
    assert clicks_of(alice_link.program) == []


@needs_redis
@pytest.mark.usefixtures("buffered")
@pytest.mark.parametrize("make_inactive", [pause_link, pause_offer])
def test_link_made_inactive_after_warm_clicks_stops_at_once_and_records_nothing(
    alice_link, wsgi_get, drain_all, django_capture_on_commit_callbacks, make_inactive
):
    code = alice_link.link.code
    for _ in range(3):  # from the second click on, this process records in one round trip (tracking.clicks._seen)
        assert wsgi_get(f"/c/{code}").status == 302
    with django_capture_on_commit_callbacks(execute=True):
        make_inactive(alice_link)

    assert wsgi_get(f"/c/{code}").status == 404
    assert wsgi_get(f"/i/{code}").status == 404
    assert drain_all() == 3


def test_other_methods_are_refused(alice_link, wsgi_get, drain_all):
    response = wsgi_get(f"/c/{alice_link.link.code}", method="POST")

    assert (response.status, response.header("Allow")) == (405, "GET, HEAD")
    drain_all()
    assert clicks_of(alice_link.program) == []


# --- Tenancy ------------------------------------------------------------------------------------------------


def test_click_is_stored_in_the_links_program_only(alice_link, bob_link, wsgi_get, drain_all):
    wsgi_get(f"/c/{alice_link.link.code}")
    wsgi_get(f"/c/{alice_link.link.code}")
    wsgi_get(f"/c/{bob_link.link.code}")

    drain_all()
    alice_clicks, bob_clicks = clicks_of(alice_link.program), clicks_of(bob_link.program)
    assert [(click.link_id, click.offer_id, click.affiliate_id) for click in alice_clicks] == [
        (alice_link.link.pk, alice_link.offer.pk, alice_link.world.affiliate.pk)
    ] * 2
    assert [(click.link_id, click.affiliate_id) for click in bob_clicks] == [
        (bob_link.link.pk, bob_link.world.affiliate.pk)
    ]
    assert alice_clicks[0].ip_hash != bob_clicks[0].ip_hash  # hashes are salted per program


def test_find_click_only_in_its_program(alice_link, bob_link, wsgi_get, django_capture_on_commit_callbacks):
    alice_id = wsgi_get(f"/c/{alice_link.link.code}").header("Set-Cookie").split(";")[0].split("=")[1]
    bob_id = wsgi_get(f"/c/{bob_link.link.code}").header("Set-Cookie").split(";")[0].split("=")[1]

    with django_capture_on_commit_callbacks(execute=True):  # find_click may drain inside our transaction
        found = find_click(program=alice_link.program, click_id=alice_id)
        assert found is not None
        assert (found.click_id.hex, found.program_id) == (alice_id, alice_link.program.pk)
        assert find_click(program=alice_link.program, click_id=bob_id) is None
        assert find_click(program=alice_link.program, click_id="not-a-uuid") is None
        assert find_click(program=alice_link.program, click_id=uuid.uuid4()) is None


# --- Impressions --------------------------------------------------------------------------------------------


def test_impression_answers_uncached_gif_and_is_stored(alice_link, bob_link, wsgi_get, drain_all):
    response = wsgi_get(f"/i/{alice_link.link.code}")
    wsgi_get(f"/i/{alice_link.link.code}", HTTP_USER_AGENT="Googlebot/2.1 (+http://www.google.com/bot.html)")

    assert response.status == 200
    assert response.header("Content-Type") == "image/gif"
    assert response.body.startswith(b"GIF89a")
    assert len(response.body) == int(response.header("Content-Length")) == 42
    assert response.header("Cache-Control") == "no-cache, no-store, must-revalidate, private"
    assert response.header("Set-Cookie") is None
    drain_all()
    with scopes_disabled():
        impressions = list(Impression.objects.order_by("created_at", "pk"))
        assert Click.objects.count() == 0
    assert [(row.program_id, row.link_id, row.offer_id, row.is_bot) for row in impressions] == [
        (alice_link.program.pk, alice_link.link.pk, alice_link.offer.pk, False),
        (alice_link.program.pk, alice_link.link.pk, alice_link.offer.pk, True),
    ]


# --- Click caps ---------------------------------------------------------------------------------------------


def add_cap(tracked, *, limit: int, fallback_url: str = "", **scope):
    with scopes_disabled():
        if fallback_url:
            update_offer(program=tracked.program, offer=tracked.offer, fallback_url=fallback_url)
        Cap.objects.create(
            program=tracked.program, metric=Cap.Metric.CLICKS, period=Cap.Period.DAY, limit=Decimal(limit), **scope
        )


def test_click_cap_sends_visitors_to_fallback_once_reached(alice_link, wsgi_get, drain_all):
    add_cap(alice_link, limit=2, fallback_url="https://shop.alice.test/sold-out", offer=alice_link.offer)

    with time_machine.travel(NOON, tick=False):
        answers = [wsgi_get(f"/c/{alice_link.link.code}") for _ in range(3)]
        bot = wsgi_get(f"/c/{alice_link.link.code}", HTTP_USER_AGENT="curl/8")  # bots do not use up a cap

    assert [answer.location.split("?")[0] for answer in answers] == [
        "https://shop.alice.test/spring",
        "https://shop.alice.test/spring",
        "https://shop.alice.test/sold-out",
    ]
    assert answers[2].header("Set-Cookie") is None
    assert bot.location.startswith("https://shop.alice.test/spring?")
    drain_all()
    assert len(clicks_of(alice_link.program)) == 4  # every redirect served is a click


def test_click_cap_without_fallback_redirects_normally(alice_link, wsgi_get, drain_all):
    add_cap(alice_link, limit=1, affiliate=alice_link.world.affiliate)

    answers = [wsgi_get(f"/c/{alice_link.link.code}") for _ in range(3)]

    assert {answer.location.split("?")[0] for answer in answers} == {"https://shop.alice.test/spring"}


# --- The buffer (Redis) and direct writes --------------------------------------------------------------------


@needs_redis
@pytest.mark.usefixtures("buffered")
def test_cached_click_does_no_sql(alice_link, wsgi_get, drain_all):
    wsgi_get(f"/c/{alice_link.link.code}")  # warms the link cache

    with CaptureQueriesContext(connection) as queries:
        response = wsgi_get(f"/c/{alice_link.link.code}")
        impression = wsgi_get(f"/i/{alice_link.link.code}")

    assert (response.status, impression.status) == (302, 200)
    assert [query["sql"] for query in queries.captured_queries] == []
    assert buffered_count() == 3
    assert drain_all() == 3
    assert buffered_count() == 0


@needs_redis
@pytest.mark.usefixtures("buffered")
def test_click_waits_in_buffer_until_drained(alice_link, wsgi_get, drain_all):
    wsgi_get(f"/c/{alice_link.link.code}")

    assert clicks_of(alice_link.program) == []
    assert drain_event_buffer_task.delay() is not None  # eager without a broker, a worker with one
    drain_all()
    assert len(clicks_of(alice_link.program)) == 1


@needs_redis
@pytest.mark.usefixtures("buffered")
def test_drain_twice_or_replayed_entries_store_each_click_once(alice_link, wsgi_get, drain_all):
    for _ in range(3):
        wsgi_get(f"/c/{alice_link.link.code}")
    buffer = event_buffer()
    entries = [fields for _id, fields in buffer.drain_client.xrange(buffer.stream)]

    assert drain_all() == 3
    assert drain_all() == 0
    # A drain that crashed after its insert and before deleting the entries reads them again.
    for fields in entries:
        buffer.drain_client.xadd(buffer.stream, fields)
    assert drain_all() == 3

    clicks = clicks_of(alice_link.program)
    assert sorted(click.click_id.hex for click in clicks) == sorted(json.loads(f[b"e"])["id"] for f in entries)
    assert [click.is_unique for click in clicks] == [True, False, False]


@needs_redis
@pytest.mark.usefixtures("buffered")
def test_drain_skips_unreadable_entries_and_deleted_links(alice_link, wsgi_get, drain_all):
    wsgi_get(f"/c/{alice_link.link.code}")
    buffer = event_buffer()
    buffer.drain_client.xadd(buffer.stream, {"e": b"{not json"})
    good = json.loads(buffer.drain_client.xrange(buffer.stream)[0][1][b"e"])
    buffer.drain_client.xadd(buffer.stream, {"e": json.dumps({**good, "id": uuid.uuid4().hex, "l": 999999})})

    assert drain_all() == 3
    assert buffered_count() == 0
    assert [click.click_id.hex for click in clicks_of(alice_link.program)] == [good["id"]]


@needs_redis
@pytest.mark.usefixtures("buffered")
def test_drain_drops_an_entry_holding_two_and_keeps_the_rest(alice_link, wsgi_get, drain_all):
    wsgi_get(f"/c/{alice_link.link.code}")
    buffer = event_buffer()
    good = json.loads(buffer.drain_client.xrange(buffer.stream)[0][1][b"e"])
    twins = [json.dumps({**good, "id": uuid.uuid4().hex}) for _ in range(2)]
    buffer.drain_client.xadd(buffer.stream, {"e": ",".join(twins)})  # read as one JSON array, it would be two clicks
    buffer.drain_client.xadd(buffer.stream, {"e": json.dumps({**good, "id": uuid.uuid4().hex, "k": None})})

    assert drain_all() == 3
    assert [click.click_id.hex for click in clicks_of(alice_link.program)] == [good["id"]]


@needs_redis
@pytest.mark.usefixtures("buffered")
def test_find_click_drains_a_click_still_in_the_buffer(alice_link, wsgi_get, django_capture_on_commit_callbacks):
    click_id = wsgi_get(f"/c/{alice_link.link.code}").header("Set-Cookie").split(";")[0].split("=")[1]

    with django_capture_on_commit_callbacks(execute=True):
        click = find_click(program=alice_link.program, click_id=click_id)

    assert click is not None
    assert click.click_id.hex == click_id
    assert buffered_count() == 0


@pytest.fixture
def redis_round_trips(monkeypatch):
    """Counts what goes over any connection to Redis (a command, or a pipeline of them): the round trips."""
    from redis.connection import Connection

    sent = []
    send = Connection.send_packed_command

    def counted(self, command, *args, **kwargs):
        sent.append(command)
        return send(self, command, *args, **kwargs)

    monkeypatch.setattr(Connection, "send_packed_command", counted)
    return sent


@needs_redis
@pytest.mark.usefixtures("buffered")
def test_warm_click_and_impression_take_one_redis_round_trip_each(alice_link, wsgi_get, drain_all, redis_round_trips):
    code = alice_link.link.code
    wsgi_get(f"/c/{code}")  # caches the link
    wsgi_get(f"/c/{code}")  # reads it from the cache: this process now knows it as active
    redis_round_trips.clear()

    click = wsgi_get(f"/c/{code}", HTTP_REFERER="https://www.google.com/search?q=shoes")
    impression = wsgi_get(f"/i/{code}")

    assert (click.status, impression.status, len(redis_round_trips)) == (302, 200, 2)
    assert drain_all() == 4
    stored = clicks_of(alice_link.program)[-1]
    assert (stored.click_id.hex, stored.source) == (click.location.split("click_id=")[1], "organic")


@needs_redis
@pytest.mark.usefixtures("buffered")
def test_warm_click_survives_redis_forgetting_its_script(alice_link, wsgi_get, drain_all):
    code = alice_link.link.code
    wsgi_get(f"/c/{code}")
    wsgi_get(f"/c/{code}")
    event_buffer().drain_client.script_flush()

    assert wsgi_get(f"/c/{code}").status == 302
    assert wsgi_get(f"/c/{code}").status == 302
    assert drain_all() == 4


@needs_redis
@pytest.mark.usefixtures("buffered")
def test_warm_click_when_redis_stalls_is_stored_once_with_its_click_id(alice_link, wsgi_get, drain_all, settings):
    settings.CLICK_REDIS_RETRY_SECONDS = 0.05  # this test's own breaker, closed again before the next test
    code = alice_link.link.code
    wsgi_get(f"/c/{code}")
    wsgi_get(f"/c/{code}")
    assert drain_all() == 2

    # Redis holds every command for longer than a click waits (CLICK_REDIS_TIMEOUT): the click's script may run
    # after the click has given up and written itself to the database. Either way it must be stored once.
    event_buffer().drain_client.execute_command("CLIENT", "PAUSE", 400, "ALL")
    stalled = wsgi_get(f"/c/{code}")
    time.sleep(0.5)  # the pause is Redis's, not a clock of ours: it must really end

    stalled_id = stalled.location.split("click_id=")[1]
    assert stalled.status == 302
    assert stalled_id in [click.click_id.hex for click in clicks_of(alice_link.program)]  # written directly
    drain_all()
    click_ids = [click.click_id.hex for click in clicks_of(alice_link.program)]
    assert len(click_ids) == 3
    assert click_ids.count(stalled_id) == 1


def test_database_mode_writes_each_click_at_once(alice_link, wsgi_get, settings):
    settings.CLICK_BUFFER = "database"

    response = wsgi_get(f"/c/{alice_link.link.code}")
    wsgi_get(f"/c/{alice_link.link.code}")

    clicks = clicks_of(alice_link.program)
    assert [click.click_id.hex for click in clicks[:1]] == [response.location.split("click_id=")[1]]
    assert [click.is_unique for click in clicks] == [True, False]
    assert buffered_count() == 0


def test_unreachable_redis_writes_to_database_and_opens_breaker(alice_link, wsgi_get, settings, unused_port):
    settings.CLICK_BUFFER = "redis"
    settings.CLICK_BUFFER_URL = f"redis://127.0.0.1:{unused_port}/0"

    first = wsgi_get(f"/c/{alice_link.link.code}")
    assert event_buffer().available is False  # the next clicks skip Redis without waiting for it
    second = wsgi_get(f"/c/{alice_link.link.code}")
    impression = wsgi_get(f"/i/{alice_link.link.code}")

    assert (first.status, second.status, impression.status) == (302, 302, 200)
    assert len(clicks_of(alice_link.program)) == 2
    with scopes_disabled():
        assert Impression.objects.filter(program=alice_link.program).count() == 1


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_suspended_affiliates_link_stops_redirecting_at_once(
    alice_link, wsgi_get, django_capture_on_commit_callbacks
):
    from django_scopes import scope

    from affiliates.services import change_affiliate_status

    world, code = alice_link.world, alice_link.link.code

    def change(to_status: str, reason: str) -> None:
        with scope(program=world.program), django_capture_on_commit_callbacks(execute=True):
            change_affiliate_status(
                program=world.program,
                affiliate=world.affiliate,
                to_status=to_status,
                reason=reason,
                changed_by=world.manager,
            )

    assert wsgi_get(f"/c/{code}").status == 302  # the link is now cached
    change("suspended", "Cookie stuffing")
    assert wsgi_get(f"/c/{code}").status == 404
    change("approved", "Cleared")
    assert wsgi_get(f"/c/{code}").status == 302
