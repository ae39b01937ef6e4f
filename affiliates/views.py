"""Manager pages of a program (/p/<program_slug>/…) and the account pages around them."""

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST
from django_scopes import scope

from affiliates import selectors, services
from affiliates.forms import (
    AcceptInvitationForm,
    AffiliateFilterForm,
    InvitationForm,
    ProgramSettingsForm,
    StatusChangeForm,
)
from affiliates.listing import Column, headers, paginate
from affiliates.models import Affiliate, AffiliateStatus, Invitation, Role
from affiliates.tenancy import get_in_program_or_404, managing_view, owner_view, staff_view

AFFILIATE_COLUMNS = [
    Column(gettext_lazy("Name"), "name"),
    Column(gettext_lazy("Status"), "status"),
    Column(gettext_lazy("Tier"), "tier"),
    Column(gettext_lazy("Country"), "country"),
    Column(gettext_lazy("Website")),
    Column(gettext_lazy("Applied"), "applied"),
]


def program_home_url(membership) -> str:
    name = "portal:home" if membership.role == Role.AFFILIATE else "manage:home"
    return reverse(name, kwargs={"program_slug": membership.program.slug})


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Send a signed-in user to their only program, or let them pick one."""
    memberships = selectors.memberships_of_user(request.user)
    if len(memberships) == 1:
        return redirect(program_home_url(memberships[0]))
    return render(
        request, "affiliates/program_switcher.html", {"memberships": [(m, program_home_url(m)) for m in memberships]}
    )


@staff_view
def program_home(request: HttpRequest, program_slug: str) -> HttpResponse:
    program = request.program
    pending = selectors.affiliates_for_list(program=program, status=AffiliateStatus.PENDING, sort="-applied")
    return render(
        request,
        "affiliates/program_home.html",
        {
            "counts": selectors.affiliate_status_counts(program=program),
            "pending": pending[:5],
        },
    )


@staff_view
def affiliate_list(request: HttpRequest, program_slug: str) -> HttpResponse:
    filters = AffiliateFilterForm(request.GET).cleaned_or_defaults()
    affiliates = selectors.affiliates_for_list(
        program=request.program, search=filters["q"], status=filters["status"], sort=filters["sort"]
    )
    page = paginate(request, affiliates)
    template = "affiliates/affiliate_list.html#results" if request.htmx else "affiliates/affiliate_list.html"
    response = render(
        request,
        template,
        {
            "page": page,
            "filters": filters,
            "statuses": AffiliateStatus.choices,
            "headers": headers(AFFILIATE_COLUMNS, filters["sort"]),
        },
    )
    patch_vary_headers(response, ["HX-Request"])
    return response


@staff_view
def affiliate_detail(request: HttpRequest, program_slug: str, affiliate_id: int) -> HttpResponse:
    affiliate = get_in_program_or_404(Affiliate.objects, request.program, pk=affiliate_id)
    return render(
        request,
        "affiliates/affiliate_detail.html",
        {
            "affiliate": affiliate,
            "history": selectors.affiliate_history(program=request.program, affiliate=affiliate),
            "actions": sorted(services.ALLOWED_TRANSITIONS.get(affiliate.status, ())),
            "can_manage": services.can_manage(request.membership),
            "form": StatusChangeForm(),
        },
    )


@require_POST
@managing_view
def affiliate_status(request: HttpRequest, program_slug: str, affiliate_id: int) -> HttpResponse:
    affiliate = get_in_program_or_404(Affiliate.objects, request.program, pk=affiliate_id)
    form = StatusChangeForm(request.POST)
    if form.is_valid():
        try:
            services.change_affiliate_status(
                program=request.program,
                affiliate=affiliate,
                to_status=form.cleaned_data["to_status"],
                reason=form.cleaned_data["reason"],
                changed_by=request.user,
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(
                request,
                _("%(name)s is now %(status)s.")
                % {"name": affiliate.name, "status": affiliate.get_status_display().lower()},
            )
    else:
        messages.error(request, _("Choose a valid status."))
    return redirect("manage:affiliate_detail", program_slug=program_slug, affiliate_id=affiliate.pk)


@owner_view
def members(request: HttpRequest, program_slug: str) -> HttpResponse:
    program = request.program
    form = InvitationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.invite_member(
                program=program,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                invited_by=request.user,
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, _("Invitation sent to %(email)s.") % {"email": form.cleaned_data["email"]})
            return redirect("manage:members", program_slug=program_slug)
    return render(
        request,
        "affiliates/members.html",
        {
            "members": selectors.members_of_program(program=program),
            "invitations": Invitation.objects.filter(program=program, accepted_at__isnull=True)[:50],
            "form": form,
        },
        status=400 if form.errors else 200,
    )


@owner_view
def program_settings(request: HttpRequest, program_slug: str) -> HttpResponse:
    form = ProgramSettingsForm(request.POST or None, instance=request.program)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, _("Settings saved."))
        return redirect("manage:settings", program_slug=program_slug)
    return render(request, "affiliates/program_settings.html", {"form": form}, status=400 if form.errors else 200)


def accept_invitation(request: HttpRequest, token: str) -> HttpResponse:
    """Let an invited colleague set a password from the signed link and join the program."""
    try:
        invitation = services.invitation_from_token(token)
    except ValidationError as error:
        return render(request, "affiliates/invitation_invalid.html", {"reason": " ".join(error.messages)}, status=400)
    form = AcceptInvitationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with scope(program=invitation.program):
            try:
                user = services.accept_invitation(
                    invitation=invitation, name=form.cleaned_data["name"], password=form.cleaned_data["password1"]
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                return redirect("manage:home", program_slug=invitation.program.slug)
    return render(
        request,
        "affiliates/accept_invitation.html",
        {"form": form, "invitation": invitation},
        status=400 if form.errors else 200,
    )
