"""The server-to-server postback endpoint: GET|POST /postback/<program_slug>.

Advertisers' servers call it, so it is CSRF-exempt and takes no session: the per-program token (query
``token`` or header ``X-Goalpost-Token``) authenticates the call, inside ``services.handle_postback``. The
tenancy middleware lets it through (``checked_by_view``) and the view enters the program's scope itself.
"""

import json
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl

from django.core.exceptions import ValidationError
from django.core.handlers.wsgi import WSGIRequest
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.http.request import HttpHeaders
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt

from affiliates.models import Program
from affiliates.tenancy import ProgramAccess
from tracking import hotpath, services
from tracking.attribution import parse_click_id
from tracking.hashing import client_ip
from tracking.models import ConversionKind

MAX_PARAMS = 50


@csrf_exempt
def postback_view(request: HttpRequest, program_slug: str) -> JsonResponse:
    """The endpoint for the test client and ``manage.py runserver``; gunicorn's entry point (config.wsgi) calls
    ``answer_postback`` itself, without building a request."""
    status, body = answer_postback(program_slug, request.META, lambda: request_params(request))
    return JsonResponse(body, status=status)


postback_view.program_access = ProgramAccess(roles=frozenset(), checked_by_view=True)


def answer_postback(slug: str, meta: Mapping[str, str], read_params: Callable[[], dict]) -> tuple[int, dict]:
    """(HTTP status, JSON body) of a postback to ``slug``: ``meta`` is the request's WSGI environ (method,
    sender's address, headers), ``read_params`` reads its parameters (ValueError: unreadable, answered 400).
    On the PostgreSQL hot path the read and the write of a new conversion share one cursor."""
    if not hotpath.enabled():
        return _answer(slug, meta, read_params, None)
    with connection.cursor() as cursor:
        return _answer(slug, meta, read_params, cursor)


def _answer(slug: str, meta: Mapping[str, str], read_params: Callable[[], dict], cursor) -> tuple[int, dict]:
    try:
        params, unreadable = read_params(), None
    except ValueError as error:
        params, unreadable = {}, str(error)
    program, context = load_program(slug, params, cursor=cursor)
    if program is None:  # any unknown slug gets the same 404
        return 404, {"error": {"code": "not_found", "message": _("No such program."), "field": None}}
    ip, method = client_ip(meta), meta.get("REQUEST_METHOD", "GET")
    if unreadable is not None:
        return services.refuse_unreadable_postback(program=program, method=method, ip=ip, message=unreadable)
    return services.handle_postback(
        program=program, params=params, method=method, ip=ip, headers=postback_headers(meta), context=context
    )


# The only headers the postback protocol reads, and their WSGI names.
HEADER_KEYS = {name: HttpHeaders.to_wsgi_name(name) for name in services.PROTOCOL_HEADERS}


def postback_headers(meta: Mapping[str, str]) -> dict[str, str]:
    """The request's postback headers (token, signature): all handle_postback reads, without building every
    header of the request into ``request.headers``."""
    return {name: meta[key] for name, key in HEADER_KEYS.items() if key in meta}


def load_program(
    slug: str, params: dict[str, str], *, cursor=None
) -> tuple[Program | None, hotpath.PostbackContext | None]:
    """The program of ``slug`` with its tracking settings, in one query. On PostgreSQL the same query loads the
    postback's click and commission rules too (tracking/hotpath.py); the parameters are only peeked at here,
    and checked properly later."""
    if not hotpath.enabled():
        return Program.objects.select_related("tracking_settings").filter(slug=slug).first(), None
    try:
        click_id = parse_click_id(params.get("click_id"))
    except ValidationError:
        click_id = None
    kind = str(params.get("kind") or ConversionKind.SALE).strip().lower()
    context = hotpath.read_postback_context(slug=slug, click_id=click_id, kind=kind, cursor=cursor)
    return (context.program, context) if context is not None else (None, None)


def query_params(query_string: str) -> dict[str, str]:
    """The parameters of a WSGI ``QUERY_STRING``, one value each (the last), as ``request.GET.dict()`` reads
    them: UTF-8, or Latin-1 when it is not UTF-8; blank values kept. More than MAX_PARAMS: ValueError."""
    raw = query_string.encode("iso-8859-1")  # WSGI carries the bytes as Latin-1 text
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        text = raw.decode("iso-8859-1")
    try:
        return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_PARAMS))
    except ValueError:  # parse_qsl's only ValueError here is max_num_fields
        raise ValueError(_("Too many parameters.")) from None


def wsgi_params(environ: Mapping) -> dict[str, str]:
    """``request_params`` of a WSGI environ: a GET is read from the query string without building a request."""
    if environ.get("REQUEST_METHOD") == "POST":
        return request_params(WSGIRequest(environ))
    return query_params(environ.get("QUERY_STRING", ""))


def request_params(request: HttpRequest) -> dict[str, str]:
    """Query parameters, plus form or JSON-object body parameters of a POST (the body wins), one value each."""
    params = query_params(request.META.get("QUERY_STRING", ""))
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
