"""Django admin for goals, across programs (scopes are disabled under /admin/ on purpose).

Only configuration is edited here: goal settings and benchmarks. Everything else is read-only: goals change
through goals.services (which check targets and closed months and refresh progress), DailyStats and
GoalProgress are caches rebuilt from raw events, bonuses, clawbacks and fees are a ledger that is never
edited, and closes, transitions, notifications, reviews and job runs are records of what happened.
"""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from goals.models import (
    Benchmark,
    BonusEntry,
    ClawbackEntry,
    DailyStats,
    FeeEntry,
    Goal,
    GoalProgress,
    GoalSettings,
    GoalTransition,
    JobRun,
    MonthClose,
    MonthlyReview,
    Notification,
)
from tracking.admin import ReadOnlyAdmin, ReadOnlyInlineMixin


class ReadOnlyInline(ReadOnlyInlineMixin, admin.StackedInline):
    pass


@admin.register(GoalSettings)
class GoalSettingsAdmin(admin.ModelAdmin):
    list_display = ["program", "month_close_grace_days", "notify_affiliates", "notify_managers"]
    list_filter = ["notify_affiliates", "notify_managers"]
    search_fields = ["program__name", "program__slug"]
    list_select_related = ["program"]


@admin.register(Benchmark)
class BenchmarkAdmin(admin.ModelAdmin):
    list_display = ["kpi", "program", "average", "optimal"]
    list_filter = ["kpi", "program"]
    search_fields = ["kpi", "program__name"]
    list_select_related = ["program"]


class GoalProgressInline(ReadOnlyInline):
    model = GoalProgress
    fk_name = "goal"


class BonusEntryInline(ReadOnlyInline):
    model = BonusEntry
    fk_name = "goal"


@admin.register(Goal)
class GoalAdmin(ReadOnlyAdmin):
    list_display = [
        "__str__",
        "program",
        "affiliate",
        "month",
        "kind",
        "kpi",
        "label",
        "target",
        "status",
        "bonus_type",
    ]
    list_filter = ["kind", "kpi", "bonus_type", "progress__status", "program"]
    search_fields = ["affiliate__name", "affiliate__email", "label", "note"]
    list_select_related = ["program", "affiliate", "progress"]
    date_hierarchy = "month"
    inlines = [GoalProgressInline, BonusEntryInline]

    @admin.display(description=_("status"), ordering="progress__status")
    def status(self, goal: Goal) -> str:
        try:
            return goal.progress.get_status_display()
        except GoalProgress.DoesNotExist:
            return "—"


@admin.register(GoalProgress)
class GoalProgressAdmin(ReadOnlyAdmin):
    list_display = [
        "goal",
        "program",
        "status",
        "status_confirmed",
        "value_provisional",
        "value_confirmed",
        "progress_provisional",
        "final",
        "updated_at",
    ]
    list_filter = ["status", "status_confirmed", "final", "program"]
    search_fields = ["goal__affiliate__name", "goal__kpi", "goal__label"]
    list_select_related = ["program", "goal"]


@admin.register(DailyStats)
class DailyStatsAdmin(ReadOnlyAdmin):
    list_display = [
        "day",
        "program",
        "affiliate",
        "clicks",
        "conversions_pending",
        "conversions_approved",
        "revenue_approved",
        "commission_approved",
        "bonuses",
    ]
    list_filter = ["program"]
    search_fields = ["affiliate__name"]
    list_select_related = ["program", "affiliate"]
    date_hierarchy = "day"
    show_full_result_count = False  # one row per affiliate per day: counting them on every page is not worth it


@admin.register(FeeEntry)
class FeeEntryAdmin(ReadOnlyAdmin):
    list_display = ["day", "program", "affiliate", "amount", "note", "created_by"]
    list_filter = ["program"]
    search_fields = ["affiliate__name", "note"]
    list_select_related = ["program", "affiliate", "created_by"]
    date_hierarchy = "day"


@admin.register(BonusEntry)
class BonusEntryAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "program", "affiliate", "month", "day", "amount", "awarded_at"]
    list_filter = ["program"]
    search_fields = ["affiliate__name", "explanation"]
    list_select_related = ["program", "affiliate"]
    date_hierarchy = "month"


@admin.register(ClawbackEntry)
class ClawbackEntryAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "program", "affiliate", "month", "day", "amount", "created_at"]
    list_filter = ["program"]
    search_fields = ["affiliate__name", "explanation"]
    list_select_related = ["program", "affiliate"]
    date_hierarchy = "month"


@admin.register(MonthClose)
class MonthCloseAdmin(ReadOnlyAdmin):
    list_display = ["month", "program", "status", "started_at", "closed_at"]
    list_filter = ["status", "program"]
    search_fields = ["program__name"]
    list_select_related = ["program"]


@admin.register(MonthlyReview)
class MonthlyReviewAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "program", "affiliate", "month", "best_kpi", "worst_kpi", "shared_at"]
    list_filter = ["program", "best_kpi", "worst_kpi"]
    search_fields = ["affiliate__name", "feedback"]
    list_select_related = ["program", "affiliate"]
    date_hierarchy = "month"


@admin.register(GoalTransition)
class GoalTransitionAdmin(ReadOnlyAdmin):
    list_display = ["goal", "program", "status", "created_at"]
    list_filter = ["status", "program"]
    search_fields = ["goal__affiliate__name"]
    list_select_related = ["program", "goal"]


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ["message", "program", "user", "created_at", "read_at", "emailed_at"]
    list_filter = ["program"]
    search_fields = ["message", "user__email"]
    list_select_related = ["program", "user"]
    date_hierarchy = "created_at"


@admin.register(JobRun)
class JobRunAdmin(ReadOnlyAdmin):
    list_display = ["kind", "program", "status", "done", "total", "created_at", "finished_at"]
    list_filter = ["kind", "status", "program"]
    search_fields = ["message"]
    list_select_related = ["program"]
