"""Forms of the goal pages: they check the shape of input; goals.services enforces the business rules."""

import re
from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django_scopes.forms import SafeModelChoiceField

from affiliates.models import Affiliate, AffiliateStatus, Program, Tier
from goals.board import BoardFilters, BoardView
from goals.kpis import GOAL_KPIS, REGISTRY
from goals.models import MONEY, VALUE, BonusType, GoalStatus

MANUAL = "manual"
MAX_TIERS = 10


def kpi_choices(*, manual: bool = True) -> list[tuple[str, str]]:
    choices = [(kpi.name, kpi.label) for kpi in GOAL_KPIS]
    return [*choices, (MANUAL, _("Manual activity (checked by hand)"))] if manual else choices


def value_field(label, **kwargs) -> forms.DecimalField:
    """A number that fits GoalProgress/Goal values; NaN, infinity and oversized values are refused here."""
    return forms.DecimalField(
        label=label, max_digits=VALUE["max_digits"], decimal_places=VALUE["decimal_places"], **kwargs
    )


def money_field(label, **kwargs) -> forms.DecimalField:
    return forms.DecimalField(
        label=label, max_digits=MONEY["max_digits"], decimal_places=MONEY["decimal_places"], **kwargs
    )


class BoardFilterForm(forms.Form):
    """The board's GET filters; a value that is not valid falls back to its default instead of failing."""

    view = forms.ChoiceField(
        required=False,
        choices=[
            (BoardView.ALL, _("All")),
            (BoardView.AT_RISK, _("At risk or behind")),
            (BoardView.NOT_SET, _("Not yet set")),
        ],
    )
    status = forms.ChoiceField(label=_("Status"), required=False, choices=[("", _("Any status")), *GoalStatus.choices])
    kpi = forms.ChoiceField(label=_("KPI"), required=False, choices=[("", _("Every KPI")), *kpi_choices()])
    tier = forms.ChoiceField(label=_("Tier"), required=False, choices=[("", _("Every tier")), *Tier.choices])
    q = forms.CharField(label=_("Search"), required=False, max_length=100, strip=True)
    sort = forms.CharField(required=False, max_length=60)

    def filters(self) -> BoardFilters:
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        values = {name: data.get(name) or "" for name in self.fields if name not in self.errors}
        return BoardFilters(
            view=values.get("view") or BoardView.ALL,
            status=values.get("status", ""),
            kpi=values.get("kpi", ""),
            tier=values.get("tier", ""),
            q=values.get("q", ""),
            sort=values.get("sort") or "name",
        )


def parse_tiers(text: str) -> list[dict]:
    """ "100: 100, 120: 250" (progress %: amount) as the service's tier list; shape errors only."""
    tiers = []
    for part in re.split(r"[,;\n]+", text or ""):
        part = part.strip()
        if not part:
            continue
        progress, separator, amount = part.partition(":")
        if not separator:
            raise ValidationError(_("Write each tier as “progress %: amount”, e.g. “100: 100, 120: 250”."))
        tiers.append({"progress": progress.strip().rstrip("%").strip(), "amount": amount.strip()})
    if len(tiers) > MAX_TIERS:
        raise ValidationError(
            ngettext("At most %(count)s tier.", "At most %(count)s tiers.", MAX_TIERS) % {"count": MAX_TIERS}
        )
    return tiers


def tiers_text(tiers: list[dict]) -> str:
    return ", ".join(f"{tier['progress']}: {tier['amount']}" for tier in tiers or [])


class BonusFields(forms.Form):
    """The optional bonus of a goal: the service checks that the fields of the chosen type are filled in."""

    bonus_type = forms.ChoiceField(label=_("Bonus"), required=False, choices=BonusType.choices)
    bonus_amount = money_field(_("Bonus amount"), required=False, help_text=_("For a fixed bonus."))
    bonus_percent = forms.DecimalField(
        label=_("Bonus %"),
        required=False,
        max_digits=6,
        decimal_places=3,
        help_text=_("Percentage of the month's confirmed commission."),
    )
    bonus_tiers = forms.CharField(
        label=_("Bonus tiers"),
        required=False,
        max_length=500,
        help_text=_("Progress %: amount, e.g. “100: 100, 120: 250”; the highest tier reached pays."),
    )

    def clean_bonus_tiers(self) -> list[dict]:
        return parse_tiers(self.cleaned_data.get("bonus_tiers", ""))

    def bonus(self) -> dict:
        data = self.cleaned_data
        return {
            "bonus_type": data.get("bonus_type") or "",
            "bonus_amount": data.get("bonus_amount"),
            "bonus_percent": data.get("bonus_percent"),
            "bonus_tiers": data.get("bonus_tiers") or None,
        }


class GoalForm(BonusFields):
    """One goal of one affiliate: a KPI target, or a manual activity with a target count."""

    affiliate = SafeModelChoiceField(label=_("Affiliate"), queryset=Affiliate.objects.none())
    kpi = forms.ChoiceField(label=_("KPI"), choices=kpi_choices())
    label = forms.CharField(
        label=_("Activity"),
        required=False,
        max_length=120,
        help_text=_("Manual goals only: what is checked by hand, e.g. “Publish 4 reviews”."),
    )
    target = value_field(_("Target"))
    min_volume = forms.IntegerField(
        label=_("Minimum volume"),
        required=False,
        min_value=0,
        max_value=2_000_000_000,
        help_text=_("Ratios only: below this many clicks (or conversions) the goal shows “not enough data”."),
    )
    note = forms.CharField(label=_("Note"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))

    field_order = [
        "affiliate",
        "kpi",
        "label",
        "target",
        "min_volume",
        "bonus_type",
        "bonus_amount",
        "bonus_percent",
        "bonus_tiers",
        "note",
    ]

    def __init__(self, *args, program: Program, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["affiliate"].queryset = Affiliate.objects.filter(
            program=program, status=AffiliateStatus.APPROVED
        ).order_by("name", "pk")

    def goal_fields(self) -> dict:
        data = self.cleaned_data
        return {
            "kpi": data.get("kpi", ""),
            "label": data.get("label") or "",
            "target": data["target"],
            "min_volume": data.get("min_volume"),
            "note": data.get("note") or "",
            **self.bonus(),
        }


class GoalEditForm(GoalForm):
    """An existing goal: its affiliate, KPI and activity stay; target, volume, bonus and note change."""

    def __init__(self, *args, program: Program, **kwargs):
        super().__init__(*args, program=program, **kwargs)
        for name in ("affiliate", "kpi", "label"):
            del self.fields[name]


class GoalTargetForm(forms.Form):
    """The board's inline edit: a new target only."""

    target = value_field(_("Target"))


class GoalLineForm(BonusFields):
    """One line of a goal template ("500 clicks"); an untouched line is skipped."""

    kpi = forms.ChoiceField(label=_("KPI"), choices=[("", "—"), *kpi_choices()], required=False)
    label = forms.CharField(label=_("Activity"), required=False, max_length=120)
    target = value_field(_("Target"), required=False)

    field_order = ["kpi", "label", "target", "bonus_type", "bonus_amount", "bonus_percent", "bonus_tiers"]

    def clean(self):
        data = super().clean()
        if data.get("kpi") and data.get("target") is None:
            self.add_error("target", _("Enter a target for this KPI."))
        if data.get("target") is not None and not data.get("kpi"):
            self.add_error("kpi", _("Choose the KPI of this target."))
        return data

    def template_item(self) -> dict | None:
        data = self.cleaned_data
        if not data.get("kpi"):
            return None
        return {"kpi": data["kpi"], "label": data.get("label") or "", "target": data["target"], **self.bonus()}


GoalLineFormSet = forms.formset_factory(GoalLineForm, extra=4, max_num=10, absolute_max=10)


class BulkGoalsForm(forms.Form):
    """Which affiliates a goal template applies to: every approved affiliate of a tier, or of all tiers."""

    tier = forms.ChoiceField(label=_("Tier"), required=False, choices=[("", _("Every tier")), *Tier.choices])
    only_without_goals = forms.BooleanField(label=_("Only affiliates without any goal this month"), required=False)


class SuggestionForm(forms.Form):
    """Which KPIs to suggest targets for, and the growth factor over the affiliate's own last three months."""

    kpis = forms.MultipleChoiceField(
        label=_("KPIs"), choices=kpi_choices(manual=False), widget=forms.CheckboxSelectMultiple
    )
    growth = forms.DecimalField(
        label=_("Growth factor"),
        min_value=Decimal("0.10"),
        max_value=Decimal(10),
        max_digits=5,
        decimal_places=2,
        help_text=_("1.10 asks for 10 % more than the median of the last three months (10 % less for costs)."),
    )
    tier = forms.ChoiceField(label=_("Tier"), required=False, choices=[("", _("Every tier")), *Tier.choices])

    DEFAULTS = {"kpis": ["clicks", "conversions", "conversion_rate"], "growth": Decimal("1.10"), "tier": ""}


TARGET_NAME = re.compile(r"^target-(?P<affiliate>\d{1,12})-(?P<kpi>[a-z_]{1,32})$")


class AcceptSuggestionsForm(forms.Form):
    """The suggestion table as posted: one optional target per ``target-<affiliate id>-<kpi>`` input."""

    def __init__(self, data=None, **kwargs):
        super().__init__(data, **kwargs)
        for name in sorted(data or {}):
            match = TARGET_NAME.match(name)
            if match and match["kpi"] in REGISTRY:
                self.fields[name] = value_field(_("Target"), required=False)

    def clean(self):
        data = super().clean()
        if not any(value is not None for value in data.values()):
            raise ValidationError(_("There is no target to accept."))
        return data

    def suggestions(self) -> dict[int, dict[str, Decimal | None]]:
        accepted: dict[int, dict[str, Decimal | None]] = {}
        for name, value in self.cleaned_data.items():
            match = TARGET_NAME.match(name)
            accepted.setdefault(int(match["affiliate"]), {})[match["kpi"]] = value
        return accepted


class ManualValueForm(forms.Form):
    """The value of a manual goal so far, with a note saying what was done."""

    value = value_field(_("Value so far"))
    note = forms.CharField(label=_("Note"), max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


class ReviewFeedbackForm(forms.Form):
    feedback = forms.CharField(
        label=_("Feedback for the affiliate"),
        required=False,
        max_length=10_000,
        widget=forms.Textarea(attrs={"rows": 5}),
    )


class ReviewFilterForm(forms.Form):
    """The review list's GET filters; invalid values fall back to "all"."""

    shared = forms.ChoiceField(
        label=_("Shared"),
        required=False,
        choices=[("", _("Shared or not")), ("yes", _("Shared")), ("no", _("Not shared yet"))],
    )
    q = forms.CharField(label=_("Search"), required=False, max_length=100, strip=True)
    sort = forms.ChoiceField(required=False, choices=[(key, key) for key in ("name", "-name", "shared", "-shared")])

    def values(self) -> dict:
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        return {name: (data.get(name) or "") if name not in self.errors else "" for name in self.fields}
