"""Postbacks through config.wsgi (gunicorn's entry point), which serves them before Django's middleware."""

import json
import time
from decimal import Decimal

import pytest
from django.db import connection
from django.http import HttpRequest
from django.http.cookie import parse_cookie
from django.utils import translation
from django_scopes import scopes_disabled

from tracking.clickpath import visitor_language
from tracking.models import Conversion, PostbackAttempt

pytestmark = pytest.mark.django_db


def as_json(response) -> dict:
    return json.loads(response.body)


def test_get_postback_is_recorded_without_the_middleware_stack(sales, wsgi_get):
    click = sales.click()
    query = f"token={sales.program.postback_token}&click_id={click.click_id}&order_id=A-1&amount=49.90"
    response = wsgi_get(f"/postback/{sales.program.slug}", query=query)
    assert response.status == 200
    assert response.header("Content-Type") == "application/json"
    assert response.header("X-Content-Type-Options") == "nosniff"
    assert response.header("Set-Cookie") is None  # no session, no CSRF cookie
    body = as_json(response)
    with scopes_disabled():
        conversion = Conversion.objects.get(program=sales.program)
        attempt = PostbackAttempt.objects.get(program=sales.program)
    assert (body["status"], body["conversion_id"]) == ("created", conversion.pk)
    assert (conversion.order_id, conversion.affiliate, attempt.result) == ("A-1", sales.affiliate, "created")


def test_post_json_with_header_token_and_trailing_slash(sales, wsgi_get):
    click = sales.click()
    payload = json.dumps({"click_id": str(click.click_id), "order_id": "A-2", "amount": 10.5}).encode()
    response = wsgi_get(
        f"/postback/{sales.program.slug}/",
        method="POST",
        body=payload,
        CONTENT_TYPE="application/json",
        HTTP_X_GOALPOST_TOKEN=sales.program.postback_token,
    )
    assert (response.status, as_json(response)["status"]) == (200, "created")
    with scopes_disabled():
        assert Conversion.objects.get(program=sales.program).amount == Decimal("10.50")


def test_unknown_program_and_wrong_token_answer_json(sales, wsgi_get):
    missing = wsgi_get("/postback/no-such-program", query="token=x&order_id=A-1")
    assert (missing.status, as_json(missing)["error"]["code"]) == (404, "not_found")
    wrong = wsgi_get(f"/postback/{sales.program.slug}", query="token=wrong&order_id=A-1")
    assert (wrong.status, as_json(wrong)["error"]["field"]) == (401, "token")
    with scopes_disabled():
        assert not Conversion.objects.filter(program=sales.program).exists()
        assert PostbackAttempt.objects.get(program=sales.program).reason == "bad_token"


@pytest.mark.parametrize("through", ["wsgi", "django"])
def test_too_many_query_parameters_are_refused_and_logged(sales, wsgi_get, client, through):
    extra = "&".join(f"p{number}=x" for number in range(60))
    query = f"token={sales.program.postback_token}&order_id=A-1&{extra}"
    if through == "wsgi":
        response = wsgi_get(f"/postback/{sales.program.slug}", query=query)
        status, body = response.status, as_json(response)
    else:
        response = client.get(f"/postback/{sales.program.slug}?{query}")
        status, body = response.status_code, response.json()
    assert (status, body["error"]["code"], body["error"]["message"]) == (400, "invalid_body", "Too many parameters.")
    with scopes_disabled():
        assert not Conversion.objects.filter(program=sales.program).exists()
        assert PostbackAttempt.objects.get(program=sales.program).reason == "invalid_body"


def test_query_parameters_read_as_django_reads_them(sales, wsgi_get):
    """UTF-8 percent-escapes, '+' as a space, blank values kept, the last of repeated names."""
    click = sales.click()
    query = (
        f"token={sales.program.postback_token}&click_id={click.click_id}&order_id=first&order_id=Zam%C3%B3wienie+7"
        "&amount=10&coupon=&currency=EUR"
    )
    response = wsgi_get(f"/postback/{sales.program.slug}", query=query)
    assert (response.status, as_json(response)["status"]) == (200, "created")
    with scopes_disabled():
        assert Conversion.objects.get(program=sales.program).order_id == "Zamówienie 7"


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor == "sqlite", reason="Django never closes SQLite's in-memory test database")
def test_a_connection_past_its_age_is_closed_when_the_postback_ends(sales, wsgi_get):
    """What Django's request_finished does (CONN_MAX_AGE): this path bypasses Django's handler and does it too."""
    connection.ensure_connection()
    connection.close_at = time.monotonic() - 1
    response = wsgi_get(f"/postback/{sales.program.slug}", query="token=wrong&order_id=A-1")
    assert response.status == 401
    assert connection.connection is None  # closed; the next query opens a new one
    with scopes_disabled():
        assert PostbackAttempt.objects.get(program=sales.program).reason == "bad_token"


def test_paths_that_are_not_a_postback_go_to_django(sales, wsgi_get):
    response = wsgi_get(f"/postback/{sales.program.slug}/extra", query=f"token={sales.program.postback_token}")
    assert response.status == 404
    assert response.header("Content-Type").startswith("text/html")  # Django's 404, not the postback view


def test_errors_are_in_the_callers_language_whatever_the_thread_served_before(sales, wsgi_get):
    with translation.override("pl"):
        polish = translation.gettext("The postback token is wrong.")
    assert polish != "The postback token is wrong."
    translation.activate("ru")  # what a page in Russian leaves behind in a worker thread
    try:
        english = wsgi_get(f"/postback/{sales.program.slug}", query="token=wrong&order_id=A-1")
        in_polish = wsgi_get(
            f"/postback/{sales.program.slug}", query="token=wrong&order_id=A-1", HTTP_ACCEPT_LANGUAGE="pl"
        )
    finally:
        translation.deactivate()
    assert as_json(english)["error"]["message"] == "The postback token is wrong."
    assert as_json(in_polish)["error"]["message"] == polish


def test_an_unexpected_failure_answers_500_json_and_is_logged(sales, wsgi_get, monkeypatch, caplog):
    def broken(slug, meta, read_params):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("tracking.clickpath.answer_postback", broken)
    response = wsgi_get(f"/postback/{sales.program.slug}", query="token=x", HTTP_ACCEPT_LANGUAGE="sv, en;q=0.5")
    assert (response.status, as_json(response)["error"]["code"]) == (500, "server_error")
    with translation.override("sv"):
        swedish = translation.gettext("Something went wrong; the postback was not recorded. Please retry.")
    assert swedish != "Something went wrong; the postback was not recorded. Please retry."
    assert as_json(response)["error"]["message"] == swedish
    assert "Postback to" in caplog.text


def test_answers_with_lazy_text_or_decimals_are_written_as_jsonresponse_writes_them(sales, wsgi_get, monkeypatch):
    from django.utils.translation import gettext_lazy

    body = {"error": {"code": "x", "message": gettext_lazy("No such program."), "amount": Decimal("1.50")}}
    monkeypatch.setattr("tracking.clickpath.answer_postback", lambda slug, meta, read_params: (400, body))
    response = wsgi_get(f"/postback/{sales.program.slug}", query="token=x")
    assert (response.status, as_json(response)) == (
        400,
        {"error": {"code": "x", "message": "No such program.", "amount": "1.50"}},
    )


def test_a_visitor_on_a_dead_link_reads_the_page_in_their_language(wsgi_get):
    with translation.override("ru"):
        russian = translation.gettext("This link does not exist or is no longer active.")
    translation.activate("pl")  # what a page in Polish leaves behind in a worker thread
    try:
        response = wsgi_get("/c/NoSuchCode1", HTTP_ACCEPT_LANGUAGE="ru-RU,ru;q=0.9,en;q=0.5")
        english = wsgi_get("/c/NoSuchCode1", HTTP_ACCEPT_LANGUAGE="de-DE")
    finally:
        translation.deactivate()
    assert response.status == english.status == 404
    assert russian != "This link does not exist or is no longer active."
    assert russian in response.body.decode()
    assert "This link does not exist or is no longer active." in english.body.decode()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"HTTP_COOKIE": "django_language=sv"},
        {"HTTP_COOKIE": "sessionid=x"},
        {"HTTP_ACCEPT_LANGUAGE": "pl-PL,pl;q=0.9"},
        {"HTTP_ACCEPT_LANGUAGE": "de-DE"},
        {"HTTP_COOKIE": "", "HTTP_ACCEPT_LANGUAGE": ""},
    ],
    ids=["no-headers", "language-cookie", "other-cookie", "accept-language", "unsupported", "empty-headers"],
)
def test_visitor_language_is_what_django_picks(headers):
    meta = {"REQUEST_METHOD": "GET", **headers}
    request = HttpRequest()
    request.META = meta
    request.COOKIES = parse_cookie(meta.get("HTTP_COOKIE", ""))
    translation.activate("ru")  # what a page in Russian leaves behind in a worker thread
    try:
        assert visitor_language(meta) == translation.get_language_from_request(request)
    finally:
        translation.deactivate()


def test_visitor_language_without_headers_is_the_default(settings):
    assert visitor_language({}) == "en"
    settings.LANGUAGE_CODE = "sv-se"  # a variant of a supported language
    assert visitor_language({}) == "sv"
    assert visitor_language({"HTTP_COOKIE": "django_language=pl"}) == "pl"
    assert visitor_language({"HTTP_ACCEPT_LANGUAGE": "ru"}) == "ru"
