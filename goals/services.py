"""Writes of the goals app: setting goals (one, many, copied, suggested), manual values, goal settings.

Every service takes the program explicitly and refuses, with a message a person understands, what KPI.md
and the issue rule out: unknown KPIs, targets that cannot be met or make no sense, affiliates of another
program, and any change to a month whose close has begun. Setting the same goal again (same affiliate,
month, KPI and label) updates it. Progress is refreshed right after a change so boards show it at once.

Progress, the month close, clawbacks and reviews live in goals.progress and goals.closing; their entry
points are importable from here too.
"""

from collections.abc import Iterable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from affiliates.models import Affiliate, AffiliateStatus, Program, User
from goals.access import is_manager, require_manager
from goals.closing import (
    annotate_review,
    close_due_months,
    close_month,
    record_clawbacks_for_closed_months,
    share_review,
)
from goals.kpis import REGISTRY, Shape
from goals.locks import lock_program_goals
from goals.models import BonusType, Goal, GoalKind, GoalSettings
from goals.notifications import month_name
from goals.periods import month_start, previous_month
from goals.progress import refresh_goal_progress, write_progress
from goals.selectors import goal_progress_for_month, month_is_closed, suggest_targets

__all__ = [
    "accept_suggestions",
    "annotate_review",
    "close_due_months",
    "close_month",
    "confirm_manual_value",
    "copy_goals_from_previous_month",
    "delete_goal",
    "goal_progress_for_month",
    "record_clawbacks_for_closed_months",
    "refresh_goal_progress",
    "report_manual_value",
    "set_goal",
    "set_goals_for_many",
    "share_review",
    "suggest_targets",
    "update_goal_settings",
]

MANUAL = "manual"
MAX_PERCENT = Decimal(100)


# --- Validation -----------------------------------------------------------------------------------------------


def _decimal(value: Any, field: str, message: str) -> Decimal:
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError, TypeError):
        raise ValidationError({field: message}) from None
    if not number.is_finite():
        raise ValidationError({field: message})
    return number


def _check_open_month(program: Program, month: date) -> None:
    """Refuse a change to a month whose close has begun; call inside the transaction that makes the change."""
    # Shared lock: a close cannot begin between this check and our commit (goals/locks.py).
    lock_program_goals(program, exclusive=False)
    if month_is_closed(program=program, month=month):
        raise ValidationError(
            _("%(month)s is closed; its goals can no longer be changed.") % {"month": month_name(month)}
        )


def _check_affiliate(program: Program, affiliate: Affiliate) -> None:
    # The same words for "missing" and "another program's": nothing about other programs leaks.
    if affiliate is None or affiliate.program_id != program.pk:
        raise ValidationError({"affiliate": _("This affiliate does not exist in this program.")})


def _check_target(kpi_name: str, target: Any) -> Decimal:
    target = _decimal(target, "target", _("Enter the target as a number."))
    if target <= 0:
        raise ValidationError({"target": _("The target must be greater than zero.")})
    if kpi_name == MANUAL:
        return target
    kpi = REGISTRY[kpi_name]
    if kpi.shape == Shape.COUNT and target != target.to_integral_value():
        raise ValidationError({"target": _("%(kpi)s are counted in whole numbers.") % {"kpi": kpi.label}})
    if kpi.max_target is not None and target > kpi.max_target:
        raise ValidationError(
            {
                "target": _("A %(kpi)s target cannot be above %(max)s.")
                % {"kpi": kpi.label, "max": f"{kpi.max_target.normalize():f}"}
            }
        )
    return target


def _check_kpi(kpi_name: str, label: str) -> str:
    kpi_name = (kpi_name or "").strip()
    if kpi_name == MANUAL:
        if not label.strip():
            raise ValidationError({"label": _("Describe the activity of a manual goal, e.g. “Publish 4 reviews”.")})
        return kpi_name
    kpi = REGISTRY.get(kpi_name)
    if kpi is None or not kpi.goal_allowed:
        raise ValidationError({"kpi": _("“%(kpi)s” is not a KPI a goal can be set on.") % {"kpi": kpi_name}})
    return kpi_name


def _bonus_fields(
    bonus_type: str, bonus_amount: Any, bonus_percent: Any, bonus_tiers: list[dict] | None
) -> dict[str, Any]:
    """The goal's bonus fields, validated; fields of other bonus types are cleared."""
    fields: dict[str, Any] = {"bonus_type": bonus_type or "", "bonus_amount": None, "bonus_percent": None}
    fields["bonus_tiers"] = []
    if bonus_type not in BonusType.values:
        raise ValidationError({"bonus_type": _("Choose a fixed amount, a percentage, tiers or no bonus.")})
    if bonus_type == BonusType.FIXED:
        amount = _decimal(bonus_amount, "bonus_amount", _("Enter the bonus amount."))
        if amount <= 0:
            raise ValidationError({"bonus_amount": _("The bonus amount must be greater than zero.")})
        fields["bonus_amount"] = amount.quantize(Decimal("0.01"))
    elif bonus_type == BonusType.PERCENT:
        percent = _decimal(bonus_percent, "bonus_percent", _("Enter the bonus percentage."))
        if not 0 < percent <= MAX_PERCENT:
            raise ValidationError({"bonus_percent": _("The bonus percentage must be above 0 and at most 100.")})
        fields["bonus_percent"] = percent
    elif bonus_type == BonusType.TIERS:
        fields["bonus_tiers"] = _tiers(bonus_tiers)
    return fields


def _tiers(tiers: list[dict] | None) -> list[dict]:
    message = _("Give each tier a progress above 0 % and an amount above 0, each progress once.")
    if not tiers:
        raise ValidationError({"bonus_tiers": _("Add at least one tier.")})
    parsed = []
    for tier in tiers:
        if not isinstance(tier, dict):
            raise ValidationError({"bonus_tiers": message})
        progress = _decimal(tier.get("progress"), "bonus_tiers", message)
        amount = _decimal(tier.get("amount"), "bonus_tiers", message)
        if progress <= 0 or amount <= 0:
            raise ValidationError({"bonus_tiers": message})
        parsed.append((progress, amount.quantize(Decimal("0.01"))))
    if len({progress for progress, _amount in parsed}) != len(parsed):
        raise ValidationError({"bonus_tiers": message})
    return [{"progress": f"{progress:f}", "amount": f"{amount:f}"} for progress, amount in sorted(parsed)]


def _goal_fields(
    *,
    kpi: str,
    target: Any,
    label: str = "",
    min_volume: int | None = None,
    bonus_type: str = "",
    bonus_amount: Any = None,
    bonus_percent: Any = None,
    bonus_tiers: list[dict] | None = None,
    note: str = "",
) -> tuple[str, str, dict[str, Any]]:
    """(kpi, label, other fields) of a goal, validated; raises ValidationError naming the field."""
    label = (label or "").strip()
    kpi = _check_kpi(kpi, label)
    if kpi != MANUAL:
        label = ""  # a measured goal is one per KPI; the label only tells manual goals apart
    if min_volume is not None and (not isinstance(min_volume, int) or min_volume < 0):
        raise ValidationError({"min_volume": _("The minimum volume must be a whole number, zero or more.")})
    fields = {
        "kind": GoalKind.MANUAL if kpi == MANUAL else GoalKind.KPI,
        "target": _check_target(kpi, target),
        "min_volume": min_volume,
        "note": (note or "").strip(),
        **_bonus_fields(bonus_type or "", bonus_amount, bonus_percent, bonus_tiers),
    }
    return kpi, label, fields


def _upsert_goal(
    *, program: Program, affiliate: Affiliate, month: date, kpi: str, label: str, fields: dict, actor: User | None
) -> tuple[Goal, bool]:
    # update_or_create locks an existing row, and on a racing insert re-reads it: never two goals per key.
    return Goal.objects.update_or_create(
        program=program,
        affiliate=affiliate,
        month=month,
        kpi=kpi,
        label=label,
        defaults=fields,
        create_defaults={**fields, "created_by": actor},
    )


def _refresh(program: Program, month: date, affiliate_ids: Iterable[int]) -> None:
    refresh_goal_progress(program=program, month=month, affiliate_ids=sorted(set(affiliate_ids)))


# --- Setting goals --------------------------------------------------------------------------------------------


def set_goal(
    *,
    program: Program,
    affiliate: Affiliate,
    month: date,
    kpi: str,
    target: Decimal | int | str,
    min_volume: int | None = None,
    bonus_type: str = "",
    bonus_amount: Decimal | None = None,
    bonus_percent: Decimal | None = None,
    bonus_tiers: list[dict] | None = None,
    note: str = "",
    label: str = "",
    actor: User | None,
) -> tuple[Goal, bool]:
    """Set one affiliate's goal for a month (``kpi="manual"`` with a ``label`` for a hand-checked activity).

    The same affiliate, month, KPI and label updates the existing goal; returns (goal, created).
    ``bonus_tiers``: [{"progress": 100, "amount": 100}, {"progress": 120, "amount": 250}]; the highest
    tier reached pays. ``actor`` None means the system (demo seed, commands).
    """
    require_manager(program=program, actor=actor)
    _check_affiliate(program, affiliate)
    month = month_start(month)
    kpi, label, fields = _goal_fields(
        kpi=kpi,
        target=target,
        label=label,
        min_volume=min_volume,
        bonus_type=bonus_type,
        bonus_amount=bonus_amount,
        bonus_percent=bonus_percent,
        bonus_tiers=bonus_tiers,
        note=note,
    )
    with transaction.atomic():
        _check_open_month(program, month)
        goal, created = _upsert_goal(
            program=program, affiliate=affiliate, month=month, kpi=kpi, label=label, fields=fields, actor=actor
        )
        _refresh(program, month, [affiliate.pk])
    return goal, created


def _affiliates_of(program: Program, affiliates: QuerySet[Affiliate] | Iterable[int | Affiliate]) -> list[Affiliate]:
    """The program's affiliates among ``affiliates``; any id outside the program is refused, not skipped."""
    if isinstance(affiliates, QuerySet):
        ids = list(affiliates.values_list("pk", flat=True))
    else:
        ids = [item.pk if isinstance(item, Affiliate) else int(item) for item in affiliates]
    found = list(Affiliate.objects.filter(program=program, pk__in=ids).order_by("pk"))
    if len(found) != len(set(ids)):
        raise ValidationError({"affiliate": _("This affiliate does not exist in this program.")})
    return found


def set_goals_for_many(
    *,
    program: Program,
    affiliates: QuerySet[Affiliate] | Iterable[int | Affiliate],
    month: date,
    goals: list[dict[str, Any]],
    actor: User | None,
) -> int:
    """Apply a template of goals to many affiliates at once; returns how many goals were created or updated.

    Each template item takes set_goal's keywords (``kpi``, ``target``, optional ``min_volume``, bonus fields,
    ``note``, ``label``): "all gold affiliates: 500 clicks, 5 % conversion rate" is
    ``affiliates=Affiliate.objects.filter(program=p, tier="gold"), goals=[{"kpi": "clicks", "target": 500},
    {"kpi": "conversion_rate", "target": 5}]``. Everything is validated before anything is written.
    """
    require_manager(program=program, actor=actor)
    month = month_start(month)
    members = _affiliates_of(program, affiliates)
    allowed = {
        "kpi",
        "target",
        "label",
        "min_volume",
        "bonus_type",
        "bonus_amount",
        "bonus_percent",
        "bonus_tiers",
        "note",
    }
    templates = []
    for item in goals:
        unknown = set(item) - allowed
        if unknown:
            raise ValidationError(_("Unknown goal fields: %(fields)s.") % {"fields": ", ".join(sorted(unknown))})
        templates.append(_goal_fields(**item))
    written = 0
    with transaction.atomic():
        _check_open_month(program, month)
        for affiliate in members:
            for kpi, label, fields in templates:
                _upsert_goal(
                    program=program, affiliate=affiliate, month=month, kpi=kpi, label=label, fields=fields, actor=actor
                )
                written += 1
        _refresh(program, month, [affiliate.pk for affiliate in members])
    return written


def copy_goals_from_previous_month(
    *, program: Program, month: date, actor: User | None, affiliate_ids: Iterable[int] | None = None
) -> int:
    """Copy last month's goals of approved affiliates into ``month``; goals already set there are kept.

    Targets, minimum volumes, bonuses, notes and manual activities are copied; reported manual values are
    not. Returns how many goals were created.
    """
    require_manager(program=program, actor=actor)
    month = month_start(month)
    source = Goal.objects.filter(
        program=program, month=previous_month(month), affiliate__status=AffiliateStatus.APPROVED
    ).order_by("pk")
    if affiliate_ids is not None:
        source = source.filter(affiliate_id__in=list(affiliate_ids))
    created = 0
    with transaction.atomic():
        _check_open_month(program, month)
        existing = set(Goal.objects.filter(program=program, month=month).values_list("affiliate_id", "kpi", "label"))
        copies = [
            Goal(
                program=program,
                affiliate_id=goal.affiliate_id,
                month=month,
                kind=goal.kind,
                kpi=goal.kpi,
                label=goal.label,
                target=goal.target,
                min_volume=goal.min_volume,
                bonus_type=goal.bonus_type,
                bonus_amount=goal.bonus_amount,
                bonus_percent=goal.bonus_percent,
                bonus_tiers=goal.bonus_tiers,
                note=goal.note,
                created_by=actor,
            )
            for goal in source
            if (goal.affiliate_id, goal.kpi, goal.label) not in existing
        ]
        # ignore_conflicts: a goal set meanwhile by someone else wins over the copy.
        Goal.objects.bulk_create(copies, ignore_conflicts=True)
        created = len(copies)
        _refresh(program, month, [goal.affiliate_id for goal in copies])
    return created


def accept_suggestions(
    *,
    program: Program,
    month: date,
    suggestions: dict[int, dict[str, Decimal | None]],
    actor: User | None,
) -> int:
    """Set the suggested targets (suggest_targets' result, possibly edited) as goals; None entries are skipped.

    Returns how many goals were created or updated.
    """
    require_manager(program=program, actor=actor)
    month = month_start(month)
    members = {affiliate.pk: affiliate for affiliate in _affiliates_of(program, list(suggestions))}
    planned = []
    for affiliate_id, targets in suggestions.items():
        for kpi, target in targets.items():
            if target is not None:
                planned.append((members[int(affiliate_id)], *_goal_fields(kpi=kpi, target=target)))
    with transaction.atomic():
        _check_open_month(program, month)
        for affiliate, kpi, label, fields in planned:
            # Accepting a suggestion changes the target only: bonuses and notes set before stay.
            Goal.objects.update_or_create(
                program=program,
                affiliate=affiliate,
                month=month,
                kpi=kpi,
                label=label,
                defaults={"target": fields["target"]},
                create_defaults={**fields, "created_by": actor},
            )
        _refresh(program, month, [affiliate.pk for affiliate, *_rest in planned])
    return len(planned)


def delete_goal(*, program: Program, goal: Goal, actor: User | None) -> None:
    """Delete a goal of an open month, with its progress and notifications."""
    require_manager(program=program, actor=actor)
    if goal.program_id != program.pk:
        raise ValidationError(_("This goal does not exist."))
    with transaction.atomic():
        _check_open_month(program, goal.month)
        Goal.objects.filter(program=program, pk=goal.pk).delete()


# --- Manual goals ---------------------------------------------------------------------------------------------


def _locked_manual_goal(program: Program, goal: Goal) -> Goal:
    if goal.program_id != program.pk:
        raise ValidationError(_("This goal does not exist."))
    if goal.kind != GoalKind.MANUAL:
        raise ValidationError(_("Only manual goals take a reported value; this one is measured."))
    _check_open_month(program, goal.month)
    return Goal.objects.select_for_update().select_related("affiliate").get(program=program, pk=goal.pk)


def report_manual_value(*, program: Program, goal: Goal, value: Decimal | int | str, note: str, actor: User) -> Goal:
    """Report the value of a manual goal with a note, by a manager or by the goal's affiliate.

    A value reported by the affiliate waits for a manager's confirmation (it counts as provisional only);
    a value a manager reports counts as confirmed at once.
    """
    value = _decimal(value, "value", _("Enter the value as a number."))
    if value < 0:
        raise ValidationError({"value": _("The value cannot be negative.")})
    note = (note or "").strip()
    if not note:
        raise ValidationError({"note": _("Add a note saying what was done.")})
    with transaction.atomic():
        locked = _locked_manual_goal(program, goal)
        manager = is_manager(program=program, user=actor)
        if not manager and (actor is None or locked.affiliate.user_id != actor.pk):
            raise ValidationError(_("Only the affiliate of this goal or a manager can report its value."))
        locked.manual_value = value
        locked.manual_note = note
        locked.manual_confirmed = manager
        locked.save(update_fields=["manual_value", "manual_note", "manual_confirmed", "updated_at"])
        write_progress(program=program, month=locked.month, goals=_with_progress(program, locked))
    return locked


def confirm_manual_value(*, program: Program, goal: Goal, actor: User | None) -> Goal:
    """A manager confirms the value reported for a manual goal: from now on it counts as confirmed."""
    require_manager(program=program, actor=actor)
    with transaction.atomic():
        locked = _locked_manual_goal(program, goal)
        if locked.manual_value is None:
            raise ValidationError(_("Nothing has been reported for this goal yet."))
        locked.manual_confirmed = True
        locked.save(update_fields=["manual_confirmed", "updated_at"])
        write_progress(program=program, month=locked.month, goals=_with_progress(program, locked))
    return locked


def _with_progress(program: Program, goal: Goal) -> list[Goal]:
    return list(Goal.objects.filter(program=program, pk=goal.pk).select_related("affiliate", "progress"))


# --- Settings -------------------------------------------------------------------------------------------------


def update_goal_settings(
    *,
    program: Program,
    actor: User | None,
    month_close_grace_days: int | None = None,
    notify_affiliates: bool | None = None,
    notify_managers: bool | None = None,
) -> GoalSettings:
    """Change the program's goal settings; arguments left None keep their value."""
    require_manager(program=program, actor=actor)
    changes = {
        name: value
        for name, value in {
            "month_close_grace_days": month_close_grace_days,
            "notify_affiliates": notify_affiliates,
            "notify_managers": notify_managers,
        }.items()
        if value is not None
    }
    if "month_close_grace_days" in changes and not 0 <= changes["month_close_grace_days"] <= 28:
        raise ValidationError({"month_close_grace_days": _("The grace period is 0 to 28 days.")})
    settings, _created = GoalSettings.objects.update_or_create(program=program, defaults=changes)
    return settings
