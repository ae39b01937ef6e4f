"""Every program route, found by walking the URLconf, is closed to the wrong people and leaks nothing.

A new route under /p/, /portal/ or /api/v1/programs/ without an entry in ROUTES fails this module.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from django_scopes import scopes_disabled
from rest_framework.authtoken.models import Token

from affiliates.models import Affiliate, AffiliateStatusChange, Invitation, Membership, Program, User
from goals.models import Goal, GoalKind, GoalProgress, MonthlyReview, Notification
from goals.periods import month_of, previous_month
from tests.conftest import World
from tests.factories import (
    CommissionPlanFactory,
    CommissionRuleFactory,
    ConversionFactory,
    LinkFactory,
    OfferFactory,
    PostbackAttemptFactory,
)
from tracking.models import (
    Cap,
    CommissionPlan,
    CommissionRule,
    Conversion,
    ConversionEvent,
    Coupon,
    CurrencyRate,
    Link,
    Offer,
    PostbackAttempt,
    TrackingSettings,
)

pytestmark = pytest.mark.django_db

# Tracking rows a program page could change; the snapshot compares them before and after every intrusion.
TRACKING_MODELS = (
    Offer,
    Link,
    Coupon,
    Cap,
    CommissionPlan,
    CommissionRule,
    Conversion,
    ConversionEvent,
    CurrencyRate,
    PostbackAttempt,
    TrackingSettings,
)
# Goal rows a program page could change.
GOAL_MODELS = (Goal, GoalProgress, MonthlyReview, Notification)
PROGRAM_PREFIXES = ("p/<slug:program_slug>/", "portal/<slug:program_slug>/", "api/v1/programs/<slug:program_slug>/")


@dataclass(frozen=True)
class Route:
    """How to call one program route, and who may."""

    who: str  # "staff", "managing", "owner", "affiliate" or "public"
    kwargs: Callable[[World], dict] = lambda world: {}
    post: dict | None = None  # form data for a POST; None: the route is only read with GET
    api: bool = False
    get: bool = True  # False for POST-only actions (they answer GET with 405 to everyone allowed)
    object_kwargs: tuple[str, ...] = field(default=())  # kwargs that name another program's row


def tracking_rows(world: World) -> dict:
    """One row of each tracking model a route can name, in ``world``'s program (created once per test)."""
    with scopes_disabled():
        program = world.program
        offer = Offer.objects.filter(program=program, name="Isolation offer").first() or OfferFactory(
            program=program, name="Isolation offer", destination_url=f"https://{program.slug}.shop.test/"
        )
        link = Link.objects.filter(program=program, offer=offer).first() or LinkFactory(
            program=program, offer=offer, affiliate=world.affiliate
        )
        conversion = Conversion.objects.filter(program=program, order_id="ISO-1").first() or ConversionFactory(
            program=program, order_id="ISO-1", affiliate=world.affiliate, offer=offer, link=link
        )
        attempt = PostbackAttempt.objects.filter(program=program).first() or PostbackAttemptFactory(program=program)
        rule = CommissionRule.objects.filter(program=program).first() or CommissionRuleFactory(
            plan=CommissionPlanFactory(program=program)
        )
        coupon = Coupon.objects.filter(program=program).first() or Coupon.objects.create(
            program=program, code=f"{program.slug.upper()}10", affiliate=world.affiliate
        )
        cap = Cap.objects.filter(program=program).first() or Cap.objects.create(
            program=program, offer=offer, metric="conversions", period="day", limit=10
        )
    return {
        "offer_id": offer.pk,
        "link_id": link.pk,
        "conversion_id": conversion.pk,
        "attempt_id": attempt.pk,
        "rule_id": rule.pk,
        "plan_id": rule.plan_id,
        "coupon_id": coupon.pk,
        "cap_id": cap.pk,
    }


@pytest.fixture(autouse=True)
def _tracking_rows(request):
    """Every program in a test holds tracking rows before the first snapshot, so changes to them show."""
    for name in ("alice", "bob"):
        if name in request.fixturenames:
            tracking_rows(request.getfixturevalue(name))
            a_conversion(request.getfixturevalue(name))  # the API routes' row, also before the snapshot


def row(key: str) -> Callable[[World], dict]:
    return lambda world: {key: tracking_rows(world)[key]}


def with_rows(world: World) -> dict:
    """No URL kwargs, but the rows a page needs to render with content (e.g. a plan for a new rule)."""
    tracking_rows(world)
    return {}


def a_conversion(world: World) -> dict:
    """A conversion of ``world``'s program, for the routes that name one."""
    from tracking.models import Conversion

    with scopes_disabled():
        conversion = Conversion.objects.filter(program=world.program, order_id="ISO-API").first()
        if conversion is None:
            conversion = Conversion.objects.create(
                program=world.program, kind="sale", order_id="ISO-API", currency="EUR", source="api"
            )
    return {"conversion_id": conversion.pk}


def goal_rows(world: World) -> dict:
    """A goal, a manual goal (of the signed-in affiliate), a shared review and a notification in ``world``."""
    with scopes_disabled():
        program = world.program
        month = month_of(program, timezone.now())
        goal = Goal.objects.filter(program=program, kind=GoalKind.KPI).first() or Goal.objects.create(
            program=program, affiliate=world.affiliate, month=month, kpi="clicks", target=Decimal(100)
        )
        manual = Goal.objects.filter(program=program, kind=GoalKind.MANUAL).first() or Goal.objects.create(
            program=program,
            affiliate=world.affiliate,
            month=month,
            kind=GoalKind.MANUAL,
            kpi="manual",
            label=f"{program.slug} reviews",
            target=Decimal(4),
        )
        review = MonthlyReview.objects.filter(program=program).first() or MonthlyReview.objects.create(
            program=program, affiliate=world.affiliate, month=previous_month(month), shared_at=timezone.now()
        )
        if not Notification.objects.filter(program=program).exists():
            for user in (world.owner, world.affiliate_user):
                Notification.objects.create(program=program, user=user, message=f"{program.slug} goal met")
    return {"goal_id": goal.pk, "manual_goal_id": manual.pk, "review_id": review.pk, "month": month}


@pytest.fixture(autouse=True)
def _goal_rows(request):
    """Every program in a test holds goal rows before the first snapshot, so changes to them show."""
    for name in ("alice", "bob"):
        if name in request.fixturenames:
            goal_rows(request.getfixturevalue(name))


def goal_row(key: str, url_kwarg: str | None = None) -> Callable[[World], dict]:
    return lambda world: {url_kwarg or key: goal_rows(world)[key]}


ROUTES: dict[str, Route] = {
    "manage:home": Route("staff"),
    "manage:affiliate_list": Route("staff"),
    "manage:affiliate_detail": Route(
        "staff", lambda w: {"affiliate_id": w.pending.pk}, object_kwargs=("affiliate_id",)
    ),
    "manage:affiliate_status": Route(
        "managing",
        lambda w: {"affiliate_id": w.pending.pk},
        post={"to_status": "approved", "reason": ""},
        object_kwargs=("affiliate_id",),
        get=False,
    ),
    "manage:members": Route("owner", post={"email": "new@colleague.test", "role": "manager"}),
    "manage:settings": Route(
        "owner",
        post={"name": "Renamed", "timezone": "UTC", "currency": "USD", "default_cookie_window_days": 7},
    ),
    "portal:home": Route("affiliate"),
    "portal:apply": Route(
        "public",
        post={
            "name": "Intruder",
            "email": "intruder@x.test",
            "password": "a long enough secret 9",
            "accept_terms": "on",
        },
    ),
    # tracking, manager side
    "manage:offer_list": Route("staff", with_rows),
    "manage:offer_create": Route(
        "managing", post={"name": "Intruder offer", "destination_url": "https://evil.test/", "click_id_param": "cid"}
    ),
    "manage:offer_edit": Route(
        "managing",
        row("offer_id"),
        post={"name": "Hijacked", "destination_url": "https://evil.test/", "click_id_param": "cid"},
        object_kwargs=("offer_id",),
    ),
    "manage:link_list": Route("staff", with_rows),
    "manage:link_create": Route("managing", with_rows, post={"affiliate": "1", "offer": "1"}),
    "manage:link_status": Route(
        "managing", row("link_id"), post={"status": "paused"}, object_kwargs=("link_id",), get=False
    ),
    "manage:coupon_list": Route("staff", with_rows),
    "manage:coupon_create": Route("managing", post={"code": "INTRUDER", "active": "on"}),
    "manage:coupon_edit": Route(
        "managing", row("coupon_id"), post={"code": "HIJACKED", "active": ""}, object_kwargs=("coupon_id",)
    ),
    "manage:click_list": Route("staff", with_rows),
    "manage:conversion_list": Route("staff", with_rows),
    "manage:review_queue": Route("staff", with_rows),
    "manage:conversion_create": Route(
        "managing",
        post={
            "kind": "sale",
            "order_id": "X-1",
            "amount": "10",
            "currency": "EUR",
            "status": "approved",
            "coupon": "ALICE10",
            "reason": "intrusion",
        },
    ),
    "manage:conversion_bulk": Route(
        "managing", with_rows, post={"ids": ["1", "2", "3"], "to_status": "rejected", "reason": "x"}, get=False
    ),
    "manage:conversion_detail": Route("staff", row("conversion_id"), object_kwargs=("conversion_id",)),
    "manage:conversion_status": Route(
        "managing",
        row("conversion_id"),
        post={"to_status": "rejected", "reason": "intrusion"},
        object_kwargs=("conversion_id",),
        get=False,
    ),
    "manage:postback_setup": Route("managing"),
    "manage:postback_test": Route(
        "managing", post={"kind": "sale", "amount": "1", "currency": "EUR", "order_id": "intruder-1"}, get=False
    ),
    "manage:postback_log": Route("staff", with_rows),
    "manage:postback_replay": Route("managing", row("attempt_id"), post={}, object_kwargs=("attempt_id",), get=False),
    "manage:rate_list": Route("staff"),
    "manage:rate_create": Route("managing", post={"currency": "USD", "day": "2026-01-05", "rate": "0.9"}),
    "manage:commission_list": Route("staff", with_rows),
    "manage:plan_create": Route("managing", post={"name": "Intruder plan", "is_default": "on"}),
    "manage:rule_create": Route(
        "managing", with_rows, post={"kind": "sale", "rule_type": "flat", "amount": "99", "percent": "0"}
    ),
    "manage:rule_edit": Route(
        "managing",
        row("rule_id"),
        post={"kind": "sale", "rule_type": "flat", "amount": "999", "percent": "0"},
        object_kwargs=("rule_id",),
    ),
    "manage:cap_list": Route("staff", with_rows),
    "manage:cap_create": Route("managing", with_rows, post={"metric": "conversions", "period": "day", "limit": "1"}),
    "manage:cap_edit": Route(
        "managing",
        row("cap_id"),
        post={"metric": "conversions", "period": "day", "limit": "0"},
        object_kwargs=("cap_id",),
    ),
    "manage:tracking_settings": Route(
        "managing",
        post={
            "attribution_model": "first_click",
            "hold_days": "0",
            "fraud_min_seconds_to_convert": "0",
            "fraud_click_flood_count": "1",
            "fraud_click_flood_minutes": "1",
            "fraud_conversion_rate_factor": "1",
        },
    ),
    # tracking, portal side: only the signed-in affiliate's own rows
    "portal:link_list": Route("affiliate", with_rows),
    "portal:link_create": Route("affiliate", with_rows, post={"offer": "1", "name": "intruder"}),
    "portal:link_builder": Route("affiliate", with_rows),
    "portal:click_list": Route("affiliate", with_rows),
    "portal:conversion_list": Route("affiliate", with_rows),
    "portal:conversion_detail": Route("affiliate", row("conversion_id"), object_kwargs=("conversion_id",)),
    # goals, manager side
    "manage:goals": Route("staff"),
    "manage:goal_board": Route("staff", goal_row("month")),
    "manage:goal_create": Route(
        "managing", goal_row("month"), post={"affiliate": "1", "kpi": "clicks", "target": "10", "bonus_type": ""}
    ),
    "manage:goal_bulk": Route(
        "managing",
        goal_row("month"),
        post={
            "tier": "",
            "lines-TOTAL_FORMS": "1",
            "lines-INITIAL_FORMS": "0",
            "lines-0-kpi": "clicks",
            "lines-0-target": "1",
        },
    ),
    "manage:goal_copy": Route("managing", goal_row("month"), post={}),
    "manage:goal_suggest": Route("managing", goal_row("month"), post={"target-1-clicks": "10"}),
    "manage:review_list": Route("staff", lambda w: {"month": previous_month(goal_rows(w)["month"])}),
    "manage:goal_edit": Route(
        "managing", goal_row("goal_id"), post={"target": "1", "bonus_type": ""}, object_kwargs=("goal_id",)
    ),
    "manage:goal_target": Route("managing", goal_row("goal_id"), post={"target": "1"}, object_kwargs=("goal_id",)),
    "manage:goal_delete": Route("managing", goal_row("goal_id"), post={}, object_kwargs=("goal_id",), get=False),
    "manage:goal_manual": Route(
        "managing",
        goal_row("manual_goal_id", "goal_id"),
        post={"value": "9", "note": "intrusion"},
        object_kwargs=("goal_id",),
    ),
    "manage:goal_confirm": Route(
        "managing", goal_row("manual_goal_id", "goal_id"), post={}, object_kwargs=("goal_id",), get=False
    ),
    "manage:review_detail": Route("staff", goal_row("review_id"), object_kwargs=("review_id",)),
    "manage:review_feedback": Route(
        "managing", goal_row("review_id"), post={"feedback": "hijacked"}, object_kwargs=("review_id",), get=False
    ),
    "manage:review_share": Route("managing", goal_row("review_id"), post={}, object_kwargs=("review_id",), get=False),
    "manage:notification_list": Route("staff"),
    "manage:notifications_read": Route("staff", post={}, get=False),
    "manage:notification_badge": Route("staff"),
    # goals, portal side: only the signed-in affiliate's own goals, reviews and notifications
    "portal:goals": Route("affiliate"),
    "portal:goal_report": Route(
        "affiliate",
        goal_row("manual_goal_id", "goal_id"),
        post={"value": "9", "note": "intrusion"},
        object_kwargs=("goal_id",),
    ),
    "portal:review": Route("affiliate", goal_row("review_id"), object_kwargs=("review_id",)),
    "portal:notification_list": Route("affiliate"),
    "portal:notifications_read": Route("affiliate", post={}, get=False),
    "portal:notification_badge": Route("affiliate"),
    "api_affiliate_list": Route("staff", api=True),
    "api_my_affiliate": Route("affiliate", api=True),
    # conversions API: owners and managers with a token
    "api_conversion_create": Route("managing", api=True, get=False, post={"order_id": "INTRUDER-1", "amount": "1"}),
    "api_conversion_status": Route(
        "managing",
        a_conversion,
        api=True,
        get=False,
        post={"status": "rejected", "reason": "intrusion"},
        object_kwargs=("conversion_id",),
    ),
}


PRIVATE = sorted(name for name, route in ROUTES.items() if route.who != "public")
ROLE_HOLDERS = {
    # who: the people of the same program who must NOT get in
    "staff": ("affiliate_user",),
    "managing": ("affiliate_user", "analyst"),
    "owner": ("affiliate_user", "analyst", "manager"),
    "affiliate": ("owner", "manager", "analyst"),
}
ALLOWED = {
    "staff": ("owner", "manager", "analyst"),
    "managing": ("owner", "manager"),
    "owner": ("owner",),
    "affiliate": ("affiliate_user",),
}


def program_route_names() -> set[str]:
    """Names of every URL pattern mounted under a program prefix, walking includes recursively."""
    found: set[str] = set()

    def walk(patterns, prefix: str, namespace: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(
                    pattern.url_patterns, route, f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
                )
            elif isinstance(pattern, URLPattern) and route.startswith(PROGRAM_PREFIXES):
                found.add(f"{namespace}{pattern.name}")

    walk(get_resolver().url_patterns, "", "")
    return found


def snapshot(program: Program) -> dict:
    """Everything of ``program`` a request could change, for before/after comparison."""
    with scopes_disabled():
        return {
            "program": Program.objects.filter(pk=program.pk).values().get(),
            "affiliates": list(Affiliate.objects.filter(program=program).order_by("pk").values()),
            "changes": AffiliateStatusChange.objects.filter(program=program).count(),
            "members": list(Membership.objects.filter(program=program).order_by("pk").values()),
            "invitations": Invitation.objects.filter(program=program).count(),
            **{
                model.__name__: list(model.objects.filter(program=program).order_by("pk").values())
                for model in TRACKING_MODELS
            },
            **{
                model.__name__: list(model.objects.filter(program=program).order_by("pk").values())
                for model in GOAL_MODELS
            },
        }


def bob_names(bob: World) -> list[str]:
    with scopes_disabled():
        return [*Affiliate.objects.filter(program=bob.program).values_list("name", flat=True), bob.program.name]


def call(client, name: str, route: Route, kwargs: dict, *, method: str):
    url = reverse(name, kwargs=kwargs)
    if method == "post":
        return client.post(url, route.post)
    return client.get(url, HTTP_ACCEPT="application/json" if route.api else "text/html")


def login(client, user: User, route: Route) -> None:
    if route.api:
        token, _ = Token.objects.get_or_create(user=user)
        client.defaults["HTTP_AUTHORIZATION"] = f"Token {token.key}"
    else:
        client.force_login(user)


def methods(route: Route) -> list[str]:
    return [method for method, used in (("get", route.get), ("post", route.post is not None)) if used]


def assert_nothing_leaked(response, bob: World, before: dict) -> None:
    # Without the random CSRF token, which may spell a short name by chance.
    body = unmask_csrf(response.content).decode()
    for name in bob_names(bob):
        assert name not in body
    assert snapshot(bob.program) == before


def test_every_program_route_has_an_isolation_case():
    assert program_route_names() == set(ROUTES)


@pytest.mark.parametrize("name", PRIVATE)
def test_member_of_another_program_gets_404(client, alice, bob, name):
    route = ROUTES[name]
    before = snapshot(bob.program)
    alice_before = snapshot(alice.program)
    # bob's owner, and bob's affiliate for portal routes: each has every role of their own program.
    for intruder in (bob.owner, bob.affiliate_user):
        login(client, intruder, route)
        for method in methods(route):
            response = call(
                client, name, route, {"program_slug": alice.program.slug, **route.kwargs(alice)}, method=method
            )
            assert response.status_code == 404, (intruder, method)
    assert snapshot(alice.program) == alice_before
    assert snapshot(bob.program) == before


@pytest.mark.parametrize("name", PRIVATE)
def test_wrong_role_of_same_program_gets_404(client, alice, bob, name):
    route = ROUTES[name]
    before = snapshot(bob.program)
    alice_before = snapshot(alice.program)
    for attribute in ROLE_HOLDERS[route.who]:
        client.logout()
        client.defaults.pop("HTTP_AUTHORIZATION", None)
        login(client, getattr(alice, attribute), route)
        for method in methods(route):
            response = call(
                client, name, route, {"program_slug": alice.program.slug, **route.kwargs(alice)}, method=method
            )
            assert response.status_code == 404, (attribute, method)
    assert snapshot(alice.program) == alice_before
    assert_nothing_leaked(response, bob, before)


@pytest.mark.parametrize("name", PRIVATE)
def test_anonymous_is_sent_to_login(client, alice, bob, name):
    route = ROUTES[name]
    before = snapshot(alice.program)
    for method in methods(route):
        response = call(client, name, route, {"program_slug": alice.program.slug, **route.kwargs(alice)}, method=method)
        if route.api:
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "not_authenticated"
        else:
            assert response.status_code == 302
            assert response["Location"].startswith(reverse("login") + "?next=")
    assert snapshot(alice.program) == before


@pytest.mark.parametrize("name", PRIVATE)
def test_allowed_role_gets_the_page_without_other_programs_rows(client, alice, bob, name):
    route = ROUTES[name]
    before = snapshot(bob.program)
    for attribute in ALLOWED[route.who]:
        client.logout()
        client.defaults.pop("HTTP_AUTHORIZATION", None)
        login(client, getattr(alice, attribute), route)
        response = call(client, name, route, {"program_slug": alice.program.slug, **route.kwargs(alice)}, method="get")
        assert response.status_code == (200 if route.get else 405), attribute
        assert_nothing_leaked(response, bob, before)


@pytest.mark.parametrize("name", sorted(name for name, route in ROUTES.items() if route.object_kwargs))
def test_another_programs_row_under_own_slug_gets_404(client, alice, bob, name):
    route = ROUTES[name]
    before = snapshot(bob.program)
    login(client, alice.owner, route)
    foreign = {key: value for key, value in route.kwargs(bob).items() if key in route.object_kwargs}
    for method in methods(route):
        response = call(
            client, name, route, {"program_slug": alice.program.slug, **route.kwargs(alice), **foreign}, method=method
        )
        assert response.status_code == 404, method
    assert snapshot(bob.program) == before


def test_missing_program_and_foreign_program_look_the_same(client, alice, bob):
    client.force_login(bob.manager)
    missing_path = reverse("manage:home", kwargs={"program_slug": "no-such-program"})
    foreign_path = reverse("manage:home", kwargs={"program_slug": alice.program.slug})
    missing, foreign = client.get(missing_path), client.get(foreign_path)
    assert missing.status_code == foreign.status_code == 404
    # The CSRF token is masked afresh on every render, and the language switcher sends people back to the
    # path they asked for; everything else must be identical.
    assert unmask_csrf(missing.content).replace(missing_path.encode(), b"PATH") == unmask_csrf(foreign.content).replace(
        foreign_path.encode(), b"PATH"
    )


def unmask_csrf(content: bytes) -> bytes:
    return re.sub(rb'("X-CSRFToken": "|name="csrfmiddlewaretoken" value=")[^"]+', rb"\1", content)


def test_public_application_stays_in_its_program(client, alice, bob):
    before = snapshot(bob.program)
    route = ROUTES["portal:apply"]
    response = call(client, "portal:apply", route, {"program_slug": alice.program.slug}, method="post")
    assert response.status_code == 302
    with scopes_disabled():
        created = Affiliate.objects.get(email="intruder@x.test")
    assert created.program == alice.program
    assert snapshot(bob.program) == before
