"""The product URLconf plus /bare/<code>: a Django view that only answers 302, the yardstick of bench/click.py."""

from django.http import HttpRequest, HttpResponseRedirect
from django.urls import path

from config.urls import urlpatterns as product_urlpatterns


def bare_redirect(request: HttpRequest, code: str) -> HttpResponseRedirect:
    return HttpResponseRedirect("https://shop.bench.test/landing?lang=en")


# First, so it resolves at least as fast as any product route: the comparison flatters the yardstick.
urlpatterns = [path("bare/<str:code>", bare_redirect), *product_urlpatterns]
