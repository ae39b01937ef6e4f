"""Sort and page links as rendered: followed the way a browser follows them, they keep the filter and the sort.

The links come from Django's {% querystring %} tag, which already starts with "?"; a template that put
another "?" in front rendered "??page=2", which a browser sends as a parameter named "?page", so "Next"
showed page 1 again. Building the page 2 URL by hand in a test cannot see that; these tests read the href.
"""

import html
import re
from decimal import Decimal
from urllib.parse import urljoin

import pytest
from django.urls import reverse
from django_scopes import scopes_disabled

from affiliates.models import Affiliate, AffiliateStatus
from tests.factories import AffiliateFactory, ConversionFactory
from tracking.models import Conversion

pytestmark = pytest.mark.django_db


def link(page: str, label: str) -> str:
    """The href of the link labelled ``label``, checked to be the same as its hx-get (htmx follows that one)."""
    anchor = re.search(rf'<a href="([^"]*)" hx-get="([^"]*)"[^>]*>{re.escape(label)}</a>', page)
    assert anchor is not None, f"no link {label!r}"
    href, hx_get = (html.unescape(value) for value in anchor.groups())
    assert href == hx_get
    return href


def follow(client, current_url: str, page: str, label: str) -> tuple[str, str]:
    """Click the link labelled ``label`` on ``page`` (served at ``current_url``): the new URL and its page."""
    target = urljoin(current_url, link(page, label))
    response = client.get(target)
    assert response.status_code == 200
    return target, response.content.decode()


def affiliate_names(page: str) -> list[str]:
    return re.findall(r'<td><a href="/p/\w+/affiliates/\d+/">([^<]+)</a>', page)


def order_ids(page: str) -> list[str]:
    return re.findall(r"<td>(ORD-\d+)</td>", page)


def test_affiliate_list_next_link_continues_the_filtered_sorted_list(client, alice, bob):
    with scopes_disabled():
        for world in (alice, bob):
            for number in range(30):
                AffiliateFactory(
                    program=world.program,
                    status=AffiliateStatus.APPROVED,
                    name=f"member {number:02d} of {world.program.slug}",
                )
        AffiliateFactory(program=alice.program, status=AffiliateStatus.PENDING, name="member 00 pending")
        expected = list(
            Affiliate.objects.filter(program=alice.program, status=AffiliateStatus.APPROVED)
            .order_by("name", "pk")
            .values_list("name", flat=True)
        )
    assert len(expected) == 32  # two approved affiliates of the world and thirty members: two pages
    client.force_login(alice.manager)

    start = reverse("manage:affiliate_list", kwargs={"program_slug": "alice"}) + "?status=approved"
    by_name, first = follow(client, start, client.get(start).content.decode(), "Name")
    on_page_two, second = follow(client, by_name, first, "Next →")
    back, first_again = follow(client, on_page_two, second, "← Previous")

    assert affiliate_names(first) == expected[:25]
    assert "Page 1 of 2" in first
    assert affiliate_names(second) == expected[25:]
    assert "Page 2 of 2" in second
    assert "Next →" not in second
    assert affiliate_names(first_again) == expected[:25]
    assert (by_name.split("?")[1], on_page_two.split("?")[1]) == (
        "status=approved&sort=name",
        "status=approved&sort=name&page=2",
    )
    assert back.split("?")[1] == "status=approved&sort=name&page=1"


def test_conversion_list_next_link_continues_the_filtered_sorted_list(client, alice, bob):
    with scopes_disabled():
        for world in (alice, bob):
            for number in range(40):
                ConversionFactory(
                    program=world.program,
                    order_id=f"ORD-{number:02d}",
                    revenue=Decimal(100 - number),
                    status="pending" if number % 4 else "approved",
                )
        expected = list(
            Conversion.objects.filter(program=alice.program, status="pending")
            .order_by("revenue", "pk")
            .values_list("order_id", flat=True)
        )
    assert len(expected) == 30
    client.force_login(alice.manager)

    start = reverse("manage:conversion_list", kwargs={"program_slug": "alice"}) + "?status=pending"
    by_amount, first = follow(client, start, client.get(start).content.decode(), "Amount")
    _on_page_two, second = follow(client, by_amount, first, "Next →")

    assert order_ids(first) == expected[:25]
    assert order_ids(second) == expected[25:]
    assert expected[:3] == ["ORD-39", "ORD-38", "ORD-37"]  # ascending amount: the last orders are the smallest
    assert "Page 2 of 2" in second
