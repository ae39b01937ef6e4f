"""Forms of the tracking pages: they check the shape of input; services enforce the business rules."""

import re
import secrets
from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django_scopes.forms import SafeModelChoiceField

from affiliates.models import Affiliate, Program
from affiliates.validators import validate_currency
from tracking import selectors
from tracking.links import https_host
from tracking.models import (
    MONEY,
    Cap,
    CommissionPlan,
    CommissionRule,
    Conversion,
    ConversionKind,
    ConversionStatus,
    Coupon,
    Link,
    Offer,
    PostbackAttempt,
    TrackingSettings,
    TrafficSource,
)
from tracking.services import parse_allowlist

HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$")
PARAM_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
MAX_BULK = 500


def money_field(label, **kwargs) -> forms.DecimalField:
    """A Decimal amount that fits the model's money columns; NaN, infinity and 20-digit values are refused."""
    return forms.DecimalField(
        label=label, max_digits=MONEY["max_digits"], decimal_places=MONEY["decimal_places"], **kwargs
    )


class FilterForm(forms.Form):
    """A GET filter form whose invalid fields fall back to their defaults instead of failing the page."""

    defaults: dict = {}

    def values(self) -> dict:
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        values = {}
        for name in self.fields:
            value = data.get(name) if name not in self.errors else None
            values[name] = value if value not in (None, "") else self.defaults.get(name, "")
        return values


class IdField(forms.IntegerField):
    """A row id from a filter select; an id of another program simply matches nothing."""

    def __init__(self, **kwargs):
        super().__init__(required=False, min_value=1, **kwargs)


def choices_with_all(label, choices) -> list:
    return [("", label), *choices]


class ClickFilterForm(FilterForm):
    affiliate = IdField(label=_("Affiliate"))
    offer = IdField(label=_("Offer"))
    source = forms.ChoiceField(
        label=_("Source"), required=False, choices=choices_with_all(_("All sources"), TrafficSource.choices)
    )
    sub = forms.CharField(label=_("Sub-ID"), required=False, max_length=255, strip=True)
    bots = forms.ChoiceField(
        label=_("Bots"),
        required=False,
        choices=[("", _("Include bots")), ("exclude", _("Exclude bots")), ("only", _("Only bots"))],
    )
    start = forms.DateField(label=_("From"), required=False)
    end = forms.DateField(label=_("To"), required=False)
    sort = forms.ChoiceField(required=False, choices=[(key, key) for key in selectors.CLICK_SORTS])
    defaults = {"sort": selectors.DEFAULT_CLICK_SORT, "affiliate": None, "offer": None, "start": None, "end": None}


class ConversionFilterForm(FilterForm):
    status = forms.ChoiceField(
        label=_("Status"), required=False, choices=choices_with_all(_("All statuses"), ConversionStatus.choices)
    )
    kind = forms.ChoiceField(
        label=_("Kind"), required=False, choices=choices_with_all(_("All kinds"), ConversionKind.choices)
    )
    affiliate = IdField(label=_("Affiliate"))
    offer = IdField(label=_("Offer"))
    source = forms.ChoiceField(
        label=_("Source"), required=False, choices=choices_with_all(_("All sources"), Conversion.Source.choices)
    )
    q = forms.CharField(label=_("Order, customer or coupon"), required=False, max_length=128, strip=True)
    in_review = forms.BooleanField(label=_("In review only"), required=False)
    start = forms.DateField(label=_("From"), required=False)
    end = forms.DateField(label=_("To"), required=False)
    sort = forms.ChoiceField(required=False, choices=[(key, key) for key in selectors.CONVERSION_SORTS])
    defaults = {
        "sort": selectors.DEFAULT_CONVERSION_SORT,
        "affiliate": None,
        "offer": None,
        "start": None,
        "end": None,
        "in_review": False,
    }


class LinkFilterForm(FilterForm):
    affiliate = IdField(label=_("Affiliate"))
    offer = IdField(label=_("Offer"))
    status = forms.ChoiceField(
        label=_("Status"), required=False, choices=choices_with_all(_("All statuses"), Link.Status.choices)
    )
    q = forms.CharField(label=_("Code or label"), required=False, max_length=120, strip=True)
    sort = forms.ChoiceField(required=False, choices=[(key, key) for key in selectors.LINK_SORTS])
    defaults = {"sort": selectors.DEFAULT_LINK_SORT, "affiliate": None, "offer": None}


class PostbackFilterForm(FilterForm):
    result = forms.ChoiceField(
        label=_("Result"), required=False, choices=choices_with_all(_("All results"), PostbackAttempt.Result.choices)
    )
    reason = forms.CharField(label=_("Reason"), required=False, max_length=64)


class RateFilterForm(FilterForm):
    currency = forms.CharField(label=_("Currency"), required=False, max_length=3)


class PortalConversionFilterForm(FilterForm):
    status = forms.ChoiceField(
        label=_("Status"), required=False, choices=choices_with_all(_("All statuses"), ConversionStatus.choices)
    )


def clean_https(value: str, field: str) -> str:
    if value:
        try:
            https_host(value, field)
        except ValidationError as error:
            raise ValidationError(error.message_dict[field]) from error
    return value.strip()


class OfferForm(forms.ModelForm):
    class Meta:
        model = Offer
        fields = [
            "name",
            "destination_url",
            "click_id_param",
            "allowed_domains",
            "cookie_window_days",
            "fallback_url",
            "status",
        ]
        widgets = {"allowed_domains": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, program: Program, **kwargs):
        super().__init__(*args, **kwargs)
        self.program = program

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        others = Offer.objects.filter(program=self.program, name__iexact=name)
        if self.instance.pk:
            others = others.exclude(pk=self.instance.pk)
        if others.exists():
            raise ValidationError(_("An offer with this name exists already."))
        return name

    def clean_destination_url(self) -> str:
        return clean_https(self.cleaned_data["destination_url"], "destination_url")

    def clean_fallback_url(self) -> str:
        return clean_https(self.cleaned_data["fallback_url"], "fallback_url")

    def clean_click_id_param(self) -> str:
        value = self.cleaned_data["click_id_param"].strip()
        if not PARAM_NAME.match(value):
            raise ValidationError(_("Use letters, digits, “_”, “-” or “.” only."))
        return value

    def clean_allowed_domains(self) -> str:
        hosts = [line.strip().lower() for line in self.cleaned_data["allowed_domains"].splitlines() if line.strip()]
        bad = [host for host in hosts if not HOSTNAME.match(host)]
        if bad:
            raise ValidationError(
                _("Not a host name: %(hosts)s. Write one host per line, like shop.example.com.")
                % {"hosts": ", ".join(bad)}
            )
        return "\n".join(hosts)


class ManagerLinkForm(forms.Form):
    affiliate = forms.ModelChoiceField(
        label=_("Affiliate"), queryset=Affiliate.objects.none(), empty_label=_("Choose an approved affiliate")
    )
    offer = forms.ModelChoiceField(label=_("Offer"), queryset=Offer.objects.none(), empty_label=_("Choose an offer"))
    name = forms.CharField(label=_("Label"), required=False, max_length=120)
    landing_url = forms.URLField(
        label=_("Landing page"),
        required=False,
        max_length=2000,
        help_text=_("Optional; an https page on one of the offer's domains."),
    )

    def __init__(self, *args, program: Program, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["affiliate"].queryset = selectors.affiliates_for_choice(program=program, approved_only=True)
        self.fields["offer"].queryset = selectors.active_offers(program=program)

    def clean_landing_url(self) -> str:
        return clean_https(self.cleaned_data["landing_url"], "landing_url")


class PortalLinkForm(ManagerLinkForm):
    """The affiliate's own link: the affiliate is the signed-in one, never a form field."""

    def __init__(self, *args, program: Program, **kwargs):
        super().__init__(*args, program=program, **kwargs)
        del self.fields["affiliate"]


SUB_IDS = ("sub1", "sub2", "sub3", "sub4", "sub5")


class LinkBuilderForm(forms.Form):
    link = forms.ModelChoiceField(label=_("Link"), queryset=Link.objects.none(), empty_label=None)
    sub1 = forms.CharField(label="sub1", required=False, max_length=255)
    sub2 = forms.CharField(label="sub2", required=False, max_length=255)
    sub3 = forms.CharField(label="sub3", required=False, max_length=255)
    sub4 = forms.CharField(label="sub4", required=False, max_length=255)
    sub5 = forms.CharField(label="sub5", required=False, max_length=255)

    def __init__(self, *args, links, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["link"].queryset = links
        self.fields["link"].label_from_instance = lambda link: f"{link.offer.name} · {link.name or link.code}"


class CouponForm(forms.ModelForm):
    class Meta:
        model = Coupon
        fields = ["code", "affiliate", "offer", "active"]
        field_classes = {"affiliate": SafeModelChoiceField, "offer": SafeModelChoiceField}

    def __init__(self, *args, program: Program, **kwargs):
        super().__init__(*args, **kwargs)
        self.program = program
        self.fields["affiliate"].queryset = selectors.affiliates_for_choice(program=program)
        self.fields["offer"].queryset = Offer.objects.filter(program=program).order_by("name")
        self.fields["affiliate"].help_text = _("Conversions with this coupon are credited to this affiliate.")
        self.fields["affiliate"].empty_label = _("Nobody (not credited)")
        self.fields["offer"].empty_label = _("Any offer")

    def clean_code(self) -> str:
        code = self.cleaned_data["code"].strip()
        if not re.fullmatch(r"[\w.-]+", code):
            raise ValidationError(_("Use letters, digits, “_”, “-” or “.” only, without spaces."))
        if Coupon.objects.filter(program=self.program, code__iexact=code).exclude(pk=self.instance.pk).exists():
            raise ValidationError(_("This coupon code exists already."))
        return code


class CurrencyRateForm(forms.Form):
    currency = forms.CharField(label=_("Currency"), max_length=3, help_text=_("ISO 4217 code, e.g. USD."))
    day = forms.DateField(label=_("Day"), widget=forms.DateInput(attrs={"type": "date"}))
    rate = forms.DecimalField(
        label=_("Rate"),
        max_digits=18,
        decimal_places=8,
        min_value=Decimal("0.00000001"),
        help_text=_("How much one unit of this currency is worth in the program currency."),
    )

    def __init__(self, *args, program: Program, **kwargs):
        super().__init__(*args, **kwargs)
        self.program = program

    def clean_currency(self) -> str:
        currency = self.cleaned_data["currency"].strip().upper()
        validate_currency(currency)
        if currency == self.program.currency:
            raise ValidationError(_("This is the program currency; its rate is always 1."))
        return currency


class CommissionPlanForm(forms.ModelForm):
    class Meta:
        model = CommissionPlan
        fields = ["name", "is_default"]


TIER_LINE = re.compile(r"^\s*(\d{1,9})\s*[:=]\s*(\d{1,12}(?:\.\d{1,3})?)\s*(%?)\s*$")


class TiersField(forms.CharField):
    """Tiers written one per line, ``50: 8%`` (a percentage) or ``50: 12.00`` (an amount), from 0 up."""

    widget = forms.Textarea(attrs={"rows": 3, "placeholder": "0: 5%\n50: 8%"})

    def to_python(self, value) -> list[dict]:
        text = super().to_python(value)
        tiers = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            match = TIER_LINE.match(line)
            if match is None:
                raise ValidationError(
                    _("Line %(number)s: write “minimum conversions: rate”, e.g. “50: 8%%” or “50: 12.00”.")
                    % {"number": number}
                )
            minimum, rate, percent = match.groups()
            tiers.append({"min_conversions": int(minimum), "percent" if percent else "amount": rate})
        minimums = [tier["min_conversions"] for tier in tiers]
        if minimums != sorted(set(minimums)):
            raise ValidationError(_("List the tiers from the lowest minimum up, each minimum once."))
        return tiers

    def prepare_value(self, value):
        if isinstance(value, list):
            return "\n".join(
                f"{tier['min_conversions']}: {tier['percent']}%"
                if "percent" in tier
                else f"{tier['min_conversions']}: {tier.get('amount', '')}"
                for tier in value
            )
        return value


class CommissionRuleForm(forms.ModelForm):
    tiers = TiersField(label=_("Tiers"), required=False, help_text=_("For tiered rules: “50: 8%” per line."))

    class Meta:
        model = CommissionRule
        fields = ["plan", "kind", "rule_type", "amount", "percent", "tiers", "offer", "affiliate", "recurring_renewals"]
        field_classes = {
            "plan": SafeModelChoiceField,
            "offer": SafeModelChoiceField,
            "affiliate": SafeModelChoiceField,
        }
        help_texts = {
            "offer": _("Only for this offer (more specific than a program-wide rule)."),
            "affiliate": _("Only for this affiliate (the most specific rule wins)."),
            "recurring_renewals": _("Renewals of one customer that earn commission; empty: all of them."),
        }

    def __init__(self, *args, program: Program, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["plan"].queryset = CommissionPlan.objects.filter(program=program).order_by("-is_default", "name")
        self.fields["plan"].empty_label = None
        self.fields["offer"].queryset = Offer.objects.filter(program=program).order_by("name")
        self.fields["affiliate"].queryset = selectors.affiliates_for_choice(program=program)
        self.fields["offer"].empty_label = _("Any offer")
        self.fields["affiliate"].empty_label = _("Any affiliate")
        self.fields["amount"].help_text = _("For flat rules, in %(currency)s.") % {"currency": program.currency}
        self.fields["percent"].help_text = _("For revenue shares: a percentage of the revenue, 0–100.")
        self.fields["amount"].min_value = Decimal("0")
        self.fields["percent"].min_value = Decimal("0")
        self.fields["percent"].max_value = Decimal("100")

    def clean(self):
        data = super().clean()
        rule_type = data.get("rule_type")
        if data.get("amount") is not None and data["amount"] < 0:
            self.add_error("amount", _("The amount cannot be negative."))
        if rule_type == CommissionRule.Type.FLAT and not data.get("amount"):
            self.add_error("amount", _("A flat rule needs an amount above zero."))
        if rule_type == CommissionRule.Type.REVENUE_SHARE and not data.get("percent"):
            self.add_error("percent", _("A revenue share needs a percentage above zero."))
        if rule_type == CommissionRule.Type.TIERED and not data.get("tiers"):
            self.add_error("tiers", _("A tiered rule needs at least one tier."))
        if data.get("percent") is not None and not Decimal("0") <= data["percent"] <= Decimal("100"):
            self.add_error("percent", _("Give a percentage between 0 and 100."))
        return data


class CapForm(forms.ModelForm):
    class Meta:
        model = Cap
        fields = ["offer", "affiliate", "metric", "period", "limit"]
        field_classes = {"offer": SafeModelChoiceField, "affiliate": SafeModelChoiceField}

    def __init__(self, *args, program: Program, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["offer"].queryset = Offer.objects.filter(program=program).order_by("name")
        self.fields["affiliate"].queryset = selectors.affiliates_for_choice(program=program)
        self.fields["offer"].empty_label = _("Every offer")
        self.fields["affiliate"].empty_label = _("Every affiliate")
        self.fields["limit"].help_text = _("A count, or an amount in %(currency)s for payout caps.") % {
            "currency": program.currency
        }

    def clean(self):
        data = super().clean()
        if not data.get("offer") and not data.get("affiliate"):
            raise ValidationError(_("Choose an offer, an affiliate or both: a cap applies to them."))
        limit, metric = data.get("limit"), data.get("metric")
        if limit is not None and metric in (Cap.Metric.CONVERSIONS, Cap.Metric.CLICKS) and limit != limit.to_integral():
            self.add_error("limit", _("Count caps take a whole number."))
        if metric == Cap.Metric.CLICKS and data.get("offer") and not data["offer"].fallback_url:
            self.add_error("metric", _("A click cap needs a fallback URL on the offer; set one first."))
        return data


class TrackingSettingsForm(forms.ModelForm):
    class Meta:
        model = TrackingSettings
        fields = [
            "attribution_model",
            "lifetime_customers",
            "hold_days",
            "postback_ip_allowlist",
            "postback_require_signature",
            "fraud_min_seconds_to_convert",
            "fraud_click_flood_count",
            "fraud_click_flood_minutes",
            "fraud_conversion_rate_factor",
        ]
        widgets = {"postback_ip_allowlist": forms.Textarea(attrs={"rows": 3, "placeholder": "203.0.113.0/24"})}

    def clean_postback_ip_allowlist(self) -> str:
        text = self.cleaned_data["postback_ip_allowlist"]
        try:
            parse_allowlist(text)  # the same parser the postback endpoint uses
        except ValidationError as error:
            raise ValidationError(error.message_dict["postback_ip_allowlist"]) from error
        return "\n".join(line.strip() for line in text.splitlines() if line.strip())

    def clean_fraud_conversion_rate_factor(self) -> Decimal:
        value = self.cleaned_data["fraud_conversion_rate_factor"]
        if value is not None and value < 1:
            raise ValidationError(_("Use a factor of at least 1 (the program's own rate)."))
        return value


class ConversionStatusForm(forms.Form):
    to_status = forms.ChoiceField(choices=ConversionStatus.choices)
    reason = forms.CharField(
        label=_("Reason"), widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=2000
    )

    def clean(self):
        data = super().clean()
        if data.get("to_status") in (ConversionStatus.REJECTED, ConversionStatus.REVERSED) and not data.get("reason"):
            self.add_error("reason", _("Give a reason; the affiliate sees it."))
        return data


class IdListField(forms.Field):
    """The ids of the rows ticked in a list (checkboxes named ``ids``)."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value) -> list[int]:
        if not value:
            return []
        try:
            ids = sorted({int(item) for item in value})
        except (TypeError, ValueError) as error:
            raise ValidationError(_("Choose conversions from the list.")) from error
        if len(ids) > MAX_BULK or any(item < 1 for item in ids):
            message = ngettext(
                "Choose at most %(count)s conversion at once.",
                "Choose at most %(count)s conversions at once.",
                MAX_BULK,
            )
            raise ValidationError(message % {"count": MAX_BULK})
        return ids


class BulkConversionForm(forms.Form):
    ids = IdListField(label=_("Conversions"), error_messages={"required": _("Tick at least one conversion.")})
    to_status = forms.ChoiceField(
        choices=[(ConversionStatus.APPROVED, _("Approve")), (ConversionStatus.REJECTED, _("Reject"))]
    )
    reason = forms.CharField(label=_("Reason"), required=False, max_length=2000)

    def clean(self):
        data = super().clean()
        if data.get("to_status") == ConversionStatus.REJECTED and not data.get("reason"):
            self.add_error("reason", _("Give a reason for rejecting; the affiliates see it."))
        return data


class ManualConversionForm(forms.Form):
    kind = forms.ChoiceField(label=_("Kind"), choices=ConversionKind.choices, initial=ConversionKind.SALE)
    order_id = forms.CharField(label=_("Order id"), max_length=128, required=False)
    amount = money_field(_("Amount"), min_value=Decimal("0"), required=False)
    currency = forms.CharField(label=_("Currency"), max_length=3)
    occurred_at = forms.DateTimeField(
        label=_("When"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text=_("In the program's time zone; empty: now."),
    )
    affiliate = forms.ModelChoiceField(
        label=_("Affiliate"),
        queryset=Affiliate.objects.none(),
        required=False,
        empty_label=_("Credit by click id, coupon or customer"),
        help_text=_("The affiliate who made this sale, when you know it; otherwise give a click id or a coupon."),
    )
    offer = forms.ModelChoiceField(
        label=_("Offer"), queryset=Offer.objects.none(), required=False, empty_label=_("No offer")
    )
    click_id = forms.UUIDField(
        label=_("Click id"),
        required=False,
        help_text=_("A click id, a coupon or a customer id credits the conversion to an affiliate."),
    )
    coupon = forms.CharField(label=_("Coupon"), max_length=64, required=False)
    customer_id = forms.CharField(label=_("Customer id"), max_length=128, required=False)
    status = forms.ChoiceField(
        label=_("Status"),
        choices=[(ConversionStatus.PENDING, _("Pending")), (ConversionStatus.APPROVED, _("Approved"))],
        initial=ConversionStatus.PENDING,
    )
    reason = forms.CharField(
        label=_("Reason"),
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Why this conversion is entered by hand, e.g. an offline sale; kept in the audit trail."),
    )

    def __init__(self, *args, program: Program, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["currency"].initial = program.currency
        self.fields["affiliate"].queryset = selectors.affiliates_for_choice(program=program, approved_only=True)
        self.fields["offer"].queryset = selectors.active_offers(program=program)

    def clean_currency(self) -> str:
        currency = self.cleaned_data["currency"].strip().upper()
        validate_currency(currency)
        return currency

    def clean(self):
        data = super().clean()
        if data.get("kind") == ConversionKind.SALE and not data.get("order_id"):
            self.add_error("order_id", _("A sale needs an order id."))
        if data.get("affiliate") and (data.get("click_id") or data.get("coupon")):
            self.add_error("affiliate", _("Choose an affiliate or give a click id or coupon, not both."))
        elif data.get("offer") and not data.get("affiliate"):
            self.add_error("offer", _("Choose the affiliate too."))
        elif not (data.get("affiliate") or data.get("click_id") or data.get("coupon") or data.get("customer_id")):
            self.add_error(
                None,
                _(
                    "Choose an affiliate, or give a click id, a coupon or a customer id, so the conversion "
                    "can be credited to an affiliate."
                ),
            )
        return data


def sample_order_id() -> str:
    return f"test-{secrets.token_hex(4)}"


class PostbackTestForm(forms.Form):
    kind = forms.ChoiceField(label=_("Kind"), choices=ConversionKind.choices, initial=ConversionKind.SALE)
    # Plain text on purpose: the test shows how the endpoint answers whatever the shop would send.
    amount = forms.CharField(label=_("Amount"), max_length=32, initial="49.90", required=False)
    currency = forms.CharField(label=_("Currency"), max_length=8, required=False)
    order_id = forms.CharField(label=_("Order id"), max_length=128, required=False)
    click_id = forms.CharField(label=_("Click id"), max_length=64, required=False)
    coupon = forms.CharField(label=_("Coupon"), max_length=64, required=False)

    def __init__(self, *args, program: Program, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["currency"].initial = program.currency
        self.fields["order_id"].initial = sample_order_id()

    def params(self) -> dict[str, str]:
        """The postback parameters as the shop would send them: strings, empty ones left out."""
        return {name: str(value) for name, value in self.cleaned_data.items() if value not in (None, "")}
