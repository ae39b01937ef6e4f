"""Django admin for tracking, across programs (scopes are disabled under /admin/ on purpose).

Configuration rows (offers, links, coupons, rates, plans, rules, caps, settings) are editable. Raw events
(clicks, impressions, postback attempts) and the conversion audit trail are read-only: they are the truth
every number is rebuilt from, so nobody edits or deletes them here. Conversions change status only through
the conversion services (the manager pages), which write the audit entry; admin shows them read-only.
"""

from django.contrib import admin

from affiliates.admin import NoDeleteMixin
from tracking.models import (
    Cap,
    Click,
    CommissionPlan,
    CommissionRule,
    Conversion,
    ConversionEvent,
    Coupon,
    CurrencyRate,
    CustomerLink,
    Impression,
    Link,
    Offer,
    PostbackAttempt,
    StatsDirtyKey,
    TrackingSettings,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Every field shown, nothing added, changed or deleted (the goals admin uses it too)."""

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyInlineMixin:
    """An inline that shows its rows and nothing more (the goals admin uses it with StackedInline)."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyInline(ReadOnlyInlineMixin, admin.TabularInline):
    pass


@admin.register(TrackingSettings)
class TrackingSettingsAdmin(admin.ModelAdmin):
    list_display = ["program", "attribution_model", "lifetime_customers", "hold_days", "postback_require_signature"]
    list_filter = ["attribution_model", "lifetime_customers", "postback_require_signature"]
    search_fields = ["program__name", "program__slug"]
    list_select_related = ["program"]
    readonly_fields = ["postback_signing_secret"]


@admin.register(Offer)
class OfferAdmin(NoDeleteMixin, admin.ModelAdmin):
    list_display = ["name", "program", "status", "destination_url", "cookie_window_days", "created_at"]
    list_filter = ["status", "program"]
    search_fields = ["name", "destination_url"]
    list_select_related = ["program"]
    readonly_fields = ["created_at", "updated_at"]


@admin.register(Link)
class LinkAdmin(NoDeleteMixin, admin.ModelAdmin):
    list_display = ["code", "program", "affiliate", "offer", "name", "status", "created_at"]
    list_filter = ["status", "program"]
    search_fields = ["code", "name", "affiliate__name", "offer__name"]
    list_select_related = ["program", "affiliate", "offer"]
    raw_id_fields = ["affiliate", "offer"]
    readonly_fields = ["code", "created_at"]


@admin.register(Coupon)
class CouponAdmin(admin.ModelAdmin):
    list_display = ["code", "program", "affiliate", "offer", "active", "created_at"]
    list_filter = ["active", "program"]
    search_fields = ["code", "affiliate__name"]
    list_select_related = ["program", "affiliate", "offer"]
    raw_id_fields = ["affiliate", "offer"]
    readonly_fields = ["created_at"]


@admin.register(Click)
class ClickAdmin(ReadOnlyAdmin):
    list_display = [
        "click_id",
        "created_at",
        "program",
        "affiliate",
        "offer",
        "source",
        "country",
        "is_unique",
        "is_bot",
    ]
    list_filter = ["source", "is_bot", "is_unique", "program"]
    search_fields = ["click_id", "link__code", "sub1", "sub2", "sub3", "sub4", "sub5"]
    list_select_related = ["program", "affiliate", "offer"]
    date_hierarchy = "created_at"
    show_full_result_count = False  # a count over millions of raw rows on every page view is not worth it


@admin.register(Impression)
class ImpressionAdmin(ReadOnlyAdmin):
    list_display = ["event_id", "created_at", "program", "affiliate", "offer", "is_bot"]
    list_filter = ["is_bot", "program"]
    search_fields = ["event_id", "link__code"]
    list_select_related = ["program", "affiliate", "offer"]
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(CurrencyRate)
class CurrencyRateAdmin(admin.ModelAdmin):
    list_display = ["currency", "day", "rate", "program"]
    list_filter = ["currency", "program"]
    search_fields = ["currency"]
    list_select_related = ["program"]
    date_hierarchy = "day"


class CommissionRuleInline(admin.TabularInline):
    model = CommissionRule
    extra = 0
    fields = ["kind", "rule_type", "amount", "percent", "tiers", "offer", "affiliate", "recurring_renewals"]
    raw_id_fields = ["offer", "affiliate"]


@admin.register(CommissionPlan)
class CommissionPlanAdmin(NoDeleteMixin, admin.ModelAdmin):
    list_display = ["name", "program", "is_default", "created_at"]
    list_filter = ["is_default", "program"]
    search_fields = ["name"]
    list_select_related = ["program"]
    readonly_fields = ["created_at"]
    inlines = [CommissionRuleInline]


@admin.register(CommissionRule)
class CommissionRuleAdmin(NoDeleteMixin, admin.ModelAdmin):
    list_display = ["__str__", "program", "kind", "rule_type", "amount", "percent", "offer", "affiliate"]
    list_filter = ["kind", "rule_type", "program"]
    search_fields = ["plan__name", "offer__name", "affiliate__name"]
    list_select_related = ["program", "plan", "offer", "affiliate"]
    raw_id_fields = ["plan", "offer", "affiliate"]
    readonly_fields = ["created_at"]


@admin.register(Cap)
class CapAdmin(admin.ModelAdmin):
    list_display = ["__str__", "program", "offer", "affiliate", "metric", "period", "limit"]
    list_filter = ["metric", "period", "program"]
    search_fields = ["offer__name", "affiliate__name"]
    list_select_related = ["program", "offer", "affiliate"]
    raw_id_fields = ["offer", "affiliate"]


@admin.register(CustomerLink)
class CustomerLinkAdmin(ReadOnlyAdmin):
    list_display = ["customer_id", "program", "affiliate", "first_conversion_at"]
    list_filter = ["program"]
    search_fields = ["customer_id", "affiliate__name"]
    list_select_related = ["program", "affiliate"]


class ConversionEventInline(ReadOnlyInline):
    model = ConversionEvent
    fields = ["created_at", "from_status", "to_status", "actor", "reason"]
    readonly_fields = fields


@admin.register(Conversion)
class ConversionAdmin(ReadOnlyAdmin):
    list_display = [
        "__str__",
        "created_at",
        "program",
        "status",
        "affiliate",
        "amount",
        "currency",
        "commission",
        "in_review",
    ]
    list_filter = ["status", "kind", "source", "attributed_by", "in_review", "program"]
    search_fields = ["order_id", "customer_id", "coupon", "affiliate__name"]
    list_select_related = ["program", "affiliate"]
    date_hierarchy = "created_at"
    inlines = [ConversionEventInline]


@admin.register(ConversionEvent)
class ConversionEventAdmin(ReadOnlyAdmin):
    list_display = ["conversion", "program", "from_status", "to_status", "actor", "created_at"]
    list_filter = ["to_status", "program"]
    search_fields = ["conversion__order_id", "reason"]
    list_select_related = ["conversion", "program", "actor"]


@admin.register(PostbackAttempt)
class PostbackAttemptAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "program", "method", "result", "reason", "http_status", "conversion"]
    list_filter = ["result", "reason", "method", "program"]
    search_fields = ["reason", "message"]
    list_select_related = ["program", "conversion"]
    date_hierarchy = "created_at"


@admin.register(StatsDirtyKey)
class StatsDirtyKeyAdmin(ReadOnlyAdmin):
    """Rollup bookkeeping: which (affiliate, day) cells wait for a recompute. Shown to debug a stuck rollup."""

    list_display = ["program", "affiliate", "day", "marked_at"]
    list_filter = ["program"]
    search_fields = ["affiliate__name"]
    list_select_related = ["program", "affiliate"]
    date_hierarchy = "day"
