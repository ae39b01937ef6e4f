"""The partner portal (/portal/<program_slug>/…): an affiliate's own data, and the public application."""

from django.contrib import messages
from django.contrib.auth import login
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from affiliates import services
from affiliates.forms import ApplicationForm
from affiliates.models import Affiliate
from affiliates.tenancy import affiliate_view, program_view


def own_affiliate(request: HttpRequest) -> Affiliate:
    """The affiliate profile of the signed-in user in this program; only ever their own."""
    affiliate = Affiliate.objects.filter(program=request.program, user=request.user).first()
    if affiliate is None:
        raise Http404
    return affiliate


@affiliate_view
def portal_home(request: HttpRequest, program_slug: str) -> HttpResponse:
    affiliate = own_affiliate(request)
    return render(request, "affiliates/portal_home.html", {"affiliate": affiliate})


@program_view(public=True)
def apply(request: HttpRequest, program_slug: str) -> HttpResponse:
    program = request.program
    if request.membership is not None:
        # Already part of this program: the portal (or the manager pages) is where they belong.
        return redirect("home")
    user = request.user if request.user.is_authenticated else None
    form = ApplicationForm(request.POST or None, user=user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            affiliate = services.apply_as_affiliate(
                program=program,
                name=data["name"],
                email=user.email if user else data["email"],
                website=data["website"],
                traffic_sources=data["traffic_sources"],
                country=data["country"],
                payout_email=data["payout_email"],
                password=data.get("password"),
                user=user,
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            if user is None:
                login(request, affiliate.user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, _("Thank you for applying to %(program)s.") % {"program": program.name})
            return redirect("portal:home", program_slug=program.slug)
    return render(request, "affiliates/apply.html", {"form": form}, status=400 if form.errors else 200)
