"""Every manager and portal page renders for the role it is meant for."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_manager_pages_render_for_manager(client, alice):
    client.force_login(alice.manager)
    slug = alice.program.slug
    home = client.get(reverse("manage:home", kwargs={"program_slug": slug}))
    assert home.status_code == 200
    assert "alice applicant" in home.content.decode()
    listing = client.get(reverse("manage:affiliate_list", kwargs={"program_slug": slug}))
    assert listing.status_code == 200
    assert "alice partner one" in listing.content.decode()
