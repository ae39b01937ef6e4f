"""Admin runs with scopes disabled on purpose: superusers work across programs there."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django_scopes import scopes_disabled


class AdminScopesMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith("/admin/"):
            with scopes_disabled():
                return self.get_response(request)
        return self.get_response(request)
