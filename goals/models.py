"""Goals: daily rollups of the raw events, monthly KPI targets per affiliate, their progress and rewards.

DailyStats and GoalProgress are caches of the raw events in tracking and can always be rebuilt. Bonus and
clawback entries are a ledger: written once, never edited. Months are first-of-month dates in the
program's local calendar.
"""

from decimal import Decimal

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_scopes import ScopedManager

from affiliates.models import Affiliate, Program, User

MONEY = {"max_digits": 16, "decimal_places": 2}
VALUE = {"max_digits": 20, "decimal_places": 6}
ZERO = Decimal("0")


def money_field(label):
    return models.DecimalField(label, **MONEY, default=ZERO)


class DailyStats(models.Model):
    """Additive counters of one affiliate on one program-local day; every KPI is a formula over them.

    Conversions count on the local day of their own time; ``*_pending`` and ``*_approved`` hold the two
    statuses that count, so provisional = pending + approved and confirmed = approved. Ratios are never
    stored here.
    """

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+")
    affiliate = models.ForeignKey(Affiliate, on_delete=models.CASCADE, related_name="+")
    day = models.DateField(_("day"))

    clicks = models.PositiveIntegerField(default=0)  # excluding bots
    unique_clicks = models.PositiveIntegerField(default=0)
    bot_clicks = models.PositiveIntegerField(default=0)
    impressions = models.PositiveIntegerField(default=0)  # excluding bots

    conversions_pending = models.PositiveIntegerField(default=0)
    conversions_approved = models.PositiveIntegerField(default=0)
    sales_pending = models.PositiveIntegerField(default=0)
    sales_approved = models.PositiveIntegerField(default=0)
    leads_pending = models.PositiveIntegerField(default=0)
    leads_approved = models.PositiveIntegerField(default=0)
    engagements_pending = models.PositiveIntegerField(default=0)
    engagements_approved = models.PositiveIntegerField(default=0)
    revenue_pending = money_field(_("revenue, pending"))
    revenue_approved = money_field(_("revenue, approved"))
    commission_pending = money_field(_("commission, pending"))
    commission_approved = money_field(_("commission, approved"))
    new_customers_pending = models.PositiveIntegerField(default=0)
    new_customers_approved = models.PositiveIntegerField(default=0)
    # Revenue to date of customers acquired through the affiliate (for LTV), booked on the sale's day.
    customer_revenue_pending = money_field(_("customer revenue, pending"))
    customer_revenue_approved = money_field(_("customer revenue, approved"))

    reversals = models.PositiveIntegerField(default=0)  # on the local day the conversion was reversed
    cancellations = models.PositiveIntegerField(default=0)
    customers_lost = models.PositiveIntegerField(default=0)  # on the local day they were lost

    bonuses = money_field(_("bonuses"))  # bonus entries awarded on this day, minus clawbacks booked on it
    fixed_fees = money_field(_("fixed fees"))

    updated_at = models.DateTimeField(auto_now=True)

    objects = ScopedManager(program="program")

    class Meta:
        verbose_name = _("daily stats")
        verbose_name_plural = _("daily stats")
        constraints = [
            models.UniqueConstraint(fields=["program", "affiliate", "day"], name="daily_stats_key"),
        ]
        indexes = [models.Index(fields=["program", "day"], name="daily_stats_day_idx")]

    def __str__(self) -> str:
        return f"{self.affiliate_id} {self.day}"


class FeeEntry(models.Model):
    """A fixed fee paid to an affiliate (placement, sponsorship) that counts in cost."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+")
    affiliate = models.ForeignKey(Affiliate, on_delete=models.PROTECT, related_name="+")
    day = models.DateField(_("day"))
    amount = models.DecimalField(_("amount"), **MONEY)
    note = models.CharField(_("note"), max_length=255)
    created_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    objects = ScopedManager(program="program")

    class Meta:
        verbose_name = _("fixed fee")
        verbose_name_plural = _("fixed fees")

    def __str__(self) -> str:
        return f"{self.affiliate_id} {self.day} {self.amount}"


class GoalSettings(models.Model):
    """A program's goal settings: how long a finished month waits for late approvals, and who is notified."""

    program = models.OneToOneField(Program, on_delete=models.CASCADE, related_name="goal_settings")
    month_close_grace_days = models.PositiveSmallIntegerField(
        _("grace period before a month closes (days)"),
        default=5,
        help_text=_("A month closes this many days after it ends, so late approvals still count."),
    )
    notify_affiliates = models.BooleanField(_("notify affiliates of their goals"), default=True)
    notify_managers = models.BooleanField(_("notify managers of goals"), default=True)

    objects = ScopedManager(program="program")

    class Meta:
        verbose_name = _("goal settings")
        verbose_name_plural = _("goal settings")

    def __str__(self) -> str:
        return f"{self.program_id}: close after {self.month_close_grace_days} days"


class GoalKind(models.TextChoices):
    KPI = "kpi", _("Measured KPI")
    MANUAL = "manual", _("Manual (checked by hand)")


class BonusType(models.TextChoices):
    NONE = "", _("No bonus")
    FIXED = "fixed", _("Fixed amount")
    PERCENT = "percent", _("Percentage of the month's commission")
    TIERS = "tiers", _("Tiers by progress")


class Goal(models.Model):
    """A monthly target for one affiliate on one KPI (or a manual activity), with an optional bonus."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+")
    affiliate = models.ForeignKey(Affiliate, on_delete=models.CASCADE, related_name="goals")
    month = models.DateField(_("month"))  # first day of the program-local month
    kind = models.CharField(_("kind"), max_length=8, choices=GoalKind.choices, default=GoalKind.KPI)
    kpi = models.CharField(_("KPI"), max_length=32)  # a name in goals.kpis.REGISTRY, or "manual"
    label = models.CharField(_("activity"), max_length=120, blank=True)  # manual goals: "Publish 4 reviews"
    target = models.DecimalField(_("target"), **VALUE)
    min_volume = models.PositiveIntegerField(_("minimum volume"), null=True, blank=True)
    bonus_type = models.CharField(_("bonus"), max_length=8, choices=BonusType.choices, default="", blank=True)
    bonus_amount = models.DecimalField(_("bonus amount"), **MONEY, null=True, blank=True)
    bonus_percent = models.DecimalField(_("bonus %"), max_digits=6, decimal_places=3, null=True, blank=True)
    # [{"progress": "100", "amount": "100.00"}, {"progress": "120", "amount": "250.00"}]: highest reached tier pays
    bonus_tiers = models.JSONField(_("bonus tiers"), default=list, blank=True)
    note = models.TextField(_("note"), blank=True)
    # Manual goals: the value entered by the manager or the affiliate, confirmed by the manager.
    manual_value = models.DecimalField(_("reported value"), **VALUE, null=True, blank=True)
    manual_note = models.TextField(_("report note"), blank=True)
    manual_confirmed = models.BooleanField(_("confirmed"), default=False)
    created_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScopedManager(program="program")

    class Meta:
        verbose_name = _("goal")
        verbose_name_plural = _("goals")
        ordering = ["month", "affiliate_id", "kpi", "label"]
        constraints = [
            # Setting the same goal again updates it; a manual goal is distinguished by its label.
            models.UniqueConstraint(fields=["program", "affiliate", "month", "kpi", "label"], name="goal_key"),
        ]
        indexes = [
            # A month's goals; by KPI for the board's columns and goal-column sort (a KPI's goal per affiliate).
            models.Index(fields=["program", "month", "kpi", "affiliate"], name="goal_board_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.affiliate_id} {self.month:%Y-%m} {self.label or self.kpi} ≥ {self.target}"


class GoalStatus(models.TextChoices):
    MET = "met", _("Met")
    ON_TRACK = "on_track", _("On track")
    AT_RISK = "at_risk", _("At risk")
    BEHIND = "behind", _("Behind")
    NOT_ENOUGH_DATA = "not_enough_data", _("Not enough data")


class GoalProgress(models.Model):
    """The derived state of a goal, provisional (pending + approved) and confirmed (approved only)."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+")
    goal = models.OneToOneField(Goal, on_delete=models.CASCADE, related_name="progress")
    # The goal's month and KPI, which never change for a goal: copied here so the board's goal-column sort reads
    # one KPI's progress from progress_board_idx rather than every progress row of the program.
    month = models.DateField(_("month"))
    kpi = models.CharField(_("KPI"), max_length=32)
    value_provisional = models.DecimalField(**VALUE, null=True, blank=True)  # None: undefined ratio
    value_confirmed = models.DecimalField(**VALUE, null=True, blank=True)
    progress_provisional = models.DecimalField(**VALUE, null=True, blank=True)  # percent of target
    progress_confirmed = models.DecimalField(**VALUE, null=True, blank=True)
    volume = models.PositiveIntegerField(default=0)  # the denominator's count, against the minimum volume
    elapsed = models.DecimalField(max_digits=9, decimal_places=8, default=ZERO)
    expected_now = models.DecimalField(**VALUE, null=True, blank=True)
    projection = models.DecimalField(**VALUE, null=True, blank=True)
    status = models.CharField(max_length=16, choices=GoalStatus.choices, default=GoalStatus.NOT_ENOUGH_DATA)
    status_confirmed = models.CharField(max_length=16, choices=GoalStatus.choices, default=GoalStatus.NOT_ENOUGH_DATA)
    final = models.BooleanField(default=False)  # frozen by the month close
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = ScopedManager(program="program")

    class Meta:
        verbose_name = _("goal progress")
        verbose_name_plural = _("goal progress")
        indexes = [
            # A goal column's sort: a KPI's progress in order, with the goal to join back to its affiliate.
            # The goal is a key column rather than INCLUDEd: SQLite has no covering columns (check W040).
            models.Index(fields=["program", "month", "kpi", "progress_provisional", "goal"], name="progress_board_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.goal_id}: {self.status}"


class GoalTransition(models.Model):
    """A goal reaching a status worth telling someone about; unique so each is notified at most once."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+")
    goal = models.ForeignKey(Goal, on_delete=models.CASCADE, related_name="transitions")
    status = models.CharField(max_length=16, choices=GoalStatus.choices)
    created_at = models.DateTimeField(default=timezone.now)

    objects = ScopedManager(program="program")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["goal", "status"], name="goal_transition_once")]

    def __str__(self) -> str:
        return f"{self.goal_id} → {self.status}"


class Notification(models.Model):
    """An in-app notification for one person in one program (an email is sent alongside)."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="notifications")
    goal = models.ForeignKey(Goal, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    message = models.CharField(_("message"), max_length=500)
    url = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)
    # Claimed by a conditional update before the email goes out, so a retried task never sends it twice.
    emailed_at = models.DateTimeField(null=True, blank=True)

    objects = ScopedManager(program="program")

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["program", "user", "read_at"], name="notification_unread_idx")]

    def __str__(self) -> str:
        return self.message


class MonthClose(models.Model):
    """The close of one program-local month: results frozen, bonuses decided, reviews produced."""

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        DONE = "done", _("Closed")

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+")
    month = models.DateField(_("month"))
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)

    objects = ScopedManager(program="program")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["program", "month"], name="month_close_once")]

    def __str__(self) -> str:
        return f"{self.program_id} {self.month:%Y-%m} {self.status}"


class BonusEntry(models.Model):
    """A bonus awarded for a met goal at month close; one per goal, enforced by the database."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+")
    affiliate = models.ForeignKey(Affiliate, on_delete=models.PROTECT, related_name="+")
    goal = models.OneToOneField(Goal, on_delete=models.PROTECT, related_name="bonus_entry")
    month = models.DateField(_("month"))
    # The program-local day the bonus counts on in DailyStats.bonuses: the day of the close, in an open month.
    day = models.DateField(_("booked on"))
    amount = models.DecimalField(_("amount"), **MONEY)
    explanation = models.TextField(_("why"))
    awarded_at = models.DateTimeField(default=timezone.now)

    objects = ScopedManager(program="program")

    class Meta:
        verbose_name = _("bonus")
        verbose_name_plural = _("bonuses")
        indexes = [models.Index(fields=["program", "affiliate", "day"], name="bonus_entry_day_idx")]

    def __str__(self) -> str:
        return f"{self.affiliate_id} {self.month:%Y-%m} +{self.amount}"


class ClawbackEntry(models.Model):
    """A bonus taken back because a later reversal put its closed month below target; once per bonus."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+")
    affiliate = models.ForeignKey(Affiliate, on_delete=models.PROTECT, related_name="+")
    bonus = models.OneToOneField(BonusEntry, on_delete=models.PROTECT, related_name="clawback")
    month = models.DateField(_("booked in month"))  # the next open month
    day = models.DateField(_("booked on"))  # the program-local day in that month it counts on in DailyStats
    amount = models.DecimalField(_("amount"), **MONEY)  # positive; subtracted from commission and cost
    explanation = models.TextField(_("why"))
    created_at = models.DateTimeField(default=timezone.now)

    objects = ScopedManager(program="program")

    class Meta:
        verbose_name = _("clawback")
        verbose_name_plural = _("clawbacks")
        indexes = [models.Index(fields=["program", "affiliate", "day"], name="clawback_entry_day_idx")]

    def __str__(self) -> str:
        return f"{self.affiliate_id} {self.month:%Y-%m} -{self.amount}"


class MonthlyReview(models.Model):
    """An affiliate's month in review: KPIs vs goals vs benchmarks, best and worst, trend; annotatable."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+")
    affiliate = models.ForeignKey(Affiliate, on_delete=models.CASCADE, related_name="reviews")
    month = models.DateField(_("month"))
    data = models.JSONField(default=dict)  # rows of {kpi, value, goal, benchmark, trend}
    best_kpi = models.CharField(max_length=32, blank=True)
    worst_kpi = models.CharField(max_length=32, blank=True)
    feedback = models.TextField(_("manager feedback"), blank=True)
    shared_at = models.DateTimeField(_("shared with the affiliate"), null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = ScopedManager(program="program")

    class Meta:
        verbose_name = _("monthly review")
        verbose_name_plural = _("monthly reviews")
        constraints = [models.UniqueConstraint(fields=["program", "affiliate", "month"], name="review_once")]

    def __str__(self) -> str:
        return f"{self.affiliate_id} {self.month:%Y-%m}"


class Benchmark(models.Model):
    """A program's own benchmark for a KPI, overriding the defaults from KPI.md."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+")
    kpi = models.CharField(max_length=32)
    average = models.DecimalField(**VALUE)
    optimal = models.DecimalField(**VALUE)

    objects = ScopedManager(program="program")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["program", "kpi"], name="benchmark_unique")]

    def __str__(self) -> str:
        return f"{self.kpi}: {self.average} / {self.optimal}"


class JobRun(models.Model):
    """Progress of a long job (rebuild, export, close) that a page polls."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=32)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    message = models.TextField(blank=True)
    created_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = ScopedManager(program="program")

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.kind} {self.status} {self.done}/{self.total}"
