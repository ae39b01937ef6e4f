"""Tracking pages of the partner portal: an affiliate sees and builds only their own links, clicks and
conversions; another affiliate's ids answer 404 like missing ones."""

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils.html import escape
from django_scopes import scopes_disabled

from tests.conftest import build_world
from tests.factories import ClickFactory, CommissionPlanFactory, CommissionRuleFactory, ConversionFactory, LinkFactory
from tracking import selectors, services
from tracking.links import create_link, create_offer
from tracking.models import Conversion, Coupon, Link

pytestmark = pytest.mark.django_db


def url(name, world, **kwargs):
    return reverse(f"portal:{name}", kwargs={"program_slug": world.program.slug, **kwargs})


def body(response) -> str:
    return response.content.decode()


def rows(response) -> list[str]:
    found = re.findall(r"<tbody>(.*?)</tbody>", body(response), re.S)
    table = found[-1] if found else ""
    return [" ".join(re.sub(r"<[^>]+>", " ", row).split()) for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)]


@pytest.fixture
def portal(alice, bob):
    """alice's program: an offer, a link and a coupon for each approved affiliate, a 10 % sale rule; bob's has rows."""
    with scopes_disabled():
        program = alice.program
        offer = create_offer(
            program=program,
            name="Spring sale",
            destination_url="https://shop.alice.test/spring",
            allowed_domains="blog.alice.test",
        )
        paused = create_offer(
            program=program, name="Old offer", destination_url="https://shop.alice.test/old", status="paused"
        )
        mine = create_link(program=program, offer=offer, affiliate=alice.affiliate, name="Newsletter")
        theirs = create_link(program=program, offer=offer, affiliate=alice.other_affiliate, name="Their banner")
        Coupon.objects.create(program=program, code="ONE10", affiliate=alice.affiliate)
        Coupon.objects.create(program=program, code="TWO10", affiliate=alice.other_affiliate)
        CommissionRuleFactory(plan=CommissionPlanFactory(program=program), kind="sale", percent=Decimal("10"))
        bob_link = LinkFactory(program=bob.program, affiliate=bob.affiliate, name="Bob link")
    return {"world": alice, "offer": offer, "paused": paused, "mine": mine, "theirs": theirs, "bob_link": bob_link}


def sale(world, order_id: str, coupon: str, amount: str = "100.00") -> Conversion:
    with scopes_disabled():
        conversion, _created = services.record_conversion(
            program=world.program, source="postback", kind="sale", order_id=order_id, amount=amount, coupon=coupon
        )
    return conversion


def test_links_page_lists_only_own_links_with_copyable_urls(client, portal):
    world = portal["world"]
    client.force_login(world.affiliate_user)
    response = client.get(url("link_list", world))
    page = body(response)
    mine = f"http://testserver/c/{portal['mine'].code}"
    assert f'data-copy="{mine}"' in page
    assert portal["theirs"].code not in page
    assert portal["bob_link"].code not in page
    assert "Their banner" not in page
    assert [row.split(" Copy")[0] for row in rows(response)] == [mine]
    assert 'src="/static/js/copy.js"' in page
    assert "<script>" not in page  # no inline scripts


def test_link_builder_adds_the_filled_sub_ids_to_the_url(client, portal):
    world = portal["world"]
    client.force_login(world.affiliate_user)
    response = client.get(
        url("link_builder", world),
        {"link": portal["mine"].pk, "sub1": "newsletter", "sub2": "", "sub3": "april & may"},
        HTTP_HX_REQUEST="true",
    )
    page = body(response)
    built = f"http://testserver/c/{portal['mine'].code}?sub1=newsletter&sub3=april+%26+may"
    assert page.lstrip().startswith('<div id="built"')
    assert f'<code id="built-url" class="url built-url">{escape(built)}</code>' in page
    assert f'data-copy="{escape(built)}"' in page


def test_link_builder_opened_without_a_choice_shows_the_first_own_link(client, portal):
    world = portal["world"]
    client.force_login(world.affiliate_user)
    with scopes_disabled():
        first = selectors.own_links(program=world.program, affiliate=world.affiliate).first()

    response = client.get(url("link_builder", world))

    assert response.status_code == 200
    assert f'<code id="built-url" class="url built-url">http://testserver/c/{first.code}</code>' in body(response)
    assert "Create a link first" not in body(response)


def test_link_builder_page_works_without_javascript(client, portal):
    world = portal["world"]
    client.force_login(world.affiliate_user)
    response = client.get(url("link_builder", world), {"link": portal["mine"].pk, "sub5": "x"})
    assert response.status_code == 200
    assert "<html" in body(response)
    assert escape(f"/c/{portal['mine'].code}?sub5=x") in body(response)


@pytest.mark.parametrize("which", ["theirs", "bob_link", "missing", "junk"])
def test_link_builder_answers_404_for_links_that_are_not_own(client, portal, which):
    world = portal["world"]
    client.force_login(world.affiliate_user)
    link_id = {"missing": "999999", "junk": "1 OR 1=1"}.get(which) or portal[which].pk
    response = client.get(url("link_builder", world), {"link": link_id})
    assert response.status_code == 404
    assert portal["theirs"].code not in body(response)


def test_link_builder_refuses_overlong_sub_ids(client, portal):
    world = portal["world"]
    client.force_login(world.affiliate_user)
    response = client.get(url("link_builder", world), {"link": portal["mine"].pk, "sub1": "x" * 300})
    assert response.status_code == 400
    assert "Ensure this value has at most 255 characters" in body(response)


def test_affiliate_creates_own_link_on_an_allowed_landing_page(client, portal):
    world = portal["world"]
    client.force_login(world.affiliate_user)
    response = client.post(
        url("link_create", world),
        {"offer": portal["offer"].pk, "name": "Blog post", "landing_url": "https://blog.alice.test/review"},
    )
    with scopes_disabled():
        link = Link.objects.get(program=world.program, name="Blog post")
    assert link.affiliate == world.affiliate
    assert response["Location"] == url("link_builder", world) + f"?link={link.pk}"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"landing_url": "https://evil.test/"}, "The landing page must be on one of the offer&#x27;s domains"),
        ({"landing_url": "javascript:alert(1)"}, "Enter a valid URL."),
        ({"landing_url": "http://blog.alice.test/"}, "Enter an https:// address."),
        ({"offer": "PAUSED"}, "Select a valid choice."),
        ({"offer": "BOB"}, "Select a valid choice."),
    ],
)
def test_affiliate_link_form_refuses_bad_input_and_saves_nothing(client, portal, data, message):
    world = portal["world"]
    client.force_login(world.affiliate_user)
    with scopes_disabled():
        before = Link.objects.count()
        bob_offer = portal["bob_link"].offer
    replacements = {"PAUSED": portal["paused"].pk, "BOB": bob_offer.pk}
    post = {"offer": portal["offer"].pk, **{key: replacements.get(value, value) for key, value in data.items()}}
    response = client.post(url("link_create", world), post)
    assert response.status_code == 400
    assert message in body(response)
    with scopes_disabled():
        assert Link.objects.count() == before


def test_affiliate_cannot_create_a_link_for_someone_else(client, portal):
    world = portal["world"]
    client.force_login(world.affiliate_user)
    client.post(url("link_create", world), {"offer": portal["offer"].pk, "affiliate": world.other_affiliate.pk})
    with scopes_disabled():
        assert Link.objects.filter(affiliate=world.other_affiliate).count() == 1
        assert Link.objects.filter(affiliate=world.affiliate).count() == 2


def test_pending_affiliate_is_told_links_come_after_approval(client, portal):
    world = portal["world"]
    with scopes_disabled():
        world.affiliate.status = "pending"
        world.affiliate.save()
    client.force_login(world.affiliate_user)
    assert "Links can be created once your application is approved." in body(client.get(url("link_list", world)))
    response = client.post(url("link_create", world), {"offer": portal["offer"].pk})
    assert response.status_code == 400
    assert "Only approved affiliates can create links." in body(response)


def test_clicks_page_shows_only_own_clicks_in_program_time(client, portal):
    world = portal["world"]
    with scopes_disabled():
        ClickFactory(
            program=world.program,
            link=portal["mine"],
            sub1="newsletter",
            created_at=datetime(2026, 3, 31, 22, 30, tzinfo=UTC),
        )
        ClickFactory(program=world.program, link=portal["theirs"], sub1="their-banner")
    client.force_login(world.affiliate_user)
    response = client.get(url("click_list", world))
    assert rows(response) == [
        f"2026-04-01 00:30:00 Spring sale {portal['mine'].code} · Newsletter sub1=newsletter Direct —"
    ]
    assert "their-banner" not in body(response)


def test_conversions_page_shows_own_conversions_with_status_commission_and_why(client, portal):
    world = portal["world"]
    mine = sale(world, "ORD-1", "ONE10", "80.00")
    sale(world, "ORD-2", "TWO10")
    services.change_conversion_status(
        program=world.program, conversion=mine, to_status="rejected", reason="Order cancelled", actor=world.manager
    )
    client.force_login(world.affiliate_user)
    response = client.get(url("conversion_list", world))
    [row] = rows(response)
    assert "ORD-1" in row
    assert "€80.00" in row
    assert "€8.00" in row
    assert "Rejected" in row
    assert "Changed by a manager" in row
    assert escape(mine.commission_explanation) in body(response)
    assert "ORD-2" not in body(response)
    assert rows(client.get(url("conversion_list", world), {"status": "approved"})) == ["No conversions yet."]


def test_conversion_detail_shows_own_history_and_why_this_payout(client, portal):
    world = portal["world"]
    mine = sale(world, "ORD-1", "ONE10", "50.00")
    services.change_conversion_status(
        program=world.program,
        conversion=mine,
        to_status="rejected",
        reason="Returned within 14 days",
        actor=world.manager,
    )
    client.force_login(world.affiliate_user)
    response = client.get(url("conversion_detail", world, conversion_id=mine.pk))
    page = body(response)
    assert escape(mine.commission_explanation) in page
    assert "€5.00" in page
    assert [row.split(" ", 2)[2] for row in rows(response)] == [
        "— → Pending —",
        "Pending → Rejected Returned within 14 days",
    ]
    assert "Returned within 14 days" in page  # what a manager wrote is for the affiliate
    assert "Received by postback." not in page  # the system's notes (and fraud signals) stay internal
    assert "IP hash" not in page


@pytest.mark.parametrize("whose", ["other affiliate", "unattributed", "other program"])
def test_conversion_detail_of_anything_not_own_is_404(client, portal, bob, whose):
    world = portal["world"]
    if whose == "other affiliate":
        conversion = sale(world, "ORD-2", "TWO10")
    elif whose == "unattributed":
        with scopes_disabled():
            conversion = ConversionFactory(program=world.program, order_id="ORD-3")
    else:
        with scopes_disabled():
            conversion = ConversionFactory(program=bob.program, affiliate=bob.affiliate, order_id="ORD-4")
    client.force_login(world.affiliate_user)
    response = client.get(url("conversion_detail", world, conversion_id=conversion.pk))
    assert response.status_code == 404
    assert conversion.order_id not in body(response)


@pytest.mark.parametrize("count", [1, 3])
def test_portal_conversion_list_query_count_is_constant(client, django_assert_num_queries, count):
    world = build_world(f"portal{count}")
    with scopes_disabled():
        link = LinkFactory(program=world.program, affiliate=world.affiliate)
        ConversionFactory.create_batch(count, program=world.program, affiliate=world.affiliate, offer=link.offer)
        ConversionFactory(program=world.program, affiliate=world.other_affiliate)
    client.force_login(world.affiliate_user)
    # session, user, program, membership, own affiliate, count, page rows, switcher memberships
    with django_assert_num_queries(8):
        response = client.get(url("conversion_list", world))
    assert len(rows(response)) == count


@pytest.mark.parametrize("count", [1, 3])
def test_portal_click_list_query_count_is_constant(client, django_assert_num_queries, count):
    world = build_world(f"portalclicks{count}")
    with scopes_disabled():
        link = LinkFactory(program=world.program, affiliate=world.affiliate)
        ClickFactory.create_batch(count, program=world.program, link=link)
    client.force_login(world.affiliate_user)
    # session, user, program, membership, own affiliate, count, page rows, switcher memberships
    with django_assert_num_queries(8):
        response = client.get(url("click_list", world))
    assert len(rows(response)) == count


def test_portal_nav_links_to_the_tracking_pages(client, portal):
    world = portal["world"]
    client.force_login(world.affiliate_user)
    page = body(client.get(reverse("portal:home", kwargs={"program_slug": world.program.slug})))
    for name in ("link_list", "click_list", "conversion_list"):
        assert f'href="{url(name, world)}"' in page
