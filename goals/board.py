"""Reads of the manager goal board: one row per affiliate, a column per goal KPI, totals and live changes.

The board reads stored GoalProgress rows and never computes a KPI per row. A page of 50 affiliates costs the
same four queries for a program of 10 or 10,000 affiliates: the columns, the paginator's count, the page of
affiliates (sorted in the database, by any goal column) and their goals with progress. The summary (tab counts
and column totals) adds up every listed affiliate, so it is a separate request the page loads after its rows
(two more queries), and a live update asks for it again only when something changed.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from django.db import connection
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    FilteredRelation,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Lower

from affiliates.models import Affiliate, AffiliateStatus, Program, Tier
from goals.kpis import GOAL_KPIS, KPI, REGISTRY, Shape
from goals.models import Goal, GoalKind, GoalStatus
from goals.progress import MANUAL_KPI

BOARD_PAGE_SIZE = 50
MANUAL = "manual"
HUNDRED = Decimal(100)
# The "at risk" view lists affiliates with a goal that needs attention: at risk, or already behind.
NEEDS_ATTENTION = (GoalStatus.AT_RISK, GoalStatus.BEHIND)
GOAL_SORT_PREFIX = "goal:"
TIER_RANK = Case(
    When(tier=Tier.STANDARD, then=Value(0)),
    When(tier=Tier.SILVER, then=Value(1)),
    When(tier=Tier.GOLD, then=Value(2)),
    default=Value(0),
    output_field=IntegerField(),
)
KPI_ORDER = {kpi.name: index for index, kpi in enumerate(GOAL_KPIS)}
# The month's distinct KPIs, one index probe each: each step asks for the smallest KPI after the previous one.
MONTH_KPIS_SQL = f"""
    WITH RECURSIVE kpis(kpi) AS (
        SELECT MIN(kpi) FROM {Goal._meta.db_table} WHERE program_id = %(program)s AND month = %(month)s
        UNION ALL
        SELECT (
            SELECT MIN(kpi) FROM {Goal._meta.db_table}
            WHERE program_id = %(program)s AND month = %(month)s AND kpi > kpis.kpi
        ) FROM kpis WHERE kpi IS NOT NULL
    )
    SELECT kpi FROM kpis WHERE kpi IS NOT NULL
"""  # noqa: S608 - the table name comes from the model, values are parameters
# What a row shows of its affiliate; the sort carries every column of 10,000 affiliates through PostgreSQL's sort.
ROW_FIELDS = ("program_id", "name", "status", "tier")
PAGE_PROGRESS = "progress_in_program"  # a goal's progress, joined on the program too (see _goals_by_affiliate)
# What a board cell shows of a goal (its progress comes whole); a page reads 150, and SQLite decodes every decimal.
CELL_FIELDS = (
    "program_id",
    "affiliate_id",
    "month",
    "kind",
    "kpi",
    "label",
    "target",
    "manual_value",
    "manual_note",
    "manual_confirmed",
)


class BoardView(StrEnum):
    ALL = "all"
    AT_RISK = "at_risk"
    NOT_SET = "not_set"


@dataclass(frozen=True)
class BoardFilters:
    """What the board shows: a view (tab), filters, and a sort key ("name", "-tier", "goal:clicks", …)."""

    view: str = BoardView.ALL
    status: str = ""
    kpi: str = ""
    tier: str = ""
    q: str = ""
    sort: str = "name"


@dataclass(frozen=True)
class BoardColumn:
    """A goal column: one KPI, or every manual activity of the affiliate together."""

    key: str

    @property
    def kpi(self) -> KPI:
        return REGISTRY.get(self.key, MANUAL_KPI)

    @property
    def label(self) -> str:
        return str(self.kpi.label)

    @property
    def definition(self) -> str:
        return str(self.kpi.definition)

    @property
    def sort_key(self) -> str:
        return f"{GOAL_SORT_PREFIX}{self.key}"


@dataclass
class BoardCell:
    affiliate_id: int
    column: BoardColumn
    goals: list[Goal] = field(default_factory=list)

    @property
    def dom_id(self) -> str:
        """The id a live update swaps out of band; stable for a filled and an empty cell alike."""
        return f"goal-cell-{self.affiliate_id}-{self.column.key}"


@dataclass
class BoardRow:
    affiliate: Affiliate
    cells: list[BoardCell]
    tier_label: str = ""  # get_tier_display() translated once per page, not once per row


@dataclass(frozen=True)
class ColumnTotal:
    """A column's totals over every affiliate the filters match (not just the page)."""

    column: BoardColumn
    goals: int = 0
    statuses: dict = field(default_factory=dict)  # status → number of goals; "" for goals without progress yet
    target: Decimal | None = None  # sums only where adding up makes sense (higher-is-better counts and sums)
    provisional: Decimal | None = None
    confirmed: Decimal | None = None
    expected: Decimal | None = None

    def _share(self, value: Decimal | None) -> Decimal | None:
        if value is None or not self.target:
            return None
        return value / self.target * HUNDRED

    @property
    def progress_provisional(self) -> Decimal | None:
        return self._share(self.provisional)

    @property
    def progress_confirmed(self) -> Decimal | None:
        return self._share(self.confirmed)

    @property
    def pace(self) -> Decimal | None:
        return self._share(self.expected)

    @property
    def status_counts(self) -> list[tuple[str, int]]:
        return [(status, self.statuses.get(status, 0)) for status in GoalStatus.values if self.statuses.get(status)]


def _summable(column: BoardColumn) -> bool:
    kpi = column.kpi
    return column.key != MANUAL and kpi.shape != Shape.RATIO and not kpi.lower_is_better


def board_columns(*, program: Program, month: date, kpi: str = "") -> list[BoardColumn]:
    """The month's goal columns in registry order, manual activities last; only ``kpi``'s when filtered."""
    if kpi:
        return [BoardColumn(kpi)]
    keys = _month_kpis(program, month)
    return [BoardColumn(key) for key in sorted(keys, key=lambda key: (KPI_ORDER.get(key, len(KPI_ORDER)), key))]


def _month_kpis(program: Program, month: date) -> list[str]:
    """The distinct KPIs of the month's goals, one probe of goal_board_idx each (a "loose index scan").

    A DISTINCT reads every goal of the month (30,000 at 10,000 affiliates) and neither database skips through an
    index on its own, so each step asks for the smallest KPI after the previous one. Plain SQL because the ORM has
    no recursive queries; the program is a condition of every step.
    """
    with connection.cursor() as cursor:
        cursor.execute(MONTH_KPIS_SQL, {"program": program.pk, "month": connection.ops.adapt_datefield_value(month)})
        return [kpi for (kpi,) in cursor.fetchall()]


def _goals_of_row(program: Program, month: date) -> QuerySet[Goal]:
    return Goal.objects.filter(program=program, month=month, affiliate=OuterRef("pk"))


def _narrowed_by_goals(program: Program, month: date, filters: BoardFilters, outer: str) -> Exists | None:
    """The condition "has a goal this month that matches the KPI, view and status filters", or None without them.

    With a KPI chosen, the status and the at-risk view apply to that KPI's goal ("clicks at risk").
    """
    goals = Goal.objects.filter(program=program, month=month, affiliate=OuterRef(outer))
    narrowed = False
    if filters.kpi:
        goals, narrowed = goals.filter(kpi=filters.kpi), True
    if filters.view == BoardView.AT_RISK:
        goals, narrowed = goals.filter(progress__status__in=NEEDS_ATTENTION), True
    if filters.status:
        goals, narrowed = goals.filter(progress__status=filters.status), True
    return Exists(goals) if narrowed else None


def _searched(affiliates: QuerySet[Affiliate], filters: BoardFilters) -> QuerySet[Affiliate]:
    if filters.tier:
        affiliates = affiliates.filter(tier=filters.tier)
    if filters.q:
        affiliates = affiliates.filter(Q(name__icontains=filters.q) | Q(email__icontains=filters.q))
    return affiliates


def filtered_affiliates(*, program: Program, month: date, filters: BoardFilters) -> QuerySet[Affiliate]:
    """The affiliates the board lists for ``filters``, unsorted: approved ones and anyone holding goals."""
    affiliates = _searched(Affiliate.objects.filter(program=program), filters)
    goals = _goals_of_row(program, month)
    if filters.view == BoardView.NOT_SET:
        # With a KPI filter: approved affiliates without a goal on that KPI yet.
        missing = goals.filter(kpi=filters.kpi) if filters.kpi else goals
        return affiliates.filter(status=AffiliateStatus.APPROVED).exclude(Exists(missing))
    condition = _narrowed_by_goals(program, month, filters, "pk")
    if condition is not None:
        return affiliates.filter(condition)  # holding such a goal puts them on the board, whatever their status
    return affiliates.filter(Q(status=AffiliateStatus.APPROVED) | Exists(goals))


def sort_keys(columns: Iterable[BoardColumn]) -> set[str]:
    return {"name", "tier", *(column.sort_key for column in columns)}


def sorted_affiliates(
    affiliates: QuerySet[Affiliate], *, program: Program, month: date, sort: str, columns: list[BoardColumn]
) -> QuerySet[Affiliate]:
    """``affiliates`` ordered by ``sort`` (a key of sort_keys, "-" for descending); ties by name and id.

    A goal column sorts by its provisional progress (already inverted for lower-is-better KPIs), affiliates
    without that goal or with not enough data last either way; the manual column by its weakest activity.
    """
    descending = sort.startswith("-")
    key = sort.removeprefix("-")
    if key not in sort_keys(columns):
        key, descending = "name", False
    if key == "name":
        name = Lower("name")
        return affiliates.order_by(name.desc() if descending else name.asc(), "pk")
    if key == "tier":
        affiliates = affiliates.annotate(tier_rank=TIER_RANK)
        expression = F("tier_rank")
    elif key == f"{GOAL_SORT_PREFIX}{MANUAL}":
        # Several manual goals per affiliate: the weakest one decides, through a correlated subquery.
        goal = Goal.objects.filter(
            program=program, affiliate=OuterRef("pk"), month=month, kind=GoalKind.MANUAL
        ).order_by(F("progress__progress_provisional").asc(nulls_last=True))
        affiliates = affiliates.annotate(sort_value=Subquery(goal.values("progress__progress_provisional")[:1]))
        expression = F("sort_value")
    else:
        # At most one goal per affiliate, month and KPI (the goal's unique key): a LEFT JOIN, which databases run
        # far faster over 10,000 affiliates than a subquery per row. Its progress is read from progress_board_idx
        # (program, month, KPI), a third of the progress rows and from the index alone, where the goal alone left
        # PostgreSQL hashing every progress row of the program. A KPI name other than "manual" already means a
        # measured goal (set_goal's kind).
        kpi = key.removeprefix(GOAL_SORT_PREFIX)
        affiliates = affiliates.annotate(
            sort_goal=FilteredRelation(
                "goals", condition=Q(goals__program=program, goals__month=month, goals__kpi=kpi)
            ),
            sort_progress=FilteredRelation(
                "sort_goal__progress",
                condition=Q(
                    sort_goal__progress__program=program,
                    sort_goal__progress__month=month,
                    sort_goal__progress__kpi=kpi,
                ),
            ),
        )
        expression = F("sort_progress__progress_provisional")
    ordered = expression.desc(nulls_last=True) if descending else expression.asc(nulls_last=True)
    return affiliates.order_by(ordered, Lower("name"), "pk")


def view_counts(*, program: Program, month: date, filters: BoardFilters) -> dict[str, int]:
    """How many affiliates each tab would list with the current tier and search (one query)."""
    goals = _goals_of_row(program, month)
    has_goals = Q(Exists(goals))
    counts = _searched(Affiliate.objects.filter(program=program), filters).aggregate(
        all=Count("pk", filter=Q(status=AffiliateStatus.APPROVED) | has_goals),
        at_risk=Count("pk", filter=Q(Exists(goals.filter(progress__status__in=NEEDS_ATTENTION)))),
        not_set=Count("pk", filter=Q(status=AffiliateStatus.APPROVED) & ~has_goals),
    )
    return {BoardView.ALL: counts["all"], BoardView.AT_RISK: counts["at_risk"], BoardView.NOT_SET: counts["not_set"]}


def _cells(affiliate_id: int, columns: list[BoardColumn], goals: list[Goal]) -> list[BoardCell]:
    by_key: dict[str, list[Goal]] = defaultdict(list)
    for goal in goals:
        by_key[MANUAL if goal.kind == GoalKind.MANUAL else goal.kpi].append(goal)
    return [BoardCell(affiliate_id, column, by_key.get(column.key, [])) for column in columns]


def _goals_by_affiliate(program: Program, month: date, affiliate_ids: list[int]) -> dict[int, list[Goal]]:
    """The goals of these affiliates with their progress (one query; the rows already hold the affiliates)."""
    grouped: dict[int, list[Goal]] = defaultdict(list)
    if affiliate_ids:
        goals = (
            Goal.objects.filter(program=program, month=month, affiliate_id__in=affiliate_ids)
            # The program in the join as well: PostgreSQL then looks the page's 150 progress rows up by goal rather
            # than hashing every progress row of the program, which it prefers while a month is all it holds
            # (0.7 ms against 6 at 10,000 affiliates).
            .annotate(**{PAGE_PROGRESS: FilteredRelation("progress", condition=Q(progress__program=program))})
            .select_related(PAGE_PROGRESS)
            .only(*CELL_FIELDS)
            .order_by("kind", "kpi", "label")
        )
        for goal in goals:
            # Where cells read it (goal.progress) without another query; None for a goal without progress yet.
            Goal.progress.related.set_cached_value(goal, getattr(goal, PAGE_PROGRESS, None))
            grouped[goal.affiliate_id].append(goal)
    return grouped


def board_rows(
    *, program: Program, month: date, affiliates: Iterable[Affiliate], columns: list[BoardColumn]
) -> list[BoardRow]:
    """Rows for a page of affiliates, their goals and stored progress read in one query."""
    affiliates = list(affiliates)
    goals = _goals_by_affiliate(program, month, [affiliate.pk for affiliate in affiliates])
    tiers = {tier: str(label) for tier, label in Tier.choices}
    return [
        BoardRow(
            affiliate, _cells(affiliate.pk, columns, goals[affiliate.pk]), tiers.get(affiliate.tier, affiliate.tier)
        )
        for affiliate in affiliates
    ]


def changed_cells(
    *, program: Program, month: date, affiliate_ids: list[int], columns: list[BoardColumn], since: datetime
) -> list[BoardCell]:
    """Cells of these affiliates whose goals' progress was written after ``since`` (two queries)."""
    # From the goals: their unique key (program, affiliate, month, …) finds the page's few goals at once.
    changed = set(
        Goal.objects.filter(
            program=program, affiliate_id__in=affiliate_ids, month=month, progress__updated_at__gt=since
        ).values_list("affiliate_id", "kind", "kpi")
    )
    keys = {(affiliate_id, MANUAL if kind == GoalKind.MANUAL else kpi) for affiliate_id, kind, kpi in changed}
    goals = _goals_by_affiliate(program, month, sorted({affiliate_id for affiliate_id, _key in keys}))
    return [
        cell
        for affiliate_id in sorted({affiliate_id for affiliate_id, _key in keys})
        for cell in _cells(affiliate_id, columns, goals[affiliate_id])
        if (affiliate_id, cell.column.key) in keys
    ]


def _listed_goals(program: Program, month: date, filters: BoardFilters) -> QuerySet[Goal]:
    """The month's goals of the affiliates the board lists for ``filters`` (of the KPI column, when one is chosen).

    Written as conditions on each goal's affiliate rather than ``affiliate IN (the listing query)``, which gives
    PostgreSQL a subplan per goal row.
    """
    goals = Goal.objects.filter(program=program, month=month)
    if filters.tier:
        goals = goals.filter(affiliate__tier=filters.tier)
    if filters.q:
        goals = goals.filter(Q(affiliate__name__icontains=filters.q) | Q(affiliate__email__icontains=filters.q))
    if filters.kpi:
        goals = goals.filter(kpi=filters.kpi)
    condition = _narrowed_by_goals(program, month, filters, "affiliate_id")
    return goals if condition is None else goals.filter(condition)


def column_totals(
    *, program: Program, month: date, filters: BoardFilters, columns: list[BoardColumn]
) -> list[ColumnTotal]:
    """Totals per column over every listed affiliate: goals per status, and sums where sums mean something."""
    if filters.view == BoardView.NOT_SET or not columns:
        return [ColumnTotal(column) for column in columns]  # affiliates without goals: nothing to add up
    status_counts = {f"status_{status}": Count("pk", filter=Q(progress__status=status)) for status in GoalStatus.values}
    rows = (
        _listed_goals(program, month, filters)
        .values("kpi")
        .annotate(
            goals=Count("pk"),
            **status_counts,
            target_total=Sum("target"),
            provisional_total=Sum("progress__value_provisional"),
            confirmed_total=Sum("progress__value_confirmed"),
            expected_total=Sum("progress__expected_now"),
        )
        .order_by()
    )
    by_key = {row["kpi"]: row for row in rows}
    totals = []
    for column in columns:
        row = by_key.get(column.key)
        if row is None:
            totals.append(ColumnTotal(column))
            continue
        statuses = {status: row[f"status_{status}"] for status in GoalStatus.values}
        sums = {}
        if _summable(column):
            sums = {
                "target": row["target_total"],
                "provisional": row["provisional_total"],
                "confirmed": row["confirmed_total"],
                "expected": row["expected_total"],
            }
        totals.append(ColumnTotal(column, goals=row["goals"], statuses=statuses, **sums))
    return totals
