"""Portal pages of tracking (/portal/<program_slug>/…): the signed-in affiliate's own links, clicks and
conversions. The affiliate always comes from request.user; ids in URLs only ever find their own rows.
"""

from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _

from affiliates.listing import paginate
from affiliates.portal_views import own_affiliate
from affiliates.tenancy import affiliate_view, get_in_program_or_404
from tracking import selectors
from tracking.forms import SUB_IDS, LinkBuilderForm, PortalConversionFilterForm, PortalLinkForm
from tracking.links import create_link
from tracking.models import Conversion, ConversionStatus
from tracking.views import CLICK_PATH, add_service_error, in_program_time, list_response


def tracking_url(request: HttpRequest, code: str, subs: dict[str, str] | None = None) -> str:
    """The full click URL of a link, with the sub-IDs that are filled in."""
    url = request.build_absolute_uri(f"{CLICK_PATH}{code}")
    query = urlencode([(name, value) for name, value in (subs or {}).items() if value])
    return f"{url}?{query}" if query else url


def portal_url(request: HttpRequest, name: str, **kwargs) -> str:
    return reverse(f"portal:{name}", kwargs={"program_slug": request.program.slug, **kwargs})


def builder_context(request: HttpRequest, links, data) -> dict:
    """The link builder's form and, when it is valid, the URL it builds."""
    form = LinkBuilderForm(data, links=links)
    built = ""
    if form.is_bound and form.is_valid():
        subs = {name: form.cleaned_data[name] for name in SUB_IDS}
        built = tracking_url(request, form.cleaned_data["link"].code, subs)
    return {"builder": form, "built_url": built}


@affiliate_view
@in_program_time
def link_list(request: HttpRequest, program_slug: str) -> HttpResponse:
    affiliate = own_affiliate(request)
    links = selectors.own_links(program=request.program, affiliate=affiliate)
    page = paginate(request, links)
    first = page.object_list[0] if page.object_list else None
    context = {
        "affiliate": affiliate,
        "page": page,
        "click_base": request.build_absolute_uri(CLICK_PATH),
        "form": PortalLinkForm(program=request.program),
        **builder_context(request, links, {"link": first.pk} if first else None),
    }
    return list_response(request, "tracking/portal/link_list.html", context)


@affiliate_view
def link_create(request: HttpRequest, program_slug: str) -> HttpResponse:
    program = request.program
    affiliate = own_affiliate(request)
    form = PortalLinkForm(request.POST or None, program=program)
    if request.method == "POST" and form.is_valid():
        try:
            link = create_link(program=program, affiliate=affiliate, **form.cleaned_data)
        except ValidationError as error:
            add_service_error(form, error)
        else:
            messages.success(request, _("Your link is ready: %(code)s.") % {"code": link.code})
            return redirect(f"{portal_url(request, 'link_builder')}?link={link.pk}")
    return render(
        request,
        "tracking/portal/link_create.html",
        {"form": form, "affiliate": affiliate},
        status=400 if form.errors else 200,
    )


@affiliate_view
def link_builder(request: HttpRequest, program_slug: str) -> HttpResponse:
    """The tracking URL of one of the affiliate's links with sub-IDs; htmx refreshes it as fields change."""
    affiliate = own_affiliate(request)
    links = selectors.own_links(program=request.program, affiliate=affiliate)
    link_id = request.GET.get("link", "")
    # Another affiliate's link answers like a missing one: 404, not a form error that confirms it exists.
    if link_id and not (link_id.isdigit() and links.filter(pk=link_id).exists()):
        raise Http404
    first = None if request.GET else links.first()
    # Opened without a choice, the builder shows the URL of the affiliate's first link, as the link list does.
    context = builder_context(request, links, request.GET or ({"link": first.pk} if first else None))
    status = 400 if context["builder"].errors else 200
    template = "tracking/portal/_builder.html#built" if request.htmx else "tracking/portal/link_builder.html"
    return render(request, template, {"affiliate": affiliate, **context}, status=status)


@affiliate_view
@in_program_time
def click_list(request: HttpRequest, program_slug: str) -> HttpResponse:
    affiliate = own_affiliate(request)
    clicks = selectors.own_clicks(program=request.program, affiliate=affiliate)
    return list_response(request, "tracking/portal/click_list.html", {"page": paginate(request, clicks)})


@affiliate_view
@in_program_time
def conversion_list(request: HttpRequest, program_slug: str) -> HttpResponse:
    affiliate = own_affiliate(request)
    filters = PortalConversionFilterForm(request.GET).values()
    conversions = selectors.own_conversions(program=request.program, affiliate=affiliate, status=filters["status"])
    return list_response(
        request,
        "tracking/portal/conversion_list.html",
        {"page": paginate(request, conversions), "filters": filters, "statuses": ConversionStatus.choices},
    )


@affiliate_view
@in_program_time
def conversion_detail(request: HttpRequest, program_slug: str, conversion_id: int) -> HttpResponse:
    affiliate = own_affiliate(request)
    conversion = get_in_program_or_404(
        Conversion.objects.select_related("offer"), request.program, pk=conversion_id, affiliate=affiliate
    )
    events = selectors.conversion_events(program=request.program, conversion=conversion)
    return render(request, "tracking/portal/conversion_detail.html", {"conversion": conversion, "events": events})
