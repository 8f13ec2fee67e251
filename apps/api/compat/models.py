"""Accounts of the compatibility surface (see README.md): a profile beside each Django user, and the users' webhooks.

A user's webhook is the source of truth for the client; the notifications pipeline sends through a Destination that
mirrors it (apps.api.compat.account_services.compat_destinations_sync keeps the two in step).
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


class AccountProfile(models.Model):
    """What the client shows of a user beyond the Django account: plan, status, rule switches, watchlist.

    Created lazily (apps.api.compat.account_services.account_profile_get) for users that existed before.
    """

    class Status(models.TextChoices):
        TRIAL = "trial"
        ACTIVE = "active"
        EXPIRED = "expired"
        CANCELED = "canceled"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="compat_profile")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    trial_ends_at = models.DateTimeField(null=True, blank=True)
    plan = models.CharField(max_length=64, blank=True, default="")
    plan_activated_at = models.DateTimeField(null=True, blank=True)
    plan_expires_at = models.DateTimeField(null=True, blank=True)
    tv_addon_active = models.BooleanField(default=False, verbose_name="TradingView add-on active")
    tv_username = models.CharField(max_length=64, blank=True, default="", verbose_name="TradingView username")
    # Shown by the client's billing page (the identifier of a membership with an outside payment provider, if any).
    membership_id = models.CharField(max_length=100, blank=True, default="")
    # Rule types this user switched off (per user: a trader's switch never disables a rule for everyone).
    disabled_rule_types = models.JSONField(default=list, blank=True)
    # Rule types this user switched on: what the client shows for its catalogue rules this screener lacks, whose
    # default may be off (a rule this screener has is on when it is on for everyone and not switched off).
    enabled_rule_types = models.JSONField(default=list, blank=True)
    # Upper-case symbols in the user's order, no duplicates.
    watchlist = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "compat_account_profiles"
        verbose_name = "web client profile"

    def __str__(self) -> str:
        return f"profile of {self.user}"


class UserWebhook(models.Model):
    """A webhook a user of the client created; alerts reach it through its mirror Destination."""

    class Type(models.TextChoices):
        DISCORD = "discord"
        TELEGRAM = "telegram"
        SLACK = "slack"
        HTTP = "http", "HTTP (signed JSON)"

    class Scope(models.TextChoices):
        ALL = "all", "All symbols"
        WATCHLIST = "watchlist", "Watchlist symbols only"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="compat_webhooks")
    name = models.CharField(max_length=100)
    webhook_type = models.CharField(max_length=16, choices=Type.choices)
    # Discord, Slack and HTTP post here; Telegram uses config.bot_token and config.chat_id (the URL may be empty).
    webhook_url = models.CharField(max_length=500, blank=True, default="")
    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.ALL)
    is_enabled = models.BooleanField(default=True)
    max_alerts_per_minute = models.PositiveIntegerField(default=10)
    # Channel details: Telegram `bot_token`, `chat_id`; HTTP `secret` (the HMAC key, generated when absent).
    config = models.JSONField(default=dict, blank=True)
    destination = models.OneToOneField(
        "notifications.Destination",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="compat_webhook",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "compat_user_webhooks"
        ordering = ["id"]
        verbose_name = "web client webhook"

    def __str__(self) -> str:
        return f"{self.name} ({self.webhook_type}) of {self.user}"

    def clean(self) -> None:
        """The API's checks, for edits in the admin."""
        from .account_checks import UnsafeDestination, telegram_config_errors, webhook_url_check

        errors: dict[str, str] = {}
        if not isinstance(self.config, dict):
            errors["config"] = "A JSON object."
        elif self.webhook_type == self.Type.TELEGRAM:
            missing = telegram_config_errors(self.config)
            if missing:
                errors["config"] = " ".join(m for messages in missing.values() for m in messages)
        if self.webhook_url or self.webhook_type != self.Type.TELEGRAM:
            try:
                webhook_url_check(self.webhook_url)
            except UnsafeDestination as exc:
                errors["webhook_url"] = str(exc)
        if not 1 <= (self.max_alerts_per_minute or 0) <= 600:
            errors["max_alerts_per_minute"] = "Between 1 and 600."
        if errors:
            raise ValidationError(errors)


class Invite(models.Model):
    """An invite code an operator made in the admin: signs up `max_uses` accounts until `expires_at`."""

    code = models.CharField(max_length=64, unique=True)
    note = models.CharField(max_length=200, blank=True, default="", help_text="Who it is for (operators only).")
    max_uses = models.PositiveIntegerField(default=1)
    uses = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField(null=True, blank=True)
    # The days of trial a user who signs up with it gets (0: an active account straight away).
    trial_days = models.PositiveIntegerField(default=7)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "compat_invites"
        ordering = ["-created_at"]
        verbose_name = "web client invite"

    def __str__(self) -> str:
        return self.code
