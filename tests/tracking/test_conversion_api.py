"""POST /api/v1/programs/<slug>/conversions/ and …/<id>/status/: token auth, managing roles, same service."""

from decimal import Decimal

import pytest
from django_scopes import scopes_disabled
from rest_framework.authtoken.models import Token

from tracking.hashing import ip_hash
from tracking.models import Conversion, ConversionEvent

pytestmark = pytest.mark.django_db


def create_url(program) -> str:
    return f"/api/v1/programs/{program.slug}/conversions/"


def status_url(program, conversion_id) -> str:
    return f"/api/v1/programs/{program.slug}/conversions/{conversion_id}/status/"


def auth(user) -> dict:
    token, _ = Token.objects.get_or_create(user=user)
    return {"HTTP_AUTHORIZATION": f"Token {token.key}"}


def post(client, url, user, payload):
    return client.post(url, payload, content_type="application/json", **auth(user))


def rows(program) -> list[tuple]:
    with scopes_disabled():
        return list(Conversion.objects.filter(program=program).values_list("order_id", "status", "source"))


def test_manager_records_a_conversion_and_gets_it_back(client, sales):
    click = sales.click()
    response = post(
        client,
        create_url(sales.program),
        sales.world.manager,
        {"order_id": "API-1", "amount": 49.9, "click_id": str(click.click_id), "ip": "198.51.100.8"},
    )
    assert response.status_code == 201
    body = response.json()
    with scopes_disabled():
        conversion = Conversion.objects.get(program=sales.program)
        event = ConversionEvent.objects.get(conversion=conversion)
    assert body["status"] == "created"
    assert {key: body["conversion"][key] for key in ("id", "order_id", "kind", "status", "amount", "revenue")} == {
        "id": conversion.pk,
        "order_id": "API-1",
        "kind": "sale",
        "status": "pending",
        "amount": "49.90",
        "revenue": "49.90",
    }
    assert (conversion.source, conversion.affiliate, conversion.ip_hash) == (
        "api",
        sales.affiliate,
        ip_hash(sales.program.pk, "198.51.100.8"),
    )
    assert (event.actor, event.reason) == (sales.world.manager, "Received through the API.")


def test_duplicate_order_answers_200_with_the_existing_conversion(client, sales):
    payload = {"order_id": "API-1", "amount": "10", "click_id": str(sales.click().click_id)}
    first = post(client, create_url(sales.program), sales.world.owner, payload)
    second = post(client, create_url(sales.program), sales.world.manager, {**payload, "amount": "99"})
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["status"] == "duplicate"
    assert second.json()["conversion"]["id"] == first.json()["conversion"]["id"]
    assert second.json()["conversion"]["amount"] == "10.00"
    assert len(rows(sales.program)) == 1


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"amount": "-1"}, "amount", "The amount cannot be negative."),
        ({"amount": "NaN"}, "amount", "The amount must be a finite number."),
        ({"amount": "12345678901234567890"}, "amount", "At most 12 digits before the decimal point."),
        ({"amount": 1e300}, "amount", "At most 12 digits before the decimal point."),
        ({"order_id": None}, "order_id", "A sale needs an order_id, so that it is recorded once."),
        ({"currency": "XYZ"}, "currency", "“XYZ” is not an ISO 4217 currency code."),
        ({"kind": "refund"}, "kind", '"refund" is not a valid choice.'),
        ({"status": "reversed"}, "status", '"reversed" is not a valid choice.'),
        ({"click_id": "00000000-0000-4000-8000-000000000000"}, "click_id", "Unknown click_id for this program."),
        ({"occurred_at": "2999-01-01T00:00:00Z"}, "occurred_at", "The conversion time is in the future."),
        ({"ip": "nope"}, "ip", "Enter a valid IPv4 or IPv6 address."),
    ],
)
def test_bad_input_is_400_naming_the_field(client, sales, payload, field, message):
    response = post(client, create_url(sales.program), sales.world.manager, {"order_id": "API-1", **payload})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["fields"] == {field: [message]}
    assert error["message"] == f"{field}: {message}"
    assert rows(sales.program) == []


def test_another_programs_click_id_is_refused(client, sales, bob_sales):
    response = post(
        client,
        create_url(sales.program),
        sales.world.manager,
        {"order_id": "API-1", "click_id": str(bob_sales.click().click_id)},
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"click_id": ["Unknown click_id for this program."]}
    assert rows(sales.program) == rows(bob_sales.program) == []


def test_alices_token_cannot_create_in_bobs_program(client, sales, bob_sales):
    for intruder in (sales.world.owner, sales.world.manager):
        response = post(client, create_url(bob_sales.program), intruder, {"order_id": "X", "amount": "1"})
        assert response.status_code == 404
    missing = post(client, "/api/v1/programs/no-such/conversions/", sales.world.owner, {"order_id": "X"})
    assert missing.status_code == 404
    assert missing.json() == response.json()
    assert rows(bob_sales.program) == rows(sales.program) == []


@pytest.mark.parametrize("role", ["analyst", "affiliate_user"])
def test_roles_that_do_not_manage_get_404(client, sales, role):
    response = post(client, create_url(sales.program), getattr(sales.world, role), {"order_id": "X", "amount": "1"})
    assert response.status_code == 404
    assert rows(sales.program) == []


def test_anonymous_caller_gets_401(client, sales):
    response = client.post(create_url(sales.program), {"order_id": "X"}, content_type="application/json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_status_endpoint_reverses_with_a_reason(client, sales):
    created = post(
        client,
        create_url(sales.program),
        sales.world.manager,
        {"order_id": "API-1", "amount": "10", "click_id": str(sales.click().click_id), "status": "approved"},
    ).json()["conversion"]
    url = status_url(sales.program, created["id"])
    no_reason = post(client, url, sales.world.manager, {"status": "reversed"})
    reversed_ = post(client, url, sales.world.manager, {"status": "reversed", "reason": "Refunded"})
    again = post(client, url, sales.world.manager, {"status": "approved", "reason": "oops"})
    assert no_reason.status_code == 400
    assert no_reason.json()["error"]["fields"] == {"reason": ["Give a reason; the affiliate will see it."]}
    assert (reversed_.status_code, reversed_.json()["status"], reversed_.json()["id"]) == (
        200,
        "reversed",
        created["id"],
    )
    assert again.status_code == 400
    assert again.json()["error"]["fields"] == {"status": ["A reversed conversion cannot be approved."]}
    with scopes_disabled():
        event = ConversionEvent.objects.filter(conversion_id=created["id"]).order_by("pk").last()
    assert (event.from_status, event.to_status, event.actor, event.reason) == (
        "approved",
        "reversed",
        sales.world.manager,
        "Refunded",
    )


def test_status_endpoint_does_not_reach_another_programs_conversion(client, sales, bob_sales):
    bob_conversion = post(
        client,
        create_url(bob_sales.program),
        bob_sales.world.manager,
        {"order_id": "B-1", "amount": "10", "click_id": str(bob_sales.click().click_id)},
    ).json()["conversion"]
    response = post(
        client,
        status_url(sales.program, bob_conversion["id"]),
        sales.world.owner,
        {"status": "rejected", "reason": "x"},
    )
    assert response.status_code == 404
    assert rows(bob_sales.program) == [("B-1", "pending", "api")]


def test_revenue_share_commission_comes_back_in_the_answer(client, sales):
    sales.rule(rule_type="revenue_share", percent=Decimal("10"))
    body = post(
        client,
        create_url(sales.program),
        sales.world.manager,
        {"order_id": "API-1", "amount": "80", "click_id": str(sales.click().click_id)},
    ).json()["conversion"]
    assert (body["commission"], body["commission_explanation"]) == (
        "8.00",
        f"10 % of 80.00 EUR = 8.00 EUR. Rule #{body['commission_rule']} for every affiliate.",
    )
