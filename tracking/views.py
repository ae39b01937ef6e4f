"""Manager pages of tracking (/p/<program_slug>/…): offers, links, coupons, clicks, conversions, postbacks,
currency rates, commission rules and caps. Analysts read; owners and managers change.
"""

import json
from collections.abc import Callable
from functools import wraps
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_POST

from affiliates.listing import Column, headers, paginate
from affiliates.services import can_manage
from affiliates.tenancy import get_in_program_or_404, managing_view, staff_view
from tracking import selectors, services
from tracking.forms import (
    BulkConversionForm,
    CapForm,
    ClickFilterForm,
    CommissionPlanForm,
    CommissionRuleForm,
    ConversionFilterForm,
    ConversionStatusForm,
    CouponForm,
    CurrencyRateForm,
    LinkFilterForm,
    ManagerLinkForm,
    ManualConversionForm,
    OfferForm,
    PostbackFilterForm,
    PostbackTestForm,
    RateFilterForm,
    TrackingSettingsForm,
)
from tracking.hashing import client_ip
from tracking.labels import reason_label
from tracking.links import create_link, create_offer, set_link_status, tracking_settings, update_offer
from tracking.models import (
    Cap,
    CommissionRule,
    Conversion,
    ConversionKind,
    ConversionStatus,
    Coupon,
    CurrencyRate,
    Link,
    Offer,
    PostbackAttempt,
    TrafficSource,
)

CLICK_PATH = "/c/"

ACTION_ORDER = (ConversionStatus.APPROVED, ConversionStatus.REJECTED, ConversionStatus.REVERSED)


def status_actions(conversion: Conversion) -> list[str]:
    """The moves a manager is offered for ``conversion``; the service still checks each one."""
    allowed = services.ALLOWED_TRANSITIONS.get(conversion.status, frozenset())
    return [status for status in ACTION_ORDER if status in allowed]


CLICK_COLUMNS = [
    Column(gettext_lazy("Time"), "time"),
    Column(gettext_lazy("Affiliate"), "affiliate"),
    Column(gettext_lazy("Offer · link")),
    Column(gettext_lazy("Sub-IDs")),
    Column(gettext_lazy("Source"), "source"),
    Column(gettext_lazy("Country")),
    Column(gettext_lazy("Flags")),
]
CONVERSION_COLUMNS = [
    Column(gettext_lazy("Time"), "time"),
    Column(gettext_lazy("Kind"), "kind"),
    Column(gettext_lazy("Order")),
    Column(gettext_lazy("Affiliate"), "affiliate"),
    Column(gettext_lazy("Amount"), "amount"),
    Column(gettext_lazy("Commission"), "commission"),
    Column(gettext_lazy("Status"), "status"),
]
LINK_COLUMNS = [
    Column(gettext_lazy("Link")),
    Column(gettext_lazy("Affiliate"), "affiliate"),
    Column(gettext_lazy("Offer"), "offer"),
    Column(gettext_lazy("Status"), "status"),
    Column(gettext_lazy("Created"), "created"),
]


def in_program_time(view: Callable) -> Callable:
    """Render times in the program's time zone and read typed dates in it, for this request only."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        with timezone.override(ZoneInfo(request.program.timezone)):
            return view(request, *args, **kwargs)

    return wrapper


def list_response(request: HttpRequest, template: str, context: dict) -> HttpResponse:
    """The full page, or only its ``results`` partial for an htmx request from the same page."""
    response = render(request, f"{template}#results" if request.htmx else template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


def add_service_error(form: Form, error: ValidationError) -> None:
    """Show a service's ValidationError on the field it names, or above the form."""
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)


def form_page(
    request: HttpRequest,
    form: Form,
    *,
    title: str,
    save: Callable[[dict], object],
    success_url: str | Callable[[object], str],
    success_message: str,
    back_url: str,
    intro: str = "",
) -> HttpResponse:
    """A create or edit page: save through ``save`` on a valid POST, else (re-)render with errors (400)."""
    if request.method == "POST" and form.is_valid():
        try:
            saved = save(form.cleaned_data)
        except ValidationError as error:
            add_service_error(form, error)
        else:
            messages.success(request, success_message)
            return redirect(success_url(saved) if callable(success_url) else success_url)
    context = {"form": form, "title": title, "back_url": back_url, "intro": intro}
    return render(request, "tracking/form_page.html", context, status=400 if form.errors else 200)


def url_of(request: HttpRequest, name: str, **kwargs) -> str:
    return reverse(f"manage:{name}", kwargs={"program_slug": request.program.slug, **kwargs})


def click_base_url(request: HttpRequest) -> str:
    return request.build_absolute_uri(CLICK_PATH)


# Offers


@staff_view
@in_program_time
def offer_list(request: HttpRequest, program_slug: str) -> HttpResponse:
    offers = selectors.offers_for_list(program=request.program)
    return list_response(
        request,
        "tracking/offer_list.html",
        {"page": paginate(request, offers), "can_manage": can_manage(request.membership)},
    )


@managing_view
def offer_create(request: HttpRequest, program_slug: str) -> HttpResponse:
    program = request.program
    form = OfferForm(request.POST or None, program=program, initial={"cookie_window_days": 30})
    return form_page(
        request,
        form,
        title=_("New offer"),
        save=lambda data: create_offer(program=program, **data),
        success_url=url_of(request, "offer_list"),
        success_message=_("Offer created."),
        back_url=url_of(request, "offer_list"),
    )


@managing_view
def offer_edit(request: HttpRequest, program_slug: str, offer_id: int) -> HttpResponse:
    program = request.program
    offer = get_in_program_or_404(Offer.objects, program, pk=offer_id)
    form = OfferForm(request.POST or None, program=program, instance=Offer.objects.get(pk=offer.pk))
    return form_page(
        request,
        form,
        title=_("Edit offer %(name)s") % {"name": offer.name},
        save=lambda data: update_offer(program=program, offer=offer, **data),
        success_url=url_of(request, "offer_list"),
        success_message=_("Offer saved."),
        back_url=url_of(request, "offer_list"),
    )


# Links


@staff_view
@in_program_time
def link_list(request: HttpRequest, program_slug: str) -> HttpResponse:
    program = request.program
    filters = LinkFilterForm(request.GET).values()
    links = selectors.links_for_list(
        program=program,
        affiliate_id=filters["affiliate"],
        offer_id=filters["offer"],
        status=filters["status"],
        search=filters["q"],
        sort=filters["sort"],
    )
    return list_response(
        request,
        "tracking/link_list.html",
        {
            "page": paginate(request, links),
            "filters": filters,
            "headers": headers(LINK_COLUMNS, filters["sort"]),
            "affiliates": selectors.affiliates_for_choice(program=program),
            "offers": Offer.objects.filter(program=program).order_by("name"),
            "statuses": Link.Status.choices,
            "click_base": click_base_url(request),
            "can_manage": can_manage(request.membership),
        },
    )


@managing_view
def link_create(request: HttpRequest, program_slug: str) -> HttpResponse:
    program = request.program
    form = ManagerLinkForm(request.POST or None, program=program)
    return form_page(
        request,
        form,
        title=_("New link"),
        intro=_("A tracking link for an approved affiliate and an active offer."),
        save=lambda data: create_link(program=program, **data),
        success_url=url_of(request, "link_list"),
        success_message=_("Link created."),
        back_url=url_of(request, "link_list"),
    )


@require_POST
@managing_view
def link_status(request: HttpRequest, program_slug: str, link_id: int) -> HttpResponse:
    link = get_in_program_or_404(Link.objects, request.program, pk=link_id)
    status = request.POST.get("status", "")
    if status not in Link.Status.values:
        messages.error(request, _("Choose a valid status."))
    else:
        set_link_status(program=request.program, link=link, status=status)
        messages.success(
            request, _("Link %(code)s is now %(status)s.") % {"code": link.code, "status": link.get_status_display()}
        )
    return redirect(url_of(request, "link_list"))


# Coupons


@staff_view
@in_program_time
def coupon_list(request: HttpRequest, program_slug: str) -> HttpResponse:
    coupons = selectors.coupons_for_list(program=request.program)
    return list_response(  # its page links fetch the results partial with htmx
        request,
        "tracking/coupon_list.html",
        {"page": paginate(request, coupons), "can_manage": can_manage(request.membership)},
    )


def save_model_form(form, program) -> None:
    instance = form.save(commit=False)
    instance.program = program
    instance.full_clean()
    instance.save()


@managing_view
def coupon_create(request: HttpRequest, program_slug: str) -> HttpResponse:
    form = CouponForm(request.POST or None, program=request.program)
    return form_page(
        request,
        form,
        title=_("New coupon"),
        intro=_("Conversions that carry this code and no click id are credited to its affiliate."),
        save=lambda data: save_model_form(form, request.program),
        success_url=url_of(request, "coupon_list"),
        success_message=_("Coupon saved."),
        back_url=url_of(request, "coupon_list"),
    )


@managing_view
def coupon_edit(request: HttpRequest, program_slug: str, coupon_id: int) -> HttpResponse:
    coupon = get_in_program_or_404(Coupon.objects, request.program, pk=coupon_id)
    form = CouponForm(request.POST or None, program=request.program, instance=coupon)
    return form_page(
        request,
        form,
        title=_("Coupon %(code)s") % {"code": coupon.code},
        save=lambda data: save_model_form(form, request.program),
        success_url=url_of(request, "coupon_list"),
        success_message=_("Coupon saved."),
        back_url=url_of(request, "coupon_list"),
    )


# Clicks


@staff_view
@in_program_time
def click_list(request: HttpRequest, program_slug: str) -> HttpResponse:
    program = request.program
    filters = ClickFilterForm(request.GET).values()
    clicks = selectors.clicks_for_list(
        program=program,
        affiliate_id=filters["affiliate"],
        offer_id=filters["offer"],
        source=filters["source"],
        sub_id=filters["sub"],
        bots=filters["bots"],
        start=filters["start"],
        end=filters["end"],
        sort=filters["sort"],
    )
    return list_response(
        request,
        "tracking/click_list.html",
        {
            "page": paginate(request, clicks),
            "filters": filters,
            "headers": headers(CLICK_COLUMNS, filters["sort"]),
            "affiliates": selectors.affiliates_for_choice(program=program),
            "offers": Offer.objects.filter(program=program).order_by("name"),
            "sources": TrafficSource.choices,
        },
    )


# Conversions


@staff_view
@in_program_time
def conversion_list(request: HttpRequest, program_slug: str) -> HttpResponse:
    program = request.program
    filters = ConversionFilterForm(request.GET).values()
    conversions = selectors.conversions_for_list(
        program=program,
        status=filters["status"],
        kind=filters["kind"],
        affiliate_id=filters["affiliate"],
        offer_id=filters["offer"],
        source=filters["source"],
        search=filters["q"],
        in_review=filters["in_review"],
        start=filters["start"],
        end=filters["end"],
        sort=filters["sort"],
    )
    return list_response(
        request,
        "tracking/conversion_list.html",
        {
            "page": paginate(request, conversions),
            "filters": filters,
            "headers": headers(CONVERSION_COLUMNS, filters["sort"]),
            "num_columns": [5, 6],
            "affiliates": selectors.affiliates_for_choice(program=program),
            "offers": Offer.objects.filter(program=program).order_by("name"),
            "statuses": ConversionStatus.choices,
            "kinds": ConversionKind.choices,
            "sources": Conversion.Source.choices,
            "can_manage": can_manage(request.membership),
        },
    )


@staff_view
@in_program_time
def review_queue(request: HttpRequest, program_slug: str) -> HttpResponse:
    conversions = selectors.review_queue(program=request.program)
    return list_response(
        request,
        "tracking/review_queue.html",
        {"page": paginate(request, conversions), "can_manage": can_manage(request.membership)},
    )


# Currency rates


@staff_view
def rate_list(request: HttpRequest, program_slug: str) -> HttpResponse:
    filters = RateFilterForm(request.GET).values()
    rates = selectors.rates_for_list(program=request.program, currency=filters["currency"].upper())
    return list_response(
        request,
        "tracking/rate_list.html",
        {
            "page": paginate(request, rates),
            "filters": filters,
            "currencies": selectors.rate_currencies(program=request.program),
            "can_manage": can_manage(request.membership),
        },
    )


def save_rate(program, data: dict) -> None:
    # One rate per currency and day: entering it again corrects it.
    rate = CurrencyRate.objects.filter(program=program, currency=data["currency"], day=data["day"]).first()
    rate = rate or CurrencyRate(program=program, currency=data["currency"], day=data["day"])
    rate.rate = data["rate"]
    rate.full_clean()
    rate.save()


@managing_view
def rate_create(request: HttpRequest, program_slug: str) -> HttpResponse:
    program = request.program
    form = CurrencyRateForm(request.POST or None, program=program, initial={"day": timezone.localdate()})
    return form_page(
        request,
        form,
        title=_("Currency rate"),
        intro=_("Conversions in another currency are converted with the rate of their day (or the latest before)."),
        save=lambda data: save_rate(program, data),
        success_url=url_of(request, "rate_list"),
        success_message=_("Rate saved."),
        back_url=url_of(request, "rate_list"),
    )


# Commission plans and rules


@staff_view
def commission_list(request: HttpRequest, program_slug: str) -> HttpResponse:
    plans = selectors.plans_with_rules(program=request.program)
    return render(
        request,
        "tracking/commission_list.html",
        {"plans": plans, "can_manage": can_manage(request.membership)},
    )


@managing_view
def plan_create(request: HttpRequest, program_slug: str) -> HttpResponse:
    form = CommissionPlanForm(request.POST or None)
    return form_page(
        request,
        form,
        title=_("New commission plan"),
        save=lambda data: save_model_form(form, request.program),
        success_url=url_of(request, "commission_list"),
        success_message=_("Plan created."),
        back_url=url_of(request, "commission_list"),
    )


@managing_view
def rule_create(request: HttpRequest, program_slug: str) -> HttpResponse:
    program = request.program
    form = CommissionRuleForm(request.POST or None, program=program)
    if not form.fields["plan"].queryset.exists():
        messages.info(request, _("Create a commission plan first; rules belong to a plan."))
        return redirect(url_of(request, "plan_create"))
    return form_page(
        request,
        form,
        title=_("New commission rule"),
        intro=_("The most specific matching rule pays: affiliate, then offer, then the whole program."),
        save=lambda data: save_model_form(form, program),
        success_url=url_of(request, "commission_list"),
        success_message=_("Rule saved."),
        back_url=url_of(request, "commission_list"),
    )


@managing_view
def rule_edit(request: HttpRequest, program_slug: str, rule_id: int) -> HttpResponse:
    program = request.program
    rule = get_in_program_or_404(CommissionRule.objects, program, pk=rule_id)
    form = CommissionRuleForm(request.POST or None, program=program, instance=rule)
    return form_page(
        request,
        form,
        title=_("Edit commission rule"),
        intro=_("Changes apply to new conversions; paid ones keep the explanation they were paid with."),
        save=lambda data: save_model_form(form, program),
        success_url=url_of(request, "commission_list"),
        success_message=_("Rule saved."),
        back_url=url_of(request, "commission_list"),
    )


# Caps


@staff_view
def cap_list(request: HttpRequest, program_slug: str) -> HttpResponse:
    caps = selectors.caps_for_list(program=request.program)
    return render(request, "tracking/cap_list.html", {"caps": caps, "can_manage": can_manage(request.membership)})


@managing_view
def cap_create(request: HttpRequest, program_slug: str) -> HttpResponse:
    form = CapForm(request.POST or None, program=request.program)
    return form_page(
        request,
        form,
        title=_("New cap"),
        intro=_("Conversions over a cap are recorded as rejected (cap reached); clicks go to the fallback URL."),
        save=lambda data: save_model_form(form, request.program),
        success_url=url_of(request, "cap_list"),
        success_message=_("Cap saved."),
        back_url=url_of(request, "cap_list"),
    )


@managing_view
def cap_edit(request: HttpRequest, program_slug: str, cap_id: int) -> HttpResponse:
    cap = get_in_program_or_404(Cap.objects, request.program, pk=cap_id)
    form = CapForm(request.POST or None, program=request.program, instance=cap)
    return form_page(
        request,
        form,
        title=_("Edit cap"),
        save=lambda data: save_model_form(form, request.program),
        success_url=url_of(request, "cap_list"),
        success_message=_("Cap saved."),
        back_url=url_of(request, "cap_list"),
    )


# Tracking settings


@managing_view
def tracking_settings_edit(request: HttpRequest, program_slug: str) -> HttpResponse:
    form = TrackingSettingsForm(request.POST or None, instance=tracking_settings(request.program))
    return form_page(
        request,
        form,
        title=_("Tracking settings"),
        intro=_("Attribution, the hold period before auto-approval, postback security and fraud thresholds."),
        save=lambda data: form.save(),
        success_url=url_of(request, "tracking_settings"),
        success_message=_("Tracking settings saved."),
        back_url=url_of(request, "postback_setup"),
    )


@staff_view
@in_program_time
def conversion_detail(request: HttpRequest, program_slug: str, conversion_id: int) -> HttpResponse:
    program = request.program
    conversion = selectors.conversion_with_relations(program=program, conversion_id=conversion_id)
    if conversion is None:
        raise Http404
    return render(
        request,
        "tracking/conversion_detail.html",
        {
            "conversion": conversion,
            "events": selectors.conversion_events(program=program, conversion=conversion),
            "actions": status_actions(conversion),
            "can_manage": can_manage(request.membership),
            "form": ConversionStatusForm(),
        },
    )


# Postbacks

POSTBACK_PARAMETERS = [
    ("token", gettext_lazy("The program's secret token; or send it in the X-Goalpost-Token header (preferred).")),
    ("click_id", gettext_lazy("The click id your page received in the click-id parameter of the offer.")),
    ("order_id", gettext_lazy("Your order number; required for sales. The same order is recorded once.")),
    ("kind", gettext_lazy("sale (default), lead, engagement or cancellation.")),
    ("amount", gettext_lazy("The order amount, with a dot for decimals: 49.90.")),
    ("currency", gettext_lazy("ISO 4217 code; the program currency when left out.")),
    ("customer_id", gettext_lazy("Your customer's id: credits their later purchases and counts renewals.")),
    ("coupon", gettext_lazy("A coupon code used in the order; credits its affiliate when there is no click id.")),
    ("status", gettext_lazy("approved, rejected or reversed to change an order posted earlier (refunds).")),
]


def postback_url(request: HttpRequest) -> str:
    return request.build_absolute_uri(f"/postback/{request.program.slug}")


@managing_view
def postback_setup(request: HttpRequest, program_slug: str) -> HttpResponse:
    program = request.program
    return render(
        request,
        "tracking/postback_setup.html",
        {
            "postback_url": postback_url(request),
            "token_preview": program.postback_token[:4],
            "parameters": POSTBACK_PARAMETERS,
            "settings": tracking_settings(program),
            "test_form": PostbackTestForm(program=program),
        },
    )


@staff_view
@in_program_time
def postback_log(request: HttpRequest, program_slug: str) -> HttpResponse:
    program = request.program
    filters = PostbackFilterForm(request.GET).values()
    attempts = selectors.postback_attempts_for_list(program=program, result=filters["result"], reason=filters["reason"])
    return list_response(
        request,
        "tracking/postback_log.html",
        {
            "page": paginate(request, attempts),
            "filters": filters,
            "results": PostbackAttempt.Result.choices,
            "reasons": selectors.postback_reasons(program=program),
            "not_replayable": services.NOT_REPLAYABLE,
            "can_manage": can_manage(request.membership),
        },
    )


# Conversion actions: every write goes through the conversion services.


def safe_next(request: HttpRequest, fallback: str) -> str:
    """Where to go back after a bulk action: a path of this site only, never an outside URL."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts=None) and target.startswith("/"):
        return target
    return fallback


@require_POST
@managing_view
def conversion_bulk(request: HttpRequest, program_slug: str) -> HttpResponse:
    """Approve or reject the ticked conversions of this program; ids of other programs are ignored."""
    program = request.program
    form = BulkConversionForm(request.POST)
    back = safe_next(request, url_of(request, "conversion_list"))
    if not form.is_valid():
        messages.error(request, " ".join(message for errors in form.errors.values() for message in errors))
        return redirect(back)
    data = form.cleaned_data
    # Only this program's rows, whatever ids were posted.
    ids = list(Conversion.objects.filter(program=program, pk__in=data["ids"]).values_list("pk", flat=True))
    try:
        changed = services.bulk_change_conversion_status(
            program=program, conversion_ids=ids, to_status=data["to_status"], reason=data["reason"], actor=request.user
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        total = len(data["ids"])
        message = ngettext(
            "%(count)s of %(total)s conversion is now %(status)s.",
            "%(count)s of %(total)s conversions are now %(status)s.",
            total,
        )
        status = ConversionStatus(data["to_status"]).label.lower()
        messages.success(request, message % {"count": changed, "total": total, "status": status})
    return redirect(back)


@require_POST
@managing_view
def conversion_status(request: HttpRequest, program_slug: str, conversion_id: int) -> HttpResponse:
    program = request.program
    conversion = get_in_program_or_404(Conversion.objects, program, pk=conversion_id)
    form = ConversionStatusForm(request.POST)
    if form.is_valid():
        try:
            services.change_conversion_status(
                program=program,
                conversion=conversion,
                to_status=form.cleaned_data["to_status"],
                reason=form.cleaned_data["reason"],
                actor=request.user,
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(
                request,
                _("The conversion is now %(status)s.")
                % {"status": ConversionStatus(form.cleaned_data["to_status"]).label.lower()},
            )
    else:
        messages.error(request, " ".join(message for errors in form.errors.values() for message in errors))
    return redirect(url_of(request, "conversion_detail", conversion_id=conversion.pk))


@managing_view
@in_program_time
def conversion_create(request: HttpRequest, program_slug: str) -> HttpResponse:
    """Manual entry, e.g. an offline sale: recorded like a postback, with the manager and the reason audited."""
    program = request.program
    form = ManualConversionForm(request.POST or None, program=program)

    def save(data: dict) -> Conversion:
        conversion, _created = services.record_conversion(
            program=program,
            source=Conversion.Source.MANUAL,
            kind=data["kind"],
            order_id=data["order_id"] or None,
            amount=data["amount"],
            currency=data["currency"],
            click_id=str(data["click_id"]) if data["click_id"] else None,
            coupon=data["coupon"],
            customer_id=data["customer_id"],
            status=data["status"],
            occurred_at=data["occurred_at"],
            actor=request.user,
            reason=data["reason"],
            affiliate=data["affiliate"],
            offer=data["offer"],
        )
        return conversion

    return form_page(
        request,
        form,
        title=_("Enter a conversion"),
        intro=_("For sales the tracking could not see, such as offline orders. It is credited like a postback."),
        save=save,
        success_url=lambda conversion: url_of(request, "conversion_detail", conversion_id=conversion.pk),
        success_message=_("Conversion recorded."),
        back_url=url_of(request, "conversion_list"),
    )


def send_test_postback(request: HttpRequest, params: dict[str, str]) -> tuple[int, dict]:
    """Post ``params`` as the shop would: the token in its header, signed when the program requires it."""
    program = request.program
    settings = tracking_settings(program)
    headers = {services.TOKEN_HEADER: program.postback_token}
    if settings.postback_require_signature:
        headers[services.SIGNATURE_HEADER] = services.postback_signature(settings.postback_signing_secret, params)
    # The sender is the manager's browser here, so an IP allowlist refuses the test the way it would a shop.
    return services.handle_postback(
        program=program, params=params, method="POST", ip=client_ip(request.META), headers=headers
    )


@require_POST
@managing_view
def postback_test(request: HttpRequest, program_slug: str) -> HttpResponse:
    """Fire a sample postback through the real endpoint logic with the program's token; show the answer."""
    program = request.program
    form = PostbackTestForm(request.POST, program=program)
    context = {
        "postback_url": postback_url(request),
        "token_preview": program.postback_token[:4],
        "parameters": POSTBACK_PARAMETERS,
        "settings": tracking_settings(program),
        "test_form": form,
    }
    if form.is_valid():
        status, body = send_test_postback(request, form.params())
        context.update(test_status=status, test_body=json.dumps(body, indent=2, default=str))
        # A fresh order id for the next test, so pressing the button again is not a duplicate.
        context["test_form"] = PostbackTestForm(program=program)
    template = "tracking/postback_setup.html#tester" if request.htmx else "tracking/postback_setup.html"
    return render(request, template, context, status=400 if form.errors else 200)


@require_POST
@managing_view
def postback_replay(request: HttpRequest, program_slug: str, attempt_id: int) -> HttpResponse:
    attempt = get_in_program_or_404(PostbackAttempt.objects, request.program, pk=attempt_id)
    try:
        replay = services.replay_postback(program=request.program, attempt=attempt, actor=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        message = _("Replayed: %(result)s.") % {"result": replay.get_result_display().lower()}
        if replay.reason:
            message = f"{message} {reason_label(replay.reason)}"
        (messages.success if replay.result != PostbackAttempt.Result.REFUSED else messages.warning)(request, message)
    return redirect(url_of(request, "postback_log"))
