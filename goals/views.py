"""Manager pages of goals (/p/<program_slug>/goals/…): the board, goal setting, manual values, reviews and
notifications. Analysts read; owners and managers change, always through goals.services.
"""

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import wraps
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Exists, F, OuterRef
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.formats import date_format
from django.utils.translation import get_language, ngettext
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from affiliates.listing import Column, headers, paginate
from affiliates.models import Affiliate, AffiliateStatus
from affiliates.services import can_manage
from affiliates.tenancy import get_in_program_or_404, managing_view, staff_view
from goals import board, services
from goals.forms import (
    AcceptSuggestionsForm,
    BoardFilterForm,
    BulkGoalsForm,
    GoalEditForm,
    GoalForm,
    GoalLineFormSet,
    GoalTargetForm,
    ManualValueForm,
    ReviewFeedbackForm,
    ReviewFilterForm,
    SuggestionForm,
    tiers_text,
)
from goals.kpis import GOAL_KPIS, View
from goals.models import Goal, GoalKind, MonthlyReview, Notification
from goals.periods import Period, local_date, month_start, next_month, previous_month
from goals.selectors import kpi_values, month_is_closed, suggest_targets

HISTORY_MONTHS = 3
SUGGESTION_PAGE_SIZE = 50
REVIEW_PAGE_SIZE = 50
NOTIFICATION_PAGE_SIZE = 50
# Live updates re-send what changed in this window before the last poll, so a progress row written just
# before a poll but committed just after it is never missed (re-sending a cell is harmless).
POLL_OVERLAP = timedelta(seconds=2)


# --- Shared helpers -------------------------------------------------------------------------------------------


def program_time(view: Callable) -> Callable:
    """Render times in the program's time zone for this request."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        with timezone.override(ZoneInfo(request.program.timezone)):
            return view(request, *args, **kwargs)

    return wrapper


def plain(number: Decimal) -> str:
    """A stored Decimal as a form shows it: 500, 5.25 (not 5E+2 nor 500.000000)."""
    return f"{number.normalize():f}"


def current_month(program) -> date:
    return month_start(local_date(program, timezone.now()))


# Languages whose month names are common nouns, written in lower case inside a sentence ("Cele na listopad
# 2026"); Django's YEAR_MONTH_FORMAT gives the standalone, capitalised form ("Listopad 2026").
LOWER_CASE_MONTHS = frozenset({"pl", "ru", "sv"})


def month_label(month: date) -> str:
    """The month and year as they read inside a sentence in the active language ("Goals for November 2026")."""
    label = date_format(month, "YEAR_MONTH_FORMAT")
    if (get_language() or "").split("-")[0] in LOWER_CASE_MONTHS:
        return label[:1].lower() + label[1:]
    return label


def url_of(request: HttpRequest, name: str, **kwargs) -> str:
    return reverse(f"manage:{name}", kwargs={"program_slug": request.program.slug, **kwargs})


def board_url(request: HttpRequest, month: date) -> str:
    return url_of(request, "goal_board", month=month)


def add_service_error(form: Form, error: ValidationError) -> None:
    """Show a service's ValidationError on the field it names, or above the form."""
    if hasattr(error, "error_dict"):
        for name, errors in error.error_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, error)


def since_param(request: HttpRequest) -> datetime | None:
    """The ``since`` of a live-update poll: microseconds since the epoch, as the page wrote it."""
    try:
        return datetime.fromtimestamp(int(request.GET.get("since", "")) / 1_000_000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def since_value(moment: datetime) -> int:
    return int((moment - POLL_OVERLAP).timestamp() * 1_000_000)


def page_ids(text: str) -> list[int]:
    """The affiliate ids a polling board page shows (``ids=3,5,8``), at most a page's worth; junk is ignored."""
    ids = [int(part) for part in text.split(",")[: board.BOARD_PAGE_SIZE] if part.isdigit() and len(part) < 12]
    return sorted(set(ids))


def poll_seconds() -> int:
    return getattr(settings, "GOAL_POLL_SECONDS", 5)


def month_context(request: HttpRequest, month: date) -> dict:
    closed = month_is_closed(program=request.program, month=month)
    return {
        "month": month,
        "month_label": month_label(month),
        "closed": closed,
        "can_edit": can_manage(request.membership) and not closed,
        "can_manage": can_manage(request.membership),
        "previous_month": previous_month(month),
        "next_month": next_month(month),
        "this_month": current_month(request.program),
        # Whether the month's numbers can still move (begun and not closed): the board then polls for changes.
        "live": month <= current_month(request.program) and not closed,
        # Reversed once, not for each of a board's 150 cells: /p/<slug>/goals/goal/ and /p/<slug>/affiliates/.
        "goal_prefix": url_of(request, "goal_edit", goal_id=0).removesuffix("0/"),
        "affiliate_prefix": url_of(request, "affiliate_detail", affiliate_id=0).removesuffix("0/"),
        "create_url": url_of(request, "goal_create", month=month),
    }


def history_for(program, month: date, affiliate_ids: list[int]) -> list[tuple[date, dict]]:
    """The confirmed KPI values of the three months before ``month``, oldest first (one query per month)."""
    months, past = [], month
    for _step in range(HISTORY_MONTHS):
        past = previous_month(past)
        months.insert(0, past)
    kpis = [kpi.name for kpi in GOAL_KPIS]
    return [
        (
            past,
            kpi_values(
                program=program, period=Period.month(past), kpis=kpis, affiliate_ids=affiliate_ids, view=View.CONFIRMED
            ),
        )
        for past in months
    ]


def history_table(program, month: date, affiliate: Affiliate | None) -> dict:
    """One affiliate's last three months per goal KPI, for the table beside a target."""
    if affiliate is None:
        return {"months": [], "rows": []}
    history = history_for(program, month, [affiliate.pk])
    return {
        "months": [past for past, _values in history],
        "rows": [(kpi.name, [values[affiliate.pk][kpi.name] for _past, values in history]) for kpi in GOAL_KPIS],
    }


# --- The board ------------------------------------------------------------------------------------------------


@staff_view
def goals_home(request: HttpRequest, program_slug: str) -> HttpResponse:
    """The board of the program's current local month."""
    return goal_board(request, program_slug, current_month(request.program))


def board_headers(columns: list[board.BoardColumn], sort: str) -> list[dict]:
    fixed = headers([Column(_("Affiliate"), "name"), Column(_("Tier"), "tier")], sort)
    goal_headers = headers([Column(column.label, column.sort_key) for column in columns], sort)
    for header, column in zip(goal_headers, columns, strict=True):
        header |= {"definition": column.definition, "key": column.key}
    return fixed + goal_headers


@staff_view
def goal_board(request: HttpRequest, program_slug: str, month: date) -> HttpResponse:
    """The month's board. htmx asks for three parts besides the rows: ``?part=summary`` (tab counts and
    totals over every listed affiliate, loaded after the rows), and polls with ``since`` that get only the
    cells whose progress changed since then (or 204)."""
    program, started = request.program, timezone.now()
    form = BoardFilterForm(request.GET)
    filters = form.filters()
    columns = board.board_columns(program=program, month=month, kpi=filters.kpi)
    context = {
        "filters": filters,
        "columns": columns,
        "views": BoardFilterForm.base_fields["view"].choices,
        "since": since_value(started),
        "poll_seconds": poll_seconds(),
    }
    if request.htmx and request.GET.get("part") == "summary":
        context |= {
            "counts": board.view_counts(program=program, month=month, filters=filters),
            "totals": board.column_totals(program=program, month=month, filters=filters, columns=columns),
            **month_context(request, month),
        }
        return render(request, "goals/board.html#summary", context)
    since = since_param(request)
    if request.htmx and since is not None:
        # The page names its rows, so a poll costs the same whatever the program's size. Any id is only ever
        # looked up among this program's goals.
        ids = page_ids(request.GET.get("ids", ""))
        cells = board.changed_cells(program=program, month=month, affiliate_ids=ids, columns=columns, since=since)
        if not cells:
            return HttpResponse(status=204)
        context |= {"cells": cells, "page_ids": ",".join(map(str, ids)), **month_context(request, month)}
        return render(request, "goals/board.html#live", context)
    listed = board.filtered_affiliates(program=program, month=month, filters=filters)
    ordered = board.sorted_affiliates(listed, program=program, month=month, sort=filters.sort, columns=columns)
    page = paginate(request, ordered.only(*board.ROW_FIELDS), per_page=board.BOARD_PAGE_SIZE)
    context |= {
        "page": page,
        "page_ids": ",".join(str(affiliate.pk) for affiliate in page),
        "rows": board.board_rows(program=program, month=month, affiliates=page, columns=columns),
        "headers": board_headers(columns, filters.sort),
        "form": form,
        **month_context(request, month),
    }
    response = render(request, "goals/board.html#board" if request.htmx else "goals/board.html", context)
    patch_vary_headers(response, ["HX-Request"])
    return response


def goal_or_404(request: HttpRequest, goal_id: int) -> Goal:
    return get_in_program_or_404(Goal.objects.select_related("affiliate", "progress"), request.program, pk=goal_id)


def cell_of(goal: Goal) -> board.BoardCell:
    """The board cell of one measured goal, freshly read with its progress."""
    fresh = Goal.objects.select_related("affiliate", "progress").get(program=goal.program_id, pk=goal.pk)
    return board.BoardCell(fresh.affiliate_id, board.BoardColumn(fresh.kpi), [fresh])


def goal_kwargs(goal: Goal) -> dict:
    """Everything set_goal needs to keep a goal as it is, so an inline edit changes only the target."""
    return {
        "affiliate": goal.affiliate,
        "month": goal.month,
        "kpi": goal.kpi,
        "label": goal.label,
        "target": goal.target,
        "min_volume": goal.min_volume,
        "bonus_type": goal.bonus_type,
        "bonus_amount": goal.bonus_amount,
        "bonus_percent": goal.bonus_percent,
        "bonus_tiers": goal.bonus_tiers or None,
        "note": goal.note,
    }


@managing_view
def goal_target(request: HttpRequest, program_slug: str, goal_id: int) -> HttpResponse:
    """Edit a goal's target only: inline on the board with htmx (the cell comes back), or as a small page."""
    goal = goal_or_404(request, goal_id)
    if goal.kind == GoalKind.MANUAL:
        return redirect(url_of(request, "goal_manual", goal_id=goal.pk))
    context = {"cell": cell_of(goal), "goal": goal, **month_context(request, goal.month)}
    if request.htmx and request.GET.get("cancel"):
        return render(request, "goals/board.html#cell", context)
    form = GoalTargetForm(request.POST or None, initial={"target": plain(goal.target)})
    if request.method == "POST" and form.is_valid():
        try:
            services.set_goal(program=request.program, **(goal_kwargs(goal) | form.cleaned_data), actor=request.user)
        except ValidationError as error:
            add_service_error(form, error)
        else:
            if not request.htmx:
                messages.success(request, _("Target of %(name)s updated.") % {"name": goal.affiliate.name})
                return redirect(board_url(request, goal.month))
            return render(request, "goals/board.html#cell", context | {"cell": cell_of(goal)})
    template = "goals/board.html#target_form" if request.htmx else "goals/goal_target.html"
    return render(request, template, context | {"form": form}, status=400 if form.errors else 200)


# --- Setting goals --------------------------------------------------------------------------------------------


def chosen_affiliate(request: HttpRequest, form: GoalForm) -> Affiliate | None:
    """The affiliate picked in the goal form (posted, or preset by ``?affiliate=``), for its history."""
    raw = form["affiliate"].value()
    try:
        return form.fields["affiliate"].queryset.filter(pk=int(raw)).first() if raw else None
    except (TypeError, ValueError):
        return None


@managing_view
def goal_create(request: HttpRequest, program_slug: str, month: date) -> HttpResponse:
    """Set one goal; the affiliate's last three months are shown beside the target."""
    program = request.program
    initial = {key: request.GET[key] for key in ("affiliate", "kpi") if request.GET.get(key)}
    form = GoalForm(request.POST or None, program=program, initial=initial)
    # Picking an affiliate reloads the history beside the form (the page works without it, too).
    form.fields["affiliate"].widget.attrs |= {
        "hx-get": request.path,
        "hx-target": "#history",
        "hx-swap": "outerHTML",
        "hx-trigger": "change",
    }
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            _goal, created = services.set_goal(
                program=program,
                affiliate=data["affiliate"],
                month=month,
                **form.goal_fields(),
                actor=request.user,
            )
        except ValidationError as error:
            add_service_error(form, error)
        else:
            message = _("Goal set for %(name)s.") if created else _("Goal of %(name)s updated.")
            messages.success(request, message % {"name": data["affiliate"].name})
            return redirect(board_url(request, month))
    affiliate = chosen_affiliate(request, form)
    context = {
        "form": form,
        "affiliate": affiliate,
        "history": history_table(program, month, affiliate),
        "title": _("Set a goal for %(month)s") % {"month": month_label(month)},
        **month_context(request, month),
    }
    template = "goals/goal_form.html#history" if request.htmx and request.method == "GET" else "goals/goal_form.html"
    return render(request, template, context, status=400 if form.errors else 200)


@managing_view
def goal_edit(request: HttpRequest, program_slug: str, goal_id: int) -> HttpResponse:
    goal = goal_or_404(request, goal_id)
    initial = goal_kwargs(goal) | {"bonus_tiers": tiers_text(goal.bonus_tiers), "target": plain(goal.target)}
    form = GoalEditForm(request.POST or None, program=request.program, initial=initial)
    if request.method == "POST" and form.is_valid():
        fields = form.goal_fields() | {"kpi": goal.kpi, "label": goal.label}
        try:
            services.set_goal(
                program=request.program, affiliate=goal.affiliate, month=goal.month, **fields, actor=request.user
            )
        except ValidationError as error:
            add_service_error(form, error)
        else:
            messages.success(request, _("Goal of %(name)s updated.") % {"name": goal.affiliate.name})
            return redirect(board_url(request, goal.month))
    context = {
        "form": form,
        "goal": goal,
        "affiliate": goal.affiliate,
        "history": history_table(request.program, goal.month, goal.affiliate),
        "title": _("Edit the goal of %(name)s") % {"name": goal.affiliate.name},
        **month_context(request, goal.month),
    }
    return render(request, "goals/goal_form.html", context, status=400 if form.errors else 200)


@require_POST
@managing_view
def goal_delete(request: HttpRequest, program_slug: str, goal_id: int) -> HttpResponse:
    goal = goal_or_404(request, goal_id)
    try:
        services.delete_goal(program=request.program, goal=goal, actor=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, _("Goal of %(name)s deleted.") % {"name": goal.affiliate.name})
    return redirect(board_url(request, goal.month))


def bulk_affiliates(program, month: date, data: dict):
    affiliates = Affiliate.objects.filter(program=program, status=AffiliateStatus.APPROVED)
    if data.get("tier"):
        affiliates = affiliates.filter(tier=data["tier"])
    if data.get("only_without_goals"):
        affiliates = affiliates.exclude(goals__month=month)
    return affiliates


@managing_view
def goal_bulk(request: HttpRequest, program_slug: str, month: date) -> HttpResponse:
    """Apply a goal template ("all gold affiliates: 500 clicks, 5 % conversion rate") to many affiliates."""
    program = request.program
    form = BulkGoalsForm(request.POST or request.GET or None)
    lines = GoalLineFormSet(request.POST or None, prefix="lines")
    if request.method == "POST" and form.is_valid() and lines.is_valid():
        items = [item for item in (line.template_item() for line in lines) if item]
        if not items:
            form.add_error(None, _("Fill in at least one line: a KPI and its target."))
        else:
            try:
                written = services.set_goals_for_many(
                    program=program,
                    affiliates=bulk_affiliates(program, month, form.cleaned_data),
                    month=month,
                    goals=items,
                    actor=request.user,
                )
            except ValidationError as error:
                add_service_error(form, error)
            else:
                message = ngettext("%(count)s goal set or updated.", "%(count)s goals set or updated.", written)
                messages.success(request, message % {"count": written})
                return redirect(board_url(request, month))
    matched = bulk_affiliates(program, month, form.cleaned_data if form.is_valid() else {}).count()
    failed = bool(form.errors) or (lines.is_bound and not lines.is_valid())
    context = {"form": form, "lines": lines, "matched": matched, **month_context(request, month)}
    return render(request, "goals/goal_bulk.html", context, status=400 if failed else 200)


@managing_view
def goal_copy(request: HttpRequest, program_slug: str, month: date) -> HttpResponse:
    """Copy last month's goals of approved affiliates into this month (goals already set here stay)."""
    program = request.program
    if request.method == "POST":
        try:
            created = services.copy_goals_from_previous_month(program=program, month=month, actor=request.user)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
            return redirect(url_of(request, "goal_copy", month=month))
        message = ngettext("%(count)s goal copied from last month.", "%(count)s goals copied from last month.", created)
        messages.success(request, message % {"count": created})
        return redirect(board_url(request, month))
    source = Goal.objects.filter(
        program=program, month=previous_month(month), affiliate__status=AffiliateStatus.APPROVED
    )
    already = Goal.objects.filter(
        program=program, month=month, affiliate=OuterRef("affiliate"), kpi=OuterRef("kpi"), label=OuterRef("label")
    )
    context = {
        "source_goals": source.count(),
        "to_copy": source.exclude(Exists(already)).count(),
        "source_month_label": month_label(previous_month(month)),
        **month_context(request, month),
    }
    return render(request, "goals/goal_copy.html", context)


@managing_view
def goal_suggest(request: HttpRequest, program_slug: str, month: date) -> HttpResponse:
    """Suggested targets from each affiliate's own last three months × a growth factor, editable, then accepted."""
    program = request.program
    accept_form = None
    if request.method == "POST":
        accept_form = AcceptSuggestionsForm(request.POST)
        if accept_form.is_valid():
            try:
                accepted = services.accept_suggestions(
                    program=program, month=month, suggestions=accept_form.suggestions(), actor=request.user
                )
            except ValidationError as error:
                add_service_error(accept_form, error)
            else:
                message = ngettext(
                    "%(count)s suggested goal accepted.", "%(count)s suggested goals accepted.", accepted
                )
                messages.success(request, message % {"count": accepted})
                return redirect(board_url(request, month))
    form = SuggestionForm(request.GET if "growth" in request.GET else None, initial=SuggestionForm.DEFAULTS)
    choice = form.cleaned_data if form.is_bound and form.is_valid() else SuggestionForm.DEFAULTS
    affiliates = Affiliate.objects.filter(program=program, status=AffiliateStatus.APPROVED).order_by("name", "pk")
    if choice["tier"]:
        affiliates = affiliates.filter(tier=choice["tier"])
    page = paginate(request, affiliates, per_page=SUGGESTION_PAGE_SIZE)
    ids = [affiliate.pk for affiliate in page]
    suggestions = suggest_targets(
        program=program, month=month, kpis=choice["kpis"], growth=choice["growth"], affiliate_ids=ids
    )
    current = {
        (goal.affiliate_id, goal.kpi): goal.target
        for goal in Goal.objects.filter(program=program, month=month, affiliate_id__in=ids, kind=GoalKind.KPI)
    }
    history = history_for(program, month, ids)
    rows = [
        {
            "affiliate": affiliate,
            "cells": [
                {
                    "kpi": kpi,
                    "history": [values[affiliate.pk][kpi] for _past, values in history],
                    "suggestion": suggestions[affiliate.pk].get(kpi),
                    "current": current.get((affiliate.pk, kpi)),
                    "name": f"target-{affiliate.pk}-{kpi}",
                    "posted": accept_form.data.get(f"target-{affiliate.pk}-{kpi}") if accept_form else None,
                    "errors": accept_form.errors.get(f"target-{affiliate.pk}-{kpi}") if accept_form else None,
                }
                for kpi in choice["kpis"]
            ],
        }
        for affiliate in page
    ]
    context = {
        "form": form,
        "accept_form": accept_form,
        "page": page,
        "kpis": choice["kpis"],
        "growth": choice["growth"],
        "rows": rows,
        "history_months": [past for past, _values in history],
        "colspan": 1 + 2 * len(choice["kpis"]),
        **month_context(request, month),
    }
    failed = accept_form is not None and bool(accept_form.errors)
    return render(request, "goals/goal_suggest.html", context, status=400 if failed else 200)


# --- Manual goals ---------------------------------------------------------------------------------------------


@managing_view
def goal_manual(request: HttpRequest, program_slug: str, goal_id: int) -> HttpResponse:
    """A manager reports the value of a manual goal (confirmed at once) or confirms the affiliate's report."""
    goal = goal_or_404(request, goal_id)
    initial = {"value": plain(goal.manual_value) if goal.manual_value is not None else None}
    form = ManualValueForm(request.POST or None, initial=initial | {"note": goal.manual_note})
    if request.method == "POST" and form.is_valid():
        try:
            services.report_manual_value(program=request.program, goal=goal, **form.cleaned_data, actor=request.user)
        except ValidationError as error:
            add_service_error(form, error)
        else:
            messages.success(request, _("Value of “%(goal)s” saved.") % {"goal": goal.label})
            return redirect(board_url(request, goal.month))
    context = {"form": form, "goal": goal, **month_context(request, goal.month)}
    return render(request, "goals/goal_manual.html", context, status=400 if form.errors else 200)


@require_POST
@managing_view
def goal_confirm(request: HttpRequest, program_slug: str, goal_id: int) -> HttpResponse:
    goal = goal_or_404(request, goal_id)
    try:
        services.confirm_manual_value(program=request.program, goal=goal, actor=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, _("Value of “%(goal)s” confirmed.") % {"goal": goal.label})
    return redirect(board_url(request, goal.month))


# --- Monthly reviews ------------------------------------------------------------------------------------------

REVIEW_SORTS = {
    "name": ("affiliate__name", "pk"),
    "-name": ("-affiliate__name", "-pk"),
    "shared": (F("shared_at").asc(nulls_first=True), "affiliate__name"),
    "-shared": (F("shared_at").desc(nulls_last=True), "affiliate__name"),
}


@staff_view
@program_time
def review_list(request: HttpRequest, program_slug: str, month: date) -> HttpResponse:
    filters = ReviewFilterForm(request.GET).values()
    reviews = MonthlyReview.objects.filter(program=request.program, month=month).select_related("affiliate")
    if filters["shared"]:
        reviews = reviews.filter(shared_at__isnull=filters["shared"] == "no")
    if filters["q"]:
        reviews = reviews.filter(affiliate__name__icontains=filters["q"])
    sort = filters["sort"] or "name"
    page = paginate(request, reviews.order_by(*REVIEW_SORTS[sort]), per_page=REVIEW_PAGE_SIZE)
    context = {
        "page": page,
        "filters": filters,
        "headers": headers(
            [
                Column(_("Affiliate"), "name"),
                Column(_("Best KPI")),
                Column(_("Worst KPI")),
                Column(_("Shared"), "shared"),
            ],
            sort,
        ),
        **month_context(request, month),
    }
    response = render(request, "goals/review_list.html#results" if request.htmx else "goals/review_list.html", context)
    patch_vary_headers(response, ["HX-Request"])
    return response


def review_or_404(request: HttpRequest, review_id: int) -> MonthlyReview:
    return get_in_program_or_404(MonthlyReview.objects.select_related("affiliate"), request.program, pk=review_id)


@staff_view
@program_time
def review_detail(request: HttpRequest, program_slug: str, review_id: int) -> HttpResponse:
    review = review_or_404(request, review_id)
    form = ReviewFeedbackForm(initial={"feedback": review.feedback})
    return render_review(request, review, form)


def render_review(request: HttpRequest, review: MonthlyReview, form: ReviewFeedbackForm, status: int = 200):
    context = {"review": review, "form": form, "portal": False, **month_context(request, review.month)}
    return render(request, "goals/review_detail.html", context, status=status)


@require_POST
@managing_view
@program_time
def review_feedback(request: HttpRequest, program_slug: str, review_id: int) -> HttpResponse:
    review = review_or_404(request, review_id)
    form = ReviewFeedbackForm(request.POST)
    if form.is_valid():
        try:
            services.annotate_review(
                program=request.program, review=review, feedback=form.cleaned_data["feedback"], actor=request.user
            )
        except ValidationError as error:
            add_service_error(form, error)
        else:
            messages.success(request, _("Feedback saved."))
            return redirect(url_of(request, "review_detail", review_id=review.pk))
    return render_review(request, review, form, status=400)


@require_POST
@managing_view
def review_share(request: HttpRequest, program_slug: str, review_id: int) -> HttpResponse:
    review = review_or_404(request, review_id)
    try:
        services.share_review(program=request.program, review=review, actor=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, _("Review shared with %(name)s.") % {"name": review.affiliate.name})
    return redirect(url_of(request, "review_detail", review_id=review.pk))


# --- Notifications (manager and portal alike) -----------------------------------------------------------------


def notification_page(request: HttpRequest, area: str) -> HttpResponse:
    """The signed-in person's notifications in this program, newest first."""
    notifications = Notification.objects.filter(program=request.program, user=request.user)
    page = paginate(request, notifications, per_page=NOTIFICATION_PAGE_SIZE)
    unread = notifications.filter(read_at__isnull=True).count()
    with timezone.override(ZoneInfo(request.program.timezone)):
        response = render(
            request,
            "goals/notification_list.html#results" if request.htmx else "goals/notification_list.html",
            {"page": page, "unread": unread, "area": area},
        )
    patch_vary_headers(response, ["HX-Request"])
    return response


def mark_read(request: HttpRequest, area: str) -> HttpResponse:
    # Reading one's own notifications is the person's own state, not a program change: no service rules apply.
    Notification.objects.filter(program=request.program, user=request.user, read_at__isnull=True).update(
        read_at=timezone.now()
    )
    messages.success(request, _("All notifications marked as read."))
    return redirect(reverse(f"{area}:notification_list", kwargs={"program_slug": request.program.slug}))


def badge(request: HttpRequest) -> HttpResponse:
    """The unread count in the top bar, loaded (and refreshed) by htmx so pages pay no query for it."""
    unread = Notification.objects.filter(program=request.program, user=request.user, read_at__isnull=True).count()
    response = render(request, "goals/_notification_badge.html", {"unread": unread})
    patch_vary_headers(response, ["HX-Request"])
    return response


@staff_view
def notification_list(request: HttpRequest, program_slug: str) -> HttpResponse:
    return notification_page(request, "manage")


@require_POST
@staff_view
def notifications_read(request: HttpRequest, program_slug: str) -> HttpResponse:
    return mark_read(request, "manage")


@staff_view
def notification_badge(request: HttpRequest, program_slug: str) -> HttpResponse:
    return badge(request)
