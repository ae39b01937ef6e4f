"""Django admin for programs, people and affiliates; admin runs unscoped on purpose (see AdminScopesMiddleware)."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.utils.translation import gettext_lazy as _

from affiliates.models import Affiliate, AffiliateStatusChange, Invitation, Membership, Program, User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "name", "is_staff", "is_superuser", "is_active", "date_joined", "last_login"]
    list_filter = ["is_staff", "is_superuser", "is_active"]
    search_fields = ["email", "name"]
    readonly_fields = ["date_joined", "last_login"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        (_("Profile"), {"fields": ["name"]}),
        (_("Permissions"), {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]}),
        (_("Dates"), {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "name", "password1", "password2"]})]


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Program)
class ProgramAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "timezone", "currency", "auto_approve_affiliates", "created_at"]
    list_filter = ["currency", "auto_approve_affiliates"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["postback_token", "created_at", "updated_at"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "program", "role", "created_at"]
    list_filter = ["role", "program"]
    search_fields = ["user__email", "program__name"]
    list_select_related = ["user", "program"]
    autocomplete_fields = ["user"]
    readonly_fields = ["created_at"]


class StatusChangeInline(admin.TabularInline):
    model = AffiliateStatusChange
    extra = 0
    can_delete = False
    readonly_fields = ["from_status", "to_status", "reason", "changed_by", "created_at"]
    fields = readonly_fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class NoDeleteMixin:
    """For rows that clicks and conversions refer to: they are paused or suspended through their status, never
    deleted. Deleting would also make PostgreSQL scan the event tables to enforce PROTECT (their foreign keys
    have no index of their own; docs/tracking-conversions.md, "Indexes")."""

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Affiliate)
class AffiliateAdmin(NoDeleteMixin, admin.ModelAdmin):
    list_display = ["name", "email", "program", "status", "tier", "country", "created_at"]
    list_filter = ["status", "tier", "program", "country"]
    search_fields = ["name", "email", "website"]
    list_select_related = ["program"]
    readonly_fields = ["terms_accepted_at", "created_at", "updated_at"]
    raw_id_fields = ["user"]
    inlines = [StatusChangeInline]


@admin.register(AffiliateStatusChange)
class AffiliateStatusChangeAdmin(admin.ModelAdmin):
    """The audit log is read-only: entries are never edited or deleted."""

    list_display = ["affiliate", "program", "from_status", "to_status", "changed_by", "created_at"]
    list_filter = ["to_status", "program"]
    search_fields = ["affiliate__name", "affiliate__email", "reason"]
    list_select_related = ["affiliate", "program", "changed_by"]
    readonly_fields = ["program", "affiliate", "from_status", "to_status", "reason", "changed_by", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "program", "role", "invited_by", "created_at", "accepted_at"]
    list_filter = ["role", "program"]
    search_fields = ["email"]
    readonly_fields = ["invited_by", "created_at", "accepted_at"]
