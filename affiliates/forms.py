"""Forms of the affiliates app: they check the shape of input; services enforce the rules."""

from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm
from django.utils.translation import gettext_lazy as _

from affiliates.models import AffiliateStatus, Program, Role
from affiliates.selectors import AFFILIATE_SORTS, DEFAULT_AFFILIATE_SORT
from affiliates.validators import country_choices


class EmailAuthenticationForm(AuthenticationForm):
    username = forms.EmailField(
        label=_("Email"), widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"})
    )


class ApplicationForm(forms.Form):
    name = forms.CharField(label=_("Your name or company"), max_length=150)
    email = forms.EmailField(label=_("Email"))
    password = forms.CharField(
        label=_("Password"), widget=forms.PasswordInput, required=False, help_text=_("For your partner portal account.")
    )
    website = forms.URLField(label=_("Website"), required=False, assume_scheme="https")
    traffic_sources = forms.CharField(
        label=_("Traffic sources"),
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text=_("Blog, newsletter, social channels, paid search…"),
    )
    country = forms.ChoiceField(label=_("Country"), required=False)
    payout_email = forms.EmailField(
        label=_("Payout email"), required=False, help_text=_("Where payments are sent; your email if left empty.")
    )
    accept_terms = forms.BooleanField(
        label=_("I accept the program terms"),
        required=True,
        error_messages={"required": _("You must accept the terms to apply.")},
    )

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["country"].choices = [("", "—"), *country_choices()]
        self.user = user
        if user is not None and user.is_authenticated:
            self.fields["email"].initial = user.email
            self.fields["email"].disabled = True
            self.fields["name"].initial = user.name
            del self.fields["password"]
        else:
            self.fields["password"].required = True


class StatusChangeForm(forms.Form):
    to_status = forms.ChoiceField(choices=AffiliateStatus.choices)
    reason = forms.CharField(
        label=_("Reason"), widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=2000
    )


class AffiliateFilterForm(forms.Form):
    q = forms.CharField(label=_("Search"), required=False, max_length=100)
    status = forms.ChoiceField(
        label=_("Status"), required=False, choices=[("", _("All statuses")), *AffiliateStatus.choices]
    )
    sort = forms.ChoiceField(required=False, choices=[(key, key) for key in AFFILIATE_SORTS])

    def cleaned_or_defaults(self) -> dict:
        if not self.is_valid():
            return {"q": "", "status": "", "sort": DEFAULT_AFFILIATE_SORT}
        data = self.cleaned_data
        return {"q": data["q"].strip(), "status": data["status"], "sort": data["sort"] or DEFAULT_AFFILIATE_SORT}


class InvitationForm(forms.Form):
    email = forms.EmailField(label=_("Email"))
    role = forms.ChoiceField(
        label=_("Role"), choices=[(role.value, role.label) for role in (Role.MANAGER, Role.ANALYST, Role.OWNER)]
    )


class AcceptInvitationForm(forms.Form):
    name = forms.CharField(label=_("Your name"), max_length=150)
    password1 = forms.CharField(
        label=_("Password"),
        widget=forms.PasswordInput,
        help_text=password_validation.password_validators_help_text_html(),
    )
    password2 = forms.CharField(label=_("Password again"), widget=forms.PasswordInput)

    def clean(self):
        data = super().clean()
        if data.get("password1") and data.get("password1") != data.get("password2"):
            self.add_error("password2", _("The two passwords differ."))
        return data


class ProgramSettingsForm(forms.ModelForm):
    class Meta:
        model = Program
        fields = ["name", "timezone", "currency", "default_cookie_window_days", "auto_approve_affiliates"]
