"""Programs (the tenant), people and their roles, and the affiliates who apply to a program."""

import secrets

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models import F
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_scopes import ScopedManager

from affiliates.validators import validate_country, validate_currency, validate_timezone


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra_fields):
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra_fields):
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra_fields)

    def create_superuser(self, email: str, password: str | None = None, **extra_fields):
        extra_fields.setdefault("is_staff", True)
        extra_fields.setdefault("is_superuser", True)
        return self._create_user(email, password, **extra_fields)

    def get_by_natural_key(self, username: str):
        return self.get(email__iexact=username)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who logs in with an email address; their roles live on Membership."""

    email = models.EmailField(_("email address"), unique=True)
    name = models.CharField(_("name"), max_length=150, blank=True)
    is_staff = models.BooleanField(_("staff status"), default=False)
    is_active = models.BooleanField(_("active"), default=True)
    date_joined = models.DateTimeField(_("date joined"), default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        constraints = [models.UniqueConstraint(Lower("email"), name="user_email_ci_unique")]

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        return self.name or self.email

    def get_short_name(self) -> str:
        return self.name or self.email


def new_postback_token() -> str:
    return secrets.token_urlsafe(32)


class Program(models.Model):
    """An affiliate program: the tenant every other row belongs to."""

    name = models.CharField(_("name"), max_length=120)
    slug = models.SlugField(
        _("slug"), max_length=60, unique=True, help_text=_("Used in URLs: /p/<slug>/ and /portal/<slug>/.")
    )
    timezone = models.CharField(
        _("time zone"),
        max_length=64,
        default="UTC",
        validators=[validate_timezone],
        help_text=_("Days and months of every report follow this IANA time zone."),
    )
    currency = models.CharField(_("currency"), max_length=3, default="EUR", validators=[validate_currency])
    default_cookie_window_days = models.PositiveSmallIntegerField(_("default cookie window (days)"), default=30)
    auto_approve_affiliates = models.BooleanField(
        _("approve applications automatically"),
        default=False,
        help_text=_("New affiliate applications are approved at once instead of waiting for a manager."),
    )
    postback_token = models.CharField(_("postback token"), max_length=64, default=new_postback_token, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("program")
        verbose_name_plural = _("programs")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    OWNER = "owner", _("Owner")
    MANAGER = "manager", _("Manager")
    ANALYST = "analyst", _("Analyst")
    AFFILIATE = "affiliate", _("Affiliate")


STAFF_ROLES = frozenset({Role.OWNER, Role.MANAGER, Role.ANALYST})
MANAGING_ROLES = frozenset({Role.OWNER, Role.MANAGER})


class Membership(models.Model):
    """A user's role in one program; a user may hold one role in each of several programs."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(_("role"), max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    objects = ScopedManager(program="program")

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [models.UniqueConstraint(fields=["program", "user"], name="membership_program_user_unique")]

    def __str__(self) -> str:
        return f"{self.user} · {self.get_role_display()} · {self.program}"

    @property
    def is_staff_role(self) -> bool:
        return self.role in STAFF_ROLES


class AffiliateStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    SUSPENDED = "suspended", _("Suspended")


class Tier(models.TextChoices):
    STANDARD = "standard", _("Standard")
    SILVER = "silver", _("Silver")
    GOLD = "gold", _("Gold")


class Affiliate(models.Model):
    """A partner in one program: their application, profile and approval state."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="affiliates")
    user = models.ForeignKey(User, on_delete=models.PROTECT, related_name="affiliate_profiles", null=True, blank=True)
    name = models.CharField(_("name"), max_length=150)
    email = models.EmailField(_("email"))
    website = models.URLField(_("website"), blank=True)
    traffic_sources = models.TextField(
        _("traffic sources"), blank=True, help_text=_("How the affiliate plans to send visitors.")
    )
    country = models.CharField(_("country"), max_length=2, blank=True, validators=[validate_country])
    payout_email = models.EmailField(_("payout email"), blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=AffiliateStatus.choices, default=AffiliateStatus.PENDING, db_index=True
    )
    status_reason = models.TextField(_("reason for the status"), blank=True)
    tier = models.CharField(_("tier"), max_length=16, choices=Tier.choices, default=Tier.STANDARD)
    terms_accepted_at = models.DateTimeField(_("terms accepted"), null=True, blank=True)
    # Salted per-program hash of the IP of the affiliate's last login, for the self-referral fraud signal.
    login_ip_hash = models.CharField(_("last login IP hash"), max_length=64, blank=True, editable=False)
    created_at = models.DateTimeField(_("applied"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    objects = ScopedManager(program="program")

    class Meta:
        verbose_name = _("affiliate")
        verbose_name_plural = _("affiliates")
        ordering = ["name", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["program", "email"], name="affiliate_program_email_unique"),
            models.UniqueConstraint(fields=["program", "user"], name="affiliate_program_user_unique"),
        ]
        indexes = [
            models.Index(fields=["program", "status", "name"], name="affiliate_list_idx"),
            # The goal board sorts by case-insensitive name (and pk), all affiliates or one tier: a page of 50 is
            # read in index order instead of sorting the whole program.
            models.Index(F("program"), Lower("name"), F("id"), name="affiliate_name_idx"),
            models.Index(F("program"), F("tier"), Lower("name"), F("id"), name="affiliate_tier_name_idx"),
        ]

    def __str__(self) -> str:
        return self.name


class AffiliateStatusChange(models.Model):
    """One audit entry per change of an affiliate's status: who, when, why. Never edited."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="+")
    affiliate = models.ForeignKey(Affiliate, on_delete=models.CASCADE, related_name="status_changes")
    from_status = models.CharField(_("from"), max_length=16, choices=AffiliateStatus.choices, blank=True)
    to_status = models.CharField(_("to"), max_length=16, choices=AffiliateStatus.choices)
    reason = models.TextField(_("reason"), blank=True)
    changed_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(_("when"), default=timezone.now)

    objects = ScopedManager(program="program")

    class Meta:
        verbose_name = _("affiliate status change")
        verbose_name_plural = _("affiliate status changes")
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.affiliate}: {self.from_status or '—'} → {self.to_status}"


class Invitation(models.Model):
    """An owner's invitation of a colleague to a staff role; accepted once through a signed link."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(_("email"))
    role = models.CharField(
        _("role"),
        max_length=16,
        choices=[(role.value, role.label) for role in (Role.OWNER, Role.MANAGER, Role.ANALYST)],
    )
    invited_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(_("sent"), default=timezone.now)
    accepted_at = models.DateTimeField(_("accepted"), null=True, blank=True)

    objects = ScopedManager(program="program")

    class Meta:
        verbose_name = _("invitation")
        verbose_name_plural = _("invitations")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} → {self.program} ({self.role})"
