"""Where alerts are sent (destinations) and the record of each send (deliveries and their attempts).

A delivery row is the exactly-once claim: one per (alert, destination), enforced by a unique constraint, inserted
with ON CONFLICT DO NOTHING so a repeated enqueue of the same alert never creates a second one.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


class Destination(models.Model):
    """An operator-defined channel, the mirror of one user's webhook from UserSettings (`user_id` set), or the
    mirror of a webhook a signed-in user of the compatibility surface created (`owner` set, apps.api.compat)."""

    class Kind(models.TextChoices):
        DISCORD = "discord", "Discord webhook"
        TELEGRAM = "telegram", "Telegram chat"
        WEBHOOK = "webhook", "Generic JSON webhook"
        SLACK = "slack", "Slack incoming webhook"

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Discord and generic webhooks post here; Telegram uses the bot token and chat id instead.
    url = models.URLField(max_length=500, blank=True, default="")
    telegram_bot_token = models.CharField(max_length=100, blank=True, default="")
    telegram_chat_id = models.CharField(max_length=64, blank=True, default="")
    # Key of the HMAC-SHA256 signature of generic webhooks.
    secret = models.CharField(max_length=128, blank=True, default=_new_secret)
    # Empty list = every rule type / every symbol.
    rule_types = models.JSONField(default=list, blank=True)
    symbols = models.JSONField(default=list, blank=True)
    # Rule types never sent here, whatever `rule_types` says: the rules the owner switched off.
    excluded_rule_types = models.JSONField(default=list, blank=True)
    enabled = models.BooleanField(default=True)
    # At least this many seconds between two messages when longer than the channel's own interval (a user's
    # "max alerts per minute"); null = the channel's interval only.
    min_interval_seconds = models.FloatField(null=True, blank=True)
    # Set by delivery when the destination keeps failing; deliveries wait (pending) until an operator resumes it.
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_reason = models.CharField(max_length=300, blank=True, default="")
    consecutive_failures = models.PositiveIntegerField(default=0)
    # The Supabase user id whose UserSettings this row mirrors; null for operator destinations.
    user_id = models.CharField(max_length=64, null=True, blank=True, unique=True)
    # The Django user whose compatibility-surface webhook this row mirrors; null for the others.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notification_destinations",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "notification_destinations"
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def save(self, *args, **kwargs) -> None:
        # A save that lifts a pause (the admin, a user's new URL) creates the deliveries missed while paused: a paused
        # destination gets none as alerts fire (apps.alerts.notifications.services).
        update_fields = kwargs.get("update_fields")
        lifted_since = None
        if self.pk and self.paused_at is None and (update_fields is None or "paused_at" in update_fields):
            lifted_since = Destination.objects.filter(pk=self.pk).values_list("paused_at", flat=True).first()
        super().save(*args, **kwargs)
        if lifted_since is not None:
            from .services import destination_pause_lifted

            destination_pause_lifted(destination=self, since=lifted_since)

    @property
    def is_paused(self) -> bool:
        return self.paused_at is not None

    def matches(self, *, alert_type: str, symbol: str) -> bool:
        return (
            (not self.rule_types or alert_type in self.rule_types)
            and alert_type not in (self.excluded_rule_types or ())
            and (not self.symbols or symbol in self.symbols)
        )

    def clean(self) -> None:
        from .safety import UnsafeDestination, url_check

        errors: dict[str, str] = {}
        if self.kind in (self.Kind.DISCORD, self.Kind.WEBHOOK, self.Kind.SLACK):
            if not self.url:
                errors["url"] = f"A {self.get_kind_display()} needs a URL."
            else:
                try:
                    url_check(self.url)
                except UnsafeDestination as exc:
                    errors["url"] = str(exc)
        if self.kind == self.Kind.TELEGRAM:
            if not self.telegram_bot_token:
                errors["telegram_bot_token"] = "A Telegram destination needs the bot token."
            elif ":" not in self.telegram_bot_token or "/" in self.telegram_bot_token:
                errors["telegram_bot_token"] = "A bot token looks like 123456:ABC-DEF..."
            if not self.telegram_chat_id:
                errors["telegram_chat_id"] = "A Telegram destination needs the chat id."
        if self.min_interval_seconds is not None and not 0 <= self.min_interval_seconds <= 3600:
            errors["min_interval_seconds"] = "Between 0 and 3600 seconds."
        for field in ("rule_types", "symbols", "excluded_rule_types"):
            value = getattr(self, field)
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                errors[field] = "A list of strings (empty means all)."
        if self.symbols and isinstance(self.symbols, list):
            self.symbols = [s.upper() for s in self.symbols if isinstance(s, str)]
        if errors:
            raise ValidationError(errors)


class Delivery(models.Model):
    """One alert to one destination. The alert is named by AlertHistory's composite key (no FK to composite pks)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"

    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="deliveries")
    alert_triggered_at = models.DateTimeField()
    alert_symbol = models.CharField(max_length=32)
    alert_type = models.CharField(max_length=64)
    alert_id = models.UUIDField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True, default="")
    # A pending delivery is not sent before this moment (retry backoff, Retry-After).
    next_attempt_at = models.DateTimeField()
    # The Idempotency-Key of the request this delivery went out in, set before the request and cleared once its
    # outcome is final: a sender that died meanwhile leaves it, and the next sender repeats exactly that batch, with
    # that key, before anything else.
    batch_key = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "notification_deliveries"
        ordering = ["-created_at"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["alert_triggered_at", "alert_symbol", "alert_type", "destination"],
                name="notification_delivery_once",
            ),
        ]
        indexes = [
            models.Index(fields=["destination", "status", "next_attempt_at"], name="notification_delivery_due"),
        ]

    def __str__(self) -> str:
        return (
            f"{self.alert_type} {self.alert_symbol} {self.alert_triggered_at:%Y-%m-%d %H:%M} -> {self.destination_id}"
        )


class DeliveryAttempt(models.Model):
    """One HTTP request made for a delivery (a batched message counts as an attempt of each delivery in it)."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveSmallIntegerField()
    at = models.DateTimeField()
    ok = models.BooleanField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True, default="")
    duration_ms = models.PositiveIntegerField(default=0)
    batch_size = models.PositiveSmallIntegerField(default=1)

    class Meta:
        db_table = "notification_delivery_attempts"
        ordering = ["delivery_id", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}: {'ok' if self.ok else self.error}"
