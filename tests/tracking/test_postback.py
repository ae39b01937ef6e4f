"""The postback endpoint: token, signature and IP checks, JSON answers, the attempt log, status updates, replay."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client, override_settings
from django.utils import timezone
from django_scopes import scopes_disabled

from tracking import services
from tracking.currency import local_day
from tracking.hashing import ip_hash
from tracking.models import Conversion, ConversionEvent, CurrencyRate, PostbackAttempt

pytestmark = pytest.mark.django_db


def url(program) -> str:
    return f"/postback/{program.slug}"


def get(client, sales, **params):
    params.setdefault("token", sales.program.postback_token)
    return client.get(url(sales.program), params, REMOTE_ADDR=params.pop("remote_addr", "203.0.113.50"))


def attempts(program) -> list[tuple]:
    with scopes_disabled():
        return list(
            PostbackAttempt.objects.filter(program=program)
            .order_by("pk")
            .values_list("result", "reason", "http_status", "conversion_id")
        )


def conversions(program) -> list[tuple]:
    with scopes_disabled():
        return list(Conversion.objects.filter(program=program).order_by("pk").values_list("order_id", "status"))


def test_get_postback_creates_a_conversion_and_logs_the_attempt(client, sales):
    click = sales.click()
    response = get(client, sales, click_id=str(click.click_id), order_id="A-1", amount="49.90", currency="EUR")
    assert response.status_code == 200
    with scopes_disabled():
        conversion = Conversion.objects.get(program=sales.program)
        attempt = PostbackAttempt.objects.get(program=sales.program)
    assert response.json() == {
        "status": "created",
        "conversion_id": conversion.pk,
        "conversion_status": "pending",
        "reason": "",
    }
    assert (conversion.order_id, conversion.amount, conversion.source, conversion.affiliate) == (
        "A-1",
        Decimal("49.90"),
        "postback",
        sales.affiliate,
    )
    assert (attempt.result, attempt.reason, attempt.http_status, attempt.conversion, attempt.method) == (
        "created",
        "",
        200,
        conversion,
        "GET",
    )
    assert attempt.params == {"click_id": str(click.click_id), "order_id": "A-1", "amount": "49.90", "currency": "EUR"}
    assert attempt.ip_hash == ip_hash(sales.program.pk, "203.0.113.50")


def test_post_form_with_header_token_and_trailing_slash(sales):
    client = Client(enforce_csrf_checks=True)  # servers post without a CSRF token; the endpoint is exempt
    response = client.post(
        url(sales.program) + "/",
        {"order_id": "A-1", "amount": "10", "click_id": str(sales.click().click_id)},
        HTTP_X_GOALPOST_TOKEN=sales.program.postback_token,
    )
    assert (response.status_code, response.json()["status"]) == (200, "created")
    assert conversions(sales.program) == [("A-1", "pending")]


def test_post_json_keeps_decimal_amounts_exact(client, sales):
    response = client.post(
        url(sales.program) + f"?token={sales.program.postback_token}",
        data=json.dumps({"order_id": 1001, "amount": 19.99, "kind": "sale", "click_id": str(sales.click().click_id)}),
        content_type="application/json",
    )
    assert response.status_code == 200
    with scopes_disabled():
        conversion = Conversion.objects.get(program=sales.program)
    assert (conversion.order_id, conversion.amount) == ("1001", Decimal("19.99"))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "The body is not valid JSON."),
        ('["a", "list"]', "The JSON body must be an object of plain values."),
        ('{"order_id": {"nested": 1}}', "The JSON body must be an object of plain values."),
    ],
)
def test_unreadable_json_body_is_refused_and_logged(client, sales, body, message):
    response = client.post(
        url(sales.program) + f"?token={sales.program.postback_token}", data=body, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json() == {"error": {"code": "invalid_body", "message": message, "field": None}}
    assert attempts(sales.program) == [("refused", "invalid_body", 400, None)]


def test_same_postback_twice_answers_duplicate_with_the_same_id(client, sales):
    params = {"click_id": str(sales.click().click_id), "order_id": "A-1", "amount": "10"}
    first = get(client, sales, **params).json()
    second = get(client, sales, **params).json()
    assert second == {**first, "status": "duplicate"}
    assert conversions(sales.program) == [("A-1", "pending")]
    assert attempts(sales.program) == [
        ("created", "", 200, first["conversion_id"]),
        ("duplicate", "", 200, first["conversion_id"]),
    ]


@pytest.mark.parametrize(
    ("token", "code", "message"),
    [
        (None, "missing_token", "The postback token is missing."),
        ("", "missing_token", "The postback token is missing."),
        ("wrong", "bad_token", "The postback token is wrong."),
        ("bob", "bad_token", "The postback token is wrong."),
    ],
)
def test_wrong_or_missing_token_is_401_and_records_no_conversion(client, sales, bob_sales, token, code, message):
    params = {"order_id": "A-1", "amount": "10", "click_id": str(sales.click().click_id)}
    if token == "bob":
        token = bob_sales.program.postback_token  # another program's valid token
    if token is not None:
        params["token"] = token
    response = client.get(url(sales.program), params)
    assert response.status_code == 401
    assert response.json() == {"error": {"code": code, "message": message, "field": "token"}}
    assert conversions(sales.program) == []
    assert attempts(sales.program) == [("refused", code, 401, None)]
    with scopes_disabled():
        stored = json.dumps(list(PostbackAttempt.objects.values("params", "message", "reason")))
    assert sales.program.postback_token not in stored
    assert bob_sales.program.postback_token not in stored


def test_token_is_never_stored(client, sales):
    get(client, sales, order_id="A-1", amount="10", click_id=str(sales.click().click_id))
    with scopes_disabled():
        stored = json.dumps(list(PostbackAttempt.objects.values()), default=str)
    assert sales.program.postback_token not in stored


@pytest.mark.parametrize("slug", ["no-such-program", "ALICE", "bob-x"])
def test_unknown_program_is_404_with_the_same_answer_for_any_slug(client, sales, slug):
    response = client.get(f"/postback/{slug}", {"token": sales.program.postback_token, "order_id": "A-1"})
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "No such program.", "field": None}}
    with scopes_disabled():
        assert PostbackAttempt.objects.count() == 0


def test_signed_postback_is_accepted_and_a_bad_or_missing_signature_refused(client, sales):
    settings = sales.settings(postback_require_signature=True)
    params = {"order_id": "A/17", "amount": "49.90", "click_id": str(sales.click().click_id), "kind": "sale"}
    signature = services.postback_signature(settings.postback_signing_secret, params)
    missing = get(client, sales, **params)
    wrong = get(client, sales, **params, signature="0" * 64)
    tampered = get(client, sales, **{**params, "amount": "4990.00"}, signature=signature)
    good = client.get(
        url(sales.program),
        params,
        HTTP_X_GOALPOST_SIGNATURE=signature.upper(),
        HTTP_X_GOALPOST_TOKEN=sales.program.postback_token,
    )
    assert [missing.status_code, wrong.status_code, tampered.status_code, good.status_code] == [403, 403, 403, 200]
    assert missing.json()["error"] == {
        "code": "missing_signature",
        "message": "This program requires signed postbacks.",
        "field": "signature",
    }
    assert [reason for _result, reason, _status, _conversion in attempts(sales.program)] == [
        "missing_signature",
        "bad_signature",
        "bad_signature",
        "",
    ]
    assert conversions(sales.program) == [("A/17", "pending")]


def test_canonical_string_of_the_documented_example():
    params = {"order_id": "A/17", "amount": "49.90", "kind": "sale", "token": "t", "signature": "s", "note": "é x"}
    assert services.canonical_postback_string(params) == "amount=49.90&kind=sale&note=%C3%A9%20x&order_id=A%2F17"


@pytest.mark.parametrize(
    ("allowlist", "remote_addr", "allowed"),
    [
        ("203.0.113.0/24", "203.0.113.50", True),
        ("198.51.100.7\n203.0.113.0/24  # the advertiser", "203.0.113.9", True),
        ("203.0.113.0/24", "198.51.100.1", False),
        ("2001:db8::/32", "2001:db8::5", True),
        ("203.0.113.0/24", "::ffff:203.0.113.4", True),
        ("not a network", "203.0.113.50", False),
        ("", "192.0.2.99", True),
    ],
)
def test_ip_allowlist(client, sales, allowlist, remote_addr, allowed):
    sales.settings(postback_ip_allowlist=allowlist)
    response = get(
        client, sales, order_id="A-1", amount="1", click_id=str(sales.click().click_id), remote_addr=remote_addr
    )
    if allowed:
        assert response.status_code == 200
        assert conversions(sales.program) == [("A-1", "pending")]
    else:
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "ip_not_allowed"
        assert conversions(sales.program) == []
        assert attempts(sales.program) == [("refused", "ip_not_allowed", 403, None)]


def test_put_is_405_and_logged(client, sales):
    response = client.put(url(sales.program) + f"?token={sales.program.postback_token}&order_id=A-1")
    assert response.status_code == 405
    assert attempts(sales.program) == [("refused", "method_not_allowed", 405, None)]


@pytest.mark.parametrize(
    ("params", "field", "code"),
    [
        ({"amount": "-5"}, "amount", "invalid_amount"),
        ({"amount": "NaN"}, "amount", "invalid_amount"),
        ({"amount": "inf"}, "amount", "invalid_amount"),
        ({"amount": "12345678901234567890"}, "amount", "invalid_amount"),
        ({"amount": "1e400"}, "amount", "invalid_amount"),
        ({"order_id": ""}, "order_id", "required"),
        ({"currency": "XYZ"}, "currency", "unknown_currency"),
        ({"currency": "USD"}, "currency", "missing_rate"),
        ({"click_id": "garbage"}, "click_id", "invalid_click_id"),
        ({"click_id": "00000000-0000-4000-8000-000000000000"}, "click_id", "unknown_click_id"),
        ({"kind": "refund"}, "kind", "invalid_kind"),
        ({"status": "lost"}, "status", "invalid_status"),
        ({"ip": "300.1.1.1"}, "ip", "invalid_ip"),
        ({"order_id": "x" * 5000}, "order_id", "invalid_order_id"),
    ],
)
def test_bad_input_is_400_naming_the_field_and_logged(client, sales, params, field, code):
    full = {"order_id": "A-1", "amount": "10", "click_id": str(sales.click().click_id), **params}
    response = get(client, sales, **full)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["field"], error["code"]) == (field, code)
    assert error["message"]
    assert conversions(sales.program) == []
    assert attempts(sales.program) == [("refused", code, 400, None)]
    with scopes_disabled():
        attempt = PostbackAttempt.objects.get(program=sales.program)
    assert attempt.message == f"{field}: {error['message']}"
    assert all(len(value) <= 300 for value in attempt.params.values())


def test_another_programs_click_id_is_refused_and_creates_nothing_anywhere(client, sales, bob_sales):
    bob_click = bob_sales.click()
    response = get(client, sales, order_id="A-1", amount="10", click_id=str(bob_click.click_id))
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "unknown_click_id",
        "message": "Unknown click_id for this program.",
        "field": "click_id",
    }
    assert conversions(sales.program) == conversions(bob_sales.program) == []
    assert attempts(bob_sales.program) == []


def test_bob_token_cannot_post_into_alice_or_the_other_way(client, sales, bob_sales):
    response = client.get(url(bob_sales.program), {"token": sales.program.postback_token, "order_id": "B-1"})
    assert response.status_code == 401
    assert conversions(bob_sales.program) == conversions(sales.program) == []


def test_customer_ip_is_stored_only_as_a_hash(client, sales):
    get(client, sales, order_id="A-1", amount="10", click_id=str(sales.click().click_id), ip="198.51.100.44")
    digest = ip_hash(sales.program.pk, "198.51.100.44")
    with scopes_disabled():
        conversion = Conversion.objects.get(program=sales.program)
        attempt = PostbackAttempt.objects.get(program=sales.program)
    assert conversion.ip_hash == digest
    assert attempt.params["ip_hash"] == digest
    assert "198.51.100.44" not in json.dumps(attempt.params)


def test_status_reversed_updates_the_existing_conversion(client, sales):
    created = get(client, sales, order_id="A-1", amount="10", click_id=str(sales.click().click_id)).json()
    with scopes_disabled():
        Conversion.objects.filter(pk=created["conversion_id"]).update(status="approved")
    response = get(client, sales, order_id="A-1", status="reversed")
    again = get(client, sales, order_id="A-1", status="refunded")  # an alias of reversed, already applied
    assert response.json() == {
        "status": "updated",
        "conversion_id": created["conversion_id"],
        "conversion_status": "reversed",
        "reason": "postback",
    }
    assert again.json()["status"] == "duplicate"
    with scopes_disabled():
        event = ConversionEvent.objects.filter(conversion_id=created["conversion_id"]).order_by("pk").last()
    assert (event.from_status, event.to_status, event.actor, event.reason) == (
        "approved",
        "reversed",
        None,
        "Received by postback. The advertiser reports status “reversed”.",
    )
    assert [row[0] for row in attempts(sales.program)] == ["created", "updated", "duplicate"]


def test_status_change_for_an_unknown_order_is_refused(client, sales):
    response = get(client, sales, order_id="NEVER-SEEN", status="reversed")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "order_id"
    assert response.json()["error"]["code"] == "unknown_order"


def test_refused_transition_by_postback_is_400(client, sales):
    get(client, sales, order_id="A-1", amount="10", click_id=str(sales.click().click_id))
    get(client, sales, order_id="A-1", status="reversed")
    response = get(client, sales, order_id="A-1", status="approved")
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "invalid_transition",
        "message": "A reversed conversion cannot be approved.",
        "field": "status",
    }


def test_postback_approval_of_a_conversion_in_review_changes_nothing(client, sales):
    created = get(client, sales, order_id="A-1", amount="10", click_id=str(sales.click(is_bot=True).click_id)).json()
    response = get(client, sales, order_id="A-1", status="approved")
    assert response.json() == {
        "status": "duplicate",
        "conversion_id": created["conversion_id"],
        "conversion_status": "pending",
        "reason": "in_review",
    }
    assert conversions(sales.program) == [("A-1", "pending")]


def test_new_conversion_may_arrive_approved(client, sales):
    response = get(client, sales, order_id="A-1", amount="10", click_id=str(sales.click().click_id), status="approved")
    assert response.json()["conversion_status"] == "approved"


def test_outside_window_and_cap_are_created_rejected_with_the_reason_logged(client, sales):
    with scopes_disabled():
        sales.tracked.offer.cookie_window_days = 1
        sales.tracked.offer.save()
    late = get(client, sales, order_id="A-1", amount="10", click_id=str(sales.click(ago=timedelta(days=2)).click_id))
    assert late.json()["conversion_status"] == "rejected"
    assert late.json()["reason"] == "outside_window"
    assert attempts(sales.program)[0][:3] == ("created", "outside_window", 200)


def test_replay_of_a_refused_postback_after_the_rate_is_added(client, sales):
    click = sales.click()
    refused = get(client, sales, order_id="A-1", amount="100", currency="USD", click_id=str(click.click_id))
    assert refused.json()["error"]["code"] == "missing_rate"
    with scopes_disabled():
        attempt = PostbackAttempt.objects.get(program=sales.program)
        today = local_day(sales.program, timezone.now())
        CurrencyRate.objects.create(program=sales.program, currency="USD", day=today, rate="0.5")
    replayed = services.replay_postback(program=sales.program, attempt=attempt, actor=sales.world.manager)
    with scopes_disabled():
        conversion = Conversion.objects.get(program=sales.program)
        event = ConversionEvent.objects.get(conversion=conversion)
    assert (replayed.result, replayed.replay_of, replayed.conversion, replayed.params) == (
        "created",
        attempt,
        conversion,
        attempt.params,
    )
    assert (conversion.revenue, conversion.currency, conversion.amount) == (Decimal("50.00"), "USD", Decimal("100.00"))
    assert (event.actor, event.reason) == (sales.world.manager, f"Replay of postback attempt #{attempt.pk}.")


def test_refusals_without_a_valid_token_cannot_be_replayed(client, sales, bob_sales):
    client.get(url(sales.program), {"token": "wrong", "order_id": "A-1"})
    get(client, sales, order_id="A-2", amount="10", click_id=str(sales.click().click_id))
    with scopes_disabled():
        bad_token, created = PostbackAttempt.objects.filter(program=sales.program).order_by("pk")
    for attempt in (bad_token, created):
        with pytest.raises(services.ValidationError):
            services.replay_postback(program=sales.program, attempt=attempt, actor=sales.world.manager)
    with pytest.raises(services.ValidationError):
        services.replay_postback(program=bob_sales.program, attempt=bad_token, actor=bob_sales.world.manager)
    assert len(attempts(sales.program)) == 2


def test_postback_ignores_a_signed_in_session_of_another_program(client, sales, bob_sales):
    client.force_login(bob_sales.world.owner)
    response = get(client, sales, order_id="A-1", amount="10", click_id=str(sales.click().click_id))
    assert response.status_code == 200
    assert conversions(sales.program) == [("A-1", "pending")]


@override_settings(TRACKING_SQL_HOT_PATH=False)  # the PostgreSQL hot path: tests/tracking/test_hotpath.py
def test_new_conversion_by_postback_costs_a_fixed_number_of_queries(client, sales, django_assert_num_queries):
    sales.rule(rule_type="revenue_share", percent=Decimal("10"))
    sales.settings()
    click = sales.click()
    get(client, sales, order_id="A-0", amount="10", click_id=str(click.click_id))  # caches the month volume
    # Program + settings; click + offer + affiliate (+ flood count, cap flag); rules; then conversion, event,
    # attempt and the rollups' dirty mark in one transaction (a savepoint pair here, in the test's transaction).
    with django_assert_num_queries(9):
        response = get(client, sales, order_id="A-1", amount="10", click_id=str(click.click_id))
    assert response.json()["status"] == "created"
