from __future__ import annotations

from django.db import models


class UserSettings(models.Model):
    """Per-user preferences; `user_id` is the Supabase user id (the JWT's `sub`)."""

    user_id = models.CharField(max_length=64, unique=True)
    selected_alerts = models.JSONField(default=list, blank=True)
    webhook_url = models.URLField(max_length=500, blank=True, default="")
    notification_enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "user_settings"

    def __str__(self) -> str:
        return self.user_id
