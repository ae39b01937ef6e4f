"""API access: the program comes from the URL and the caller's credentials, checked before any query."""

from contextlib import ExitStack

from django.http import Http404
from django_scopes import scope
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from affiliates.models import STAFF_ROLES, Membership, Program
from affiliates.tenancy import ProgramAccess


class ProgramAPIView(APIView):
    """Base for /api/v1/programs/<slug>/… endpoints.

    After DRF authenticates the caller, their membership in the program is checked (a missing program and
    a program they do not belong to give the same 404), and the handler runs inside the program's scope.
    """

    allowed_roles: frozenset[str] = STAFF_ROLES

    @classmethod
    def as_view(cls, **initkwargs):
        view = super().as_view(**initkwargs)
        view.program_access = ProgramAccess(roles=cls.allowed_roles, checked_by_view=True)
        return view

    def initial(self, request: Request, *args, **kwargs) -> None:
        self._scope_stack = ExitStack()
        super().initial(request, *args, **kwargs)  # authenticates; unauthenticated callers stop here
        program = Program.objects.filter(slug=kwargs.get("program_slug")).first()
        if program is None:
            raise Http404
        self._scope_stack.enter_context(scope(program=program))
        membership = Membership.objects.filter(program=program, user=request.user).first()
        if membership is None or membership.role not in self.allowed_roles:
            raise Http404
        self.program = program
        self.membership = membership

    def finalize_response(self, request: Request, response: Response, *args, **kwargs) -> Response:
        try:
            return super().finalize_response(request, response, *args, **kwargs)
        finally:
            stack = getattr(self, "_scope_stack", None)
            if stack is not None:
                stack.close()
