from __future__ import annotations

import uuid

from django.db import models


class AlertRule(models.Model):
    """A rule is data: conditions over named metrics with named numeric parameters."""

    class Category(models.TextChoices):
        BULL = "bull"
        BEAR = "bear"
        NEUTRAL = "neutral"

    rule_type = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    category = models.CharField(max_length=8, choices=Category.choices, default=Category.NEUTRAL)
    timeframe = models.CharField(max_length=4, default="1m")
    enabled = models.BooleanField(default=True)
    cooldown_minutes = models.PositiveIntegerField(default=5)
    # Named numeric parameters, e.g. {"change_1h_min": 1.6}; conditions refer to them by name.
    parameters = models.JSONField(default=dict, blank=True)
    # A list of condition strings such as "change_1h > change_1h_min", all of which must hold; the language is
    # described in apps.alerts.conditions (parsed with ast, never evaluated as Python).
    conditions = models.JSONField(default=list, blank=True)
    is_builtin = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "alert_rules"
        ordering = ["id"]

    def __str__(self) -> str:
        return self.rule_type


class AlertHistory(models.Model):
    """One fired alert. (triggered_at, symbol, alert_type) is both the primary key and the exactly-once key."""

    pk = models.CompositePrimaryKey("triggered_at", "symbol", "alert_type")
    id = models.UUIDField(default=uuid.uuid4, editable=False)
    # The close of minute t, i.e. the next minute boundary after the window candle's open.
    triggered_at = models.DateTimeField()
    symbol = models.CharField(max_length=32)
    alert_type = models.CharField(max_length=64)
    timeframe = models.CharField(max_length=4, default="1m")
    price = models.FloatField()
    volume = models.FloatField(null=True)
    change_pct = models.FloatField(null=True)
    metadata = models.JSONField(default=dict)
    webhook_sent = models.BooleanField(default=False)
    webhook_sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "alert_history"
        constraints = [
            models.UniqueConstraint(fields=["id", "triggered_at"], name="alert_history_id_triggered_at"),
        ]
        indexes = [
            models.Index(fields=["-triggered_at"], name="alert_history_triggered"),
            models.Index(fields=["symbol", "alert_type", "-triggered_at"], name="alert_history_pair"),
            # A resuming WebSocket client's replay (apps.api.consumers): the alerts created after one it received.
            models.Index(fields=["created_at", "id"], name="alert_history_created"),
            # The push sweep's lookup: only alerts never pushed are in it, so it stays a few rows.
            models.Index(
                fields=["created_at"],
                condition=~models.Q(metadata__timestamps__has_key="pushed_ms"),
                name="alert_history_unpushed",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.alert_type} {self.symbol} {self.triggered_at:%Y-%m-%d %H:%M}Z"


class UserSettings(models.Model):
    """Per-user alert preferences; `user_id` is the Supabase user id (the JWT's `sub`)."""

    user_id = models.CharField(max_length=64, unique=True)
    selected_alerts = models.JSONField(default=list, blank=True)
    webhook_url = models.URLField(max_length=500, blank=True, default="")
    notification_enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "user_settings"
        verbose_name_plural = "user settings"

    def __str__(self) -> str:
        return self.user_id

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from .notifications.safety import UnsafeDestination, url_check

        if self.webhook_url:
            try:
                url_check(self.webhook_url)
            except UnsafeDestination as exc:
                raise ValidationError({"webhook_url": str(exc)}) from None
