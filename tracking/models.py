"""Tracking: offers and links, raw click and impression events, conversions, postbacks and commissions.

Raw events (Click, Impression, Conversion with its ConversionEvent audit trail, PostbackAttempt) are the
truth; everything derived from them (rollups, goal progress) can be rebuilt. Nothing here is deleted.
"""

import secrets
import uuid
from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_scopes import ScopedManager

from affiliates.models import Affiliate, Program, User
from affiliates.validators import validate_currency

MONEY = {"max_digits": 14, "decimal_places": 2}
RATE = {"max_digits": 18, "decimal_places": 8}
LINK_CODE_LENGTH = 10


def new_link_code() -> str:
    """A short unguessable code: 10 url-safe characters, ~60 bits of randomness."""
    return secrets.token_urlsafe(8)[:LINK_CODE_LENGTH]


class TrackingSettings(models.Model):
    """Per-program tracking configuration: attribution, postback security, hold period, fraud thresholds."""

    class Attribution(models.TextChoices):
        LAST_CLICK = "last_click", _("Last click")
        FIRST_CLICK = "first_click", _("First click")

    program = models.OneToOneField(Program, on_delete=models.CASCADE, related_name="tracking_settings")
    attribution_model = models.CharField(
        _("attribution"), max_length=16, choices=Attribution.choices, default=Attribution.LAST_CLICK
    )
    lifetime_customers = models.BooleanField(
        _("lifetime customers"),
        default=False,
        help_text=_("A customer's later purchases are credited to the affiliate who brought them."),
    )
    hold_days = models.PositiveSmallIntegerField(
        _("hold period (days)"),
        default=30,
        help_text=_("Pending conversions without fraud flags are approved automatically after this many days."),
    )
    postback_ip_allowlist = models.TextField(
        _("postback IP allowlist"),
        blank=True,
        help_text=_("One CIDR per line (e.g. 203.0.113.0/24). Empty: postbacks are accepted from anywhere."),
    )
    postback_require_signature = models.BooleanField(
        _("require HMAC signature"),
        default=False,
        help_text=_("Postbacks must carry a signature: HMAC-SHA256 of the sorted parameters with the secret."),
    )
    postback_signing_secret = models.CharField(
        _("signing secret"), max_length=64, default=secrets.token_hex, editable=False
    )
    fraud_min_seconds_to_convert = models.PositiveIntegerField(
        _("minimum seconds from click to conversion"), default=10
    )
    fraud_click_flood_count = models.PositiveIntegerField(
        _("click flood: clicks from one visitor on one link"), default=20
    )
    fraud_click_flood_minutes = models.PositiveIntegerField(_("click flood: within minutes"), default=10)
    fraud_conversion_rate_factor = models.DecimalField(
        _("suspicious conversion rate (times the program's)"), max_digits=6, decimal_places=2, default=Decimal("5.00")
    )

    objects = ScopedManager(program="program")

    class Meta:
        verbose_name = _("tracking settings")
        verbose_name_plural = _("tracking settings")

    def __str__(self) -> str:
        return f"{self.program} tracking"


class Offer(models.Model):
    """Something affiliates promote: a destination, a cookie window, optional caps."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        PAUSED = "paused", _("Paused")

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="offers")
    name = models.CharField(_("name"), max_length=120)
    destination_url = models.URLField(
        _("destination URL"), max_length=2000, help_text=_("The https page visitors land on.")
    )
    click_id_param = models.CharField(
        _("click-id parameter"),
        max_length=40,
        default="click_id",
        help_text=_("Name of the query parameter that carries the click id."),
    )
    allowed_domains = models.TextField(
        _("allowed landing domains"),
        blank=True,
        help_text=_("Extra host names links may land on, one per line. The destination's host is always allowed."),
    )
    cookie_window_days = models.PositiveSmallIntegerField(
        _("cookie window (days)"), default=30, validators=[MinValueValidator(1)]
    )
    fallback_url = models.URLField(
        _("fallback URL"), max_length=2000, blank=True, help_text=_("Where clicks go once a click cap is reached.")
    )
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = ScopedManager(program="program")

    class Meta:
        verbose_name = _("offer")
        verbose_name_plural = _("offers")
        ordering = ["name", "pk"]
        constraints = [models.UniqueConstraint(fields=["program", "name"], name="offer_program_name_unique")]

    def __str__(self) -> str:
        return self.name


class Link(models.Model):
    """An affiliate's tracking link for one offer: /c/<code>."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        PAUSED = "paused", _("Paused")

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="links")
    offer = models.ForeignKey(Offer, on_delete=models.PROTECT, related_name="links")
    affiliate = models.ForeignKey(Affiliate, on_delete=models.PROTECT, related_name="links")
    # Unique across programs: the click URL carries no program.
    code = models.CharField(_("code"), max_length=16, unique=True, default=new_link_code, editable=False)
    name = models.CharField(_("label"), max_length=120, blank=True)
    landing_url = models.URLField(
        _("landing page"),
        max_length=2000,
        blank=True,
        help_text=_("Optional; must be on one of the offer's allowed domains."),
    )
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    objects = ScopedManager(program="program")

    class Meta:
        verbose_name = _("link")
        verbose_name_plural = _("links")
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["program", "affiliate"], name="link_affiliate_idx")]

    def __str__(self) -> str:
        return self.code


class Coupon(models.Model):
    """A coupon code that attributes conversions to an affiliate when no click id comes with them."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="coupons")
    code = models.CharField(_("code"), max_length=64)
    affiliate = models.ForeignKey(
        Affiliate, on_delete=models.PROTECT, related_name="coupons", null=True, blank=True, verbose_name=_("affiliate")
    )
    offer = models.ForeignKey(
        Offer, on_delete=models.PROTECT, related_name="coupons", null=True, blank=True, verbose_name=_("offer")
    )
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    objects = ScopedManager(program="program")

    class Meta:
        verbose_name = _("coupon")
        verbose_name_plural = _("coupons")
        constraints = [models.UniqueConstraint(fields=["program", "code"], name="coupon_program_code_unique")]

    def __str__(self) -> str:
        return self.code


class TrafficSource(models.TextChoices):
    PAID = "paid", _("Paid")
    SOCIAL = "social", _("Social")
    ORGANIC = "organic", _("Organic search")
    REFERRAL = "referral", _("Referral")
    DIRECT = "direct", _("Direct")


class Click(models.Model):
    """One redirect served through a link. Append-only; written in batches from the click buffer."""

    # Foreign keys without their own index: the composite indexes below serve every query (docs: "Indexes").
    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+", db_index=False)
    click_id = models.UUIDField(_("click id"), unique=True, default=uuid.uuid4)
    link = models.ForeignKey(Link, on_delete=models.PROTECT, related_name="+", db_index=False)
    affiliate = models.ForeignKey(Affiliate, on_delete=models.PROTECT, related_name="+", db_index=False)
    offer = models.ForeignKey(Offer, on_delete=models.PROTECT, related_name="+", db_index=False)
    created_at = models.DateTimeField(_("time"), default=timezone.now)
    sub1 = models.CharField(max_length=255, blank=True)
    sub2 = models.CharField(max_length=255, blank=True)
    sub3 = models.CharField(max_length=255, blank=True)
    sub4 = models.CharField(max_length=255, blank=True)
    sub5 = models.CharField(max_length=255, blank=True)
    referrer = models.CharField(_("referrer"), max_length=1000, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=512, blank=True)
    ip_hash = models.CharField(_("IP hash"), max_length=64, blank=True)  # salted; the raw IP is never stored
    visitor_hash = models.CharField(_("visitor hash"), max_length=64, blank=True)  # salted IP + user agent
    country = models.CharField(_("country"), max_length=2, blank=True)
    source = models.CharField(
        _("traffic source"), max_length=16, choices=TrafficSource.choices, default=TrafficSource.DIRECT
    )
    is_unique = models.BooleanField(_("unique"), default=True)
    is_bot = models.BooleanField(_("bot"), default=False)

    objects = ScopedManager(program="program")

    class Meta:
        verbose_name = _("click")
        verbose_name_plural = _("clicks")
        indexes = [
            models.Index(fields=["program", "created_at"], name="click_program_time_idx"),
            models.Index(fields=["program", "affiliate", "created_at"], name="click_affiliate_time_idx"),
            models.Index(fields=["link", "ip_hash", "created_at"], name="click_flood_idx"),
        ]

    def __str__(self) -> str:
        return str(self.click_id)


class Impression(models.Model):
    """One impression-pixel hit. Append-only; written in batches like clicks."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+")
    event_id = models.UUIDField(unique=True, default=uuid.uuid4)
    link = models.ForeignKey(Link, on_delete=models.PROTECT, related_name="+")
    affiliate = models.ForeignKey(Affiliate, on_delete=models.PROTECT, related_name="+")
    offer = models.ForeignKey(Offer, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(_("time"), default=timezone.now)
    is_bot = models.BooleanField(_("bot"), default=False)

    objects = ScopedManager(program="program")

    class Meta:
        verbose_name = _("impression")
        verbose_name_plural = _("impressions")
        indexes = [models.Index(fields=["program", "affiliate", "created_at"], name="impression_aff_time_idx")]

    def __str__(self) -> str:
        return str(self.event_id)


class CurrencyRate(models.Model):
    """How many units of the program currency one unit of ``currency`` was worth on ``day``."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+")
    currency = models.CharField(_("currency"), max_length=3, validators=[validate_currency])
    day = models.DateField(_("day"))
    rate = models.DecimalField(_("rate"), **RATE, validators=[MinValueValidator(Decimal("0.00000001"))])

    objects = ScopedManager(program="program")

    class Meta:
        verbose_name = _("currency rate")
        verbose_name_plural = _("currency rates")
        ordering = ["-day", "currency"]
        constraints = [models.UniqueConstraint(fields=["program", "currency", "day"], name="rate_unique")]

    def __str__(self) -> str:
        return f"{self.currency} {self.day}: {self.rate}"


class CommissionPlan(models.Model):
    """A set of commission rules; the program's default plan applies to every affiliate."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="commission_plans")
    name = models.CharField(_("name"), max_length=120)
    is_default = models.BooleanField(_("default plan"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    objects = ScopedManager(program="program")

    class Meta:
        verbose_name = _("commission plan")
        verbose_name_plural = _("commission plans")

    def __str__(self) -> str:
        return self.name


class ConversionKind(models.TextChoices):
    SALE = "sale", _("Sale")
    LEAD = "lead", _("Lead")
    ENGAGEMENT = "engagement", _("Engagement")
    CANCELLATION = "cancellation", _("Cancellation")


class CommissionRule(models.Model):
    """How one kind of conversion is paid; the most specific matching rule wins (affiliate > offer > program)."""

    class Type(models.TextChoices):
        FLAT = "flat", _("Flat amount per conversion (CPA/CPL)")
        REVENUE_SHARE = "revenue_share", _("Percentage of the sale amount")
        TIERED = "tiered", _("Tiered by the affiliate's monthly volume")

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+")
    plan = models.ForeignKey(
        CommissionPlan, on_delete=models.CASCADE, related_name="rules", verbose_name=_("commission plan")
    )
    kind = models.CharField(_("conversion kind"), max_length=16, choices=ConversionKind.choices)
    rule_type = models.CharField(_("type"), max_length=16, choices=Type.choices)
    amount = models.DecimalField(_("flat amount"), **MONEY, default=Decimal("0"))
    percent = models.DecimalField(_("percentage"), max_digits=6, decimal_places=3, default=Decimal("0"))
    # Tiers: [{"min_conversions": 0, "percent": "5"}, {"min_conversions": 50, "percent": "8"}] (or "amount")
    tiers = models.JSONField(_("tiers"), default=list, blank=True)
    offer = models.ForeignKey(
        Offer, on_delete=models.CASCADE, null=True, blank=True, related_name="+", verbose_name=_("offer")
    )
    affiliate = models.ForeignKey(
        Affiliate, on_delete=models.CASCADE, null=True, blank=True, related_name="+", verbose_name=_("affiliate")
    )
    # Recurring sales (renewals of one customer): pay the first N renewals; null pays forever; 0 pays none.
    recurring_renewals = models.PositiveIntegerField(_("paid renewals"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    objects = ScopedManager(program="program")

    class Meta:
        verbose_name = _("commission rule")
        verbose_name_plural = _("commission rules")

    def __str__(self) -> str:
        return f"{self.plan}: {self.get_kind_display()} {self.get_rule_type_display()}"


class Cap(models.Model):
    """A limit on conversions, payout or clicks per day or month, for an offer and/or an affiliate."""

    class Metric(models.TextChoices):
        CONVERSIONS = "conversions", _("Conversions")
        PAYOUT = "payout", _("Payout")
        CLICKS = "clicks", _("Clicks")

    class Period(models.TextChoices):
        DAY = "day", _("Day")
        MONTH = "month", _("Month")

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+")
    offer = models.ForeignKey(
        Offer, on_delete=models.CASCADE, null=True, blank=True, related_name="caps", verbose_name=_("offer")
    )
    affiliate = models.ForeignKey(
        Affiliate, on_delete=models.CASCADE, null=True, blank=True, related_name="caps", verbose_name=_("affiliate")
    )
    metric = models.CharField(_("metric"), max_length=16, choices=Metric.choices)
    period = models.CharField(_("period"), max_length=8, choices=Period.choices)
    limit = models.DecimalField(_("limit"), **MONEY, validators=[MinValueValidator(Decimal("0"))])

    objects = ScopedManager(program="program")

    class Meta:
        verbose_name = _("cap")
        verbose_name_plural = _("caps")

    def __str__(self) -> str:
        return f"{self.get_metric_display()} ≤ {self.limit} / {self.get_period_display()}"


class CustomerLink(models.Model):
    """Which affiliate a customer belongs to, and when their first counted conversion happened."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+")
    customer_id = models.CharField(_("customer id"), max_length=128)
    affiliate = models.ForeignKey(Affiliate, on_delete=models.PROTECT, related_name="+", null=True)
    first_conversion_at = models.DateTimeField(_("first conversion"))

    objects = ScopedManager(program="program")

    class Meta:
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        constraints = [models.UniqueConstraint(fields=["program", "customer_id"], name="customer_unique")]

    def __str__(self) -> str:
        return self.customer_id


class ConversionStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    REVERSED = "reversed", _("Reversed")


class Conversion(models.Model):
    """A sale, lead, engagement or cancellation, attributed (or not) and paid by one commission rule."""

    class Attribution(models.TextChoices):
        CLICK = "click", _("Click id")
        COUPON = "coupon", _("Coupon")
        CUSTOMER = "customer", _("Returning customer")
        MANAGER = "manager", _("Chosen by a manager")
        NONE = "none", _("Unattributed")

    class Source(models.TextChoices):
        POSTBACK = "postback", _("Postback")
        API = "api", _("API")
        MANUAL = "manual", _("Manual entry")

    # Indexes: only the composites in Meta, which every query uses (docs/tracking-conversions.md, "Indexes").
    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+", db_index=False)
    kind = models.CharField(_("kind"), max_length=16, choices=ConversionKind.choices)
    # NULL, not "": leads without an order id must not collide in the unique constraint below.
    order_id = models.CharField(_("order id"), max_length=128, null=True, blank=True)  # noqa: DJ001
    status = models.CharField(
        _("status"), max_length=16, choices=ConversionStatus.choices, default=ConversionStatus.PENDING
    )
    status_reason = models.CharField(_("reason"), max_length=64, blank=True)
    created_at = models.DateTimeField(_("time"), default=timezone.now)
    status_changed_at = models.DateTimeField(_("status changed"), default=timezone.now)
    amount = models.DecimalField(_("amount"), **MONEY, default=Decimal("0"))
    currency = models.CharField(_("currency"), max_length=3)
    exchange_rate = models.DecimalField(_("exchange rate"), **RATE, default=Decimal("1"))
    revenue = models.DecimalField(_("revenue (program currency)"), **MONEY, default=Decimal("0"))
    commission = models.DecimalField(_("commission"), **MONEY, default=Decimal("0"))
    commission_rule = models.ForeignKey(
        CommissionRule, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )
    commission_explanation = models.TextField(_("why this payout"), blank=True)
    customer_id = models.CharField(_("customer id"), max_length=128, blank=True)
    is_new_customer = models.BooleanField(_("new customer"), default=False)
    renewal_number = models.PositiveIntegerField(_("renewal number"), default=0)
    coupon = models.CharField(_("coupon"), max_length=64, blank=True)
    click = models.ForeignKey(
        Click,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        to_field="click_id",
        db_constraint=False,
        db_index=False,
    )
    affiliate = models.ForeignKey(
        Affiliate, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )
    offer = models.ForeignKey(Offer, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False)
    link = models.ForeignKey(Link, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False)
    attributed_by = models.CharField(
        _("attributed by"), max_length=16, choices=Attribution.choices, default=Attribution.NONE
    )
    source = models.CharField(_("source"), max_length=16, choices=Source.choices)
    ip_hash = models.CharField(_("IP hash"), max_length=64, blank=True)
    fraud_flags = models.JSONField(_("fraud flags"), default=list, blank=True)
    in_review = models.BooleanField(_("in review"), default=False)

    objects = ScopedManager(program="program")

    class Meta:
        verbose_name = _("conversion")
        verbose_name_plural = _("conversions")
        ordering = ["-created_at", "-pk"]
        constraints = [
            # Idempotency: the same order posted 50 times is one conversion.
            models.UniqueConstraint(fields=["program", "kind", "order_id"], name="conversion_order_unique"),
        ]
        indexes = [
            models.Index(fields=["program", "created_at"], name="conversion_program_time_idx"),
            models.Index(fields=["program", "affiliate", "created_at"], name="conversion_aff_time_idx"),
            models.Index(fields=["program", "status", "created_at"], name="conversion_status_idx"),
            # Renewal numbers count a customer's earlier sales.
            models.Index(fields=["program", "customer_id", "kind", "created_at"], name="conversion_customer_idx"),
            # The review queue; few conversions are in review, and a new one that is not costs this index nothing.
            models.Index(fields=["program", "created_at"], name="conversion_review_idx", condition=Q(in_review=True)),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.order_id or self.pk}"


class ConversionEvent(models.Model):
    """Audit trail of a conversion: creation and every status change, with who, when and why."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+", db_index=False)
    conversion = models.ForeignKey(Conversion, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(_("from"), max_length=16, choices=ConversionStatus.choices, blank=True)
    to_status = models.CharField(_("to"), max_length=16, choices=ConversionStatus.choices)
    reason = models.TextField(_("reason"), blank=True)
    actor = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False)
    created_at = models.DateTimeField(_("when"), default=timezone.now)

    objects = ScopedManager(program="program")

    class Meta:
        verbose_name = _("conversion event")
        verbose_name_plural = _("conversion events")
        ordering = ["created_at", "pk"]
        indexes = [
            # Rollups read a program's reversals by time; the other events are only read per conversion.
            models.Index(
                fields=["program", "created_at"],
                name="event_reversal_idx",
                condition=Q(to_status=ConversionStatus.REVERSED),
            ),
            # Deleting a user sets their events' actor to NULL; events without an actor (most) are not in it.
            models.Index(fields=["actor"], name="event_actor_idx", condition=Q(actor__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.conversion}: {self.from_status or '—'} → {self.to_status}"


class PostbackAttempt(models.Model):
    """Every postback received, accepted or refused, with the reason, so a missing sale can be explained."""

    class Result(models.TextChoices):
        CREATED = "created", _("Created")
        DUPLICATE = "duplicate", _("Duplicate")
        UPDATED = "updated", _("Status updated")
        REFUSED = "refused", _("Refused")

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+", db_index=False)
    created_at = models.DateTimeField(_("received"), default=timezone.now)
    method = models.CharField(max_length=8)
    params = models.JSONField(_("parameters"), default=dict)  # the token is never stored
    ip_hash = models.CharField(_("IP hash"), max_length=64, blank=True)
    result = models.CharField(_("result"), max_length=16, choices=Result.choices)
    reason = models.CharField(_("reason"), max_length=64, blank=True)
    message = models.TextField(_("message"), blank=True)
    http_status = models.PositiveSmallIntegerField(_("HTTP status"))
    conversion = models.ForeignKey(
        Conversion, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    replay_of = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="replays", db_index=False
    )

    objects = ScopedManager(program="program")

    class Meta:
        verbose_name = _("postback attempt")
        verbose_name_plural = _("postback attempts")
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["program", "created_at"], name="postback_log_idx"),
            # The log filtered to refusals ("why is this sale missing?"); accepted postbacks are not in it.
            models.Index(fields=["program", "created_at"], name="postback_refused_idx", condition=Q(result="refused")),
            # Deleting an attempt sets its replays' replay_of to NULL; only replays are in this index.
            models.Index(fields=["replay_of"], name="postback_replay_idx", condition=Q(replay_of__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.result} {self.reason}"


class StatsDirtyKey(models.Model):
    """A mark: the (program, affiliate, program-local day) cell whose DailyStats must be recomputed.

    Written by tracking.dirty in the same transaction as the event that changes the cell (one row per write),
    deleted by the rollup loop in the transaction that recomputes the cell (goals.rollups, docs/rollups.md):
    a lost Celery message or a killed worker delays a recompute, never loses it.
    """

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+", db_index=False)
    affiliate = models.ForeignKey(Affiliate, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField(_("day"))
    marked_at = models.DateTimeField(_("marked"), default=timezone.now)

    objects = ScopedManager(program="program")

    class Meta:
        verbose_name = _("dirty rollup cell")
        verbose_name_plural = _("dirty rollup cells")
        # Not unique: one row per write of a cell (tracking/dirty.py says why); the loop coalesces them.
        indexes = [models.Index(fields=["program", "affiliate", "day"], name="stats_dirty_cell_idx")]

    def __str__(self) -> str:
        return f"{self.affiliate_id} {self.day}"
