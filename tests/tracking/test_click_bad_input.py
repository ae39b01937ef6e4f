"""Bad input on the click path: redirect tricks, oversized and malformed requests. Never a redirect anywhere
but the stored destination, never a 5xx, nothing stored beyond the field limits."""

from urllib.parse import urlsplit

import pytest
from django_scopes import scopes_disabled

from tracking.models import Click

DESTINATION = "https://shop.alice.test/spring?lang=en"


def stored(tracked, drain_all) -> list[Click]:
    drain_all()
    with scopes_disabled():
        return list(Click.objects.filter(program=tracked.program).order_by("created_at", "pk"))


@pytest.mark.parametrize(
    "query",
    [
        "url=https://evil.test",
        "url=%2F%2Fevil.test",
        "url=https%3A%2F%2Fevil.test%2F",
        "next=//evil.test",
        "redirect=javascript:alert(1)",
        "redirect_uri=https://evil.test&return=https://evil.test&dest=evil.test",
        "click_id=https://evil.test",
        "utm_source=%0d%0aLocation:%20https://evil.test",
        "utm_medium=@evil.test",
        "%2F%2Fevil.test",
    ],
)
def test_redirect_parameters_never_change_the_destination(alice_link, wsgi_get, drain_all, query):
    response = wsgi_get(f"/c/{alice_link.link.code}", query=query)

    (click,) = stored(alice_link, drain_all)
    assert response.status == 302
    assert response.location.startswith(f"{DESTINATION}&click_id={click.click_id.hex}")
    parts = urlsplit(response.location)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "shop.alice.test", "/spring")
    assert "\r" not in response.location
    assert "\n" not in response.location


@pytest.mark.parametrize(
    "path",
    [
        "/c//evil.test",
        "/c///evil.test",
        "/c/%2F%2Fevil.test",
        "/c/https://evil.test",
        "/c/{code}/https://evil.test",
        "/c/{code}//evil.test",
        "/c/{code}%00",
        "/c/{code}\x00",
        "/c/{code}@evil.test",
        "/c/",
    ],
)
def test_paths_with_hosts_in_them_are_404(alice_link, wsgi_get, drain_all, path):
    response = wsgi_get(path.format(code=alice_link.link.code))

    assert response.status == 404
    assert response.header("Location") is None
    assert stored(alice_link, drain_all) == []


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_HOST": "evil.test"},
        {"HTTP_X_FORWARDED_HOST": "evil.test"},
        {"HTTP_HOST": "evil.test", "HTTP_X_FORWARDED_PROTO": "http", "HTTP_FORWARDED": "host=evil.test"},
        {"HTTP_X_ORIGINAL_URL": "https://evil.test/", "HTTP_X_REWRITE_URL": "//evil.test"},
    ],
)
def test_host_header_games_do_not_change_the_destination(alice_link, wsgi_get, drain_all, headers):
    response = wsgi_get(f"/c/{alice_link.link.code}", **headers)

    assert response.status == 302
    assert urlsplit(response.location).netloc == "shop.alice.test"
    assert response.location.startswith(DESTINATION)


def test_huge_query_string_still_redirects_and_stores_none_of_it(alice_link, wsgi_get, drain_all):
    query = "sub1=" + "A" * 100_000 + "&utm_source=" + "B" * 1000

    response = wsgi_get(f"/c/{alice_link.link.code}", query=query)

    (click,) = stored(alice_link, drain_all)
    assert response.status == 302
    assert response.location == f"{DESTINATION}&click_id={click.click_id.hex}"
    assert (click.sub1, click.sub2) == ("", "")


def test_long_values_are_truncated_to_their_fields(alice_link, wsgi_get, drain_all):
    response = wsgi_get(
        f"/c/{alice_link.link.code}",
        query="sub1=" + "a" * 1000 + "&sub5=" + "é" * 300 + "&utm_campaign=" + "c" * 600,
        HTTP_USER_AGENT="Mozilla/5.0 " + "u" * 5000,
        HTTP_REFERER="https://blog.example/" + "r" * 5000,
    )

    (click,) = stored(alice_link, drain_all)
    assert (click.sub1, click.sub5) == ("a" * 255, "é" * 255)
    assert (len(click.user_agent), len(click.referrer)) == (512, 1000)
    assert response.location.endswith("&utm_campaign=" + "c" * 255)


def test_nul_bytes_and_invalid_utf8_are_stored_cleanly(alice_link, wsgi_get, drain_all):
    response = wsgi_get(
        f"/c/{alice_link.link.code}",
        query="sub1=a%00b&sub2=%ff%fe&sub3=%E2%82%AC",
        HTTP_USER_AGENT="Mozi\x00lla/5.0 \xc3\xa9t\xff",  # WSGI headers are latin-1 decoded bytes
        HTTP_REFERER="https://blog.example/\x00",
    )

    (click,) = stored(alice_link, drain_all)
    assert response.status == 302
    assert (click.sub1, click.sub2, click.sub3) == ("ab", "\ufffd\ufffd", "€")
    assert click.user_agent == "Mozilla/5.0 ét\ufffd"
    assert click.referrer == "https://blog.example/"


def test_too_many_parameters_are_ignored_not_an_error(alice_link, wsgi_get, drain_all):
    response = wsgi_get(
        f"/c/{alice_link.link.code}", query="&".join(f"p{number}=1" for number in range(500)) + "&sub1=x"
    )

    (click,) = stored(alice_link, drain_all)
    assert response.status == 302
    assert click.sub1 == ""


@pytest.mark.parametrize("country", ["ZZZ", "1A", "xx", "p", "🇵🇱", "PL;DROP"])
def test_malformed_country_headers_are_left_blank(alice_link, wsgi_get, drain_all, country):
    wsgi_get(f"/c/{alice_link.link.code}", HTTP_CF_IPCOUNTRY=country.encode().decode("latin-1"))

    (click,) = stored(alice_link, drain_all)
    assert click.country == ""


def test_head_request_redirects_and_counts_as_bot(alice_link, wsgi_get, drain_all):
    response = wsgi_get(f"/c/{alice_link.link.code}", method="HEAD")

    (click,) = stored(alice_link, drain_all)
    assert (response.status, response.body) == (302, b"")
    assert click.is_bot is True


def test_impression_code_checks_match_clicks(alice_link, wsgi_get, drain_all):
    assert wsgi_get("/i/%2F%2Fevil.test").status == 404
    assert wsgi_get("/i/unknownCode").status == 404
    assert wsgi_get(f"/i/{alice_link.link.code}", query="x" * 100_000).status == 200
