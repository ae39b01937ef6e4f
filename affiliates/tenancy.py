"""Tenancy plumbing: which program a request is for, who may see it, and the scope it runs in.

Every page under /p/<program_slug>/ and /portal/<program_slug>/ declares who may open it with
``@program_view``. The middleware resolves the URL, loads the program, checks the user's membership and
role, and runs the view inside ``scope(program=…)`` so any tenant query without the program raises.
A missing program and a program the user does not belong to give the same 404.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from django.contrib.auth.views import redirect_to_login
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from django_scopes import scope

from affiliates.models import MANAGING_ROLES, STAFF_ROLES, Membership, Program, Role

PROGRAM_URL_KWARG = "program_slug"
M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class ProgramAccess:
    roles: frozenset[str]
    public: bool = False
    checked_by_view: bool = False  # API views authenticate by token and check membership themselves


def program_view(*, roles: Iterable[str] = (), public: bool = False) -> Callable:
    """Declare which roles may open a program page; ``public`` pages are open to anyone."""

    def decorate(view: Callable) -> Callable:
        view.program_access = ProgramAccess(roles=frozenset(roles), public=public)
        return view

    return decorate


staff_view = program_view(roles=STAFF_ROLES)
managing_view = program_view(roles=MANAGING_ROLES)
owner_view = program_view(roles={Role.OWNER})
affiliate_view = program_view(roles={Role.AFFILIATE})


class ProgramMiddleware:
    """Resolve the program from the URL, check membership, and enter its scope for the request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.program = None
        request.membership = None
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return self.get_response(request)
        slug = match.kwargs.get(PROGRAM_URL_KWARG)
        if slug is None:
            return self.get_response(request)

        # Fail closed: a program route that forgot to declare its access is open to nobody.
        access: ProgramAccess | None = getattr(match.func, "program_access", None)
        if access is None:
            raise Http404
        if access.checked_by_view:
            return self.get_response(request)
        if not access.public and not request.user.is_authenticated:
            # Anonymous visitors learn nothing about which programs exist.
            return redirect_to_login(request.get_full_path())
        program = Program.objects.filter(slug=slug).first()
        if program is None:
            raise Http404
        with scope(program=program):
            membership = None
            if request.user.is_authenticated:
                membership = Membership.objects.filter(program=program, user=request.user).first()
            if not access.public and (membership is None or membership.role not in access.roles):
                raise Http404
            request.program = program
            request.membership = membership
            return self.get_response(request)


def get_in_program_or_404(queryset: QuerySet[M], program: Program, **lookup) -> M:
    """Fetch one row of ``program``; a missing row and another program's row give the same 404."""
    obj = queryset.filter(program=program, **lookup).first()
    if obj is None:
        raise Http404
    return obj
