"""The server-to-server postback endpoint: GET|POST /postback/<program_slug>.

Advertisers' servers call it, so it is CSRF-exempt and takes no session: the per-program token (query
``token`` or header ``X-Goalpost-Token``) authenticates the call, inside ``services.handle_postback``. The
tenancy middleware lets it through (``checked_by_view``) and the view enters the program's scope itself.
"""

import json

from django.http import HttpRequest, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt

from affiliates.models import Program
from affiliates.tenancy import ProgramAccess
from tracking import services
from tracking.hashing import client_ip

MAX_PARAMS = 50


@csrf_exempt
def postback_view(request: HttpRequest, program_slug: str) -> JsonResponse:
    # One query for the program and its tracking settings; any unknown slug gets the same 404.
    program = Program.objects.select_related("tracking_settings").filter(slug=program_slug).first()
    if program is None:
        return JsonResponse(
            {"error": {"code": "not_found", "message": _("No such program."), "field": None}}, status=404
        )
    ip = client_ip(request.META)
    try:
        params = request_params(request)
    except ValueError as error:
        status, body = services.refuse_unreadable_postback(
            program=program, method=request.method, ip=ip, message=str(error)
        )
    else:
        status, body = services.handle_postback(
            program=program, params=params, method=request.method, ip=ip, headers=request.headers
        )
    return JsonResponse(body, status=status)


postback_view.program_access = ProgramAccess(roles=frozenset(), checked_by_view=True)


def request_params(request: HttpRequest) -> dict[str, str]:
    """Query parameters, plus form or JSON-object body parameters of a POST (the body wins), one value each."""
    params = request.GET.dict()
    if request.method == "POST":
        if request.content_type == "application/json":
            try:
                # Numbers stay text: 49.90 must not pass through a float on its way to a Decimal.
                body = json.loads(request.body or b"{}", parse_float=str, parse_int=str)
            except (ValueError, UnicodeDecodeError) as error:
                raise ValueError(_("The body is not valid JSON.")) from error
            if not isinstance(body, dict) or any(isinstance(value, dict | list) for value in body.values()):
                raise ValueError(_("The JSON body must be an object of plain values."))
            params.update({str(name): value for name, value in body.items() if value is not None})
        else:
            params.update(request.POST.dict())
    if len(params) > MAX_PARAMS:
        raise ValueError(_("Too many parameters."))
    return {name: value if isinstance(value, str) else json.dumps(value) for name, value in params.items()}
