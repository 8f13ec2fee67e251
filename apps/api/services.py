"""Writes behind the REST API."""

from __future__ import annotations

from apps.alerts.models import UserSettings

SETTINGS_FIELDS = ("selected_alerts", "webhook_url", "notification_enabled")


def user_settings_update(*, user_id: str, changes: dict) -> UserSettings:
    """Creates or updates one user's settings with the given fields (others keep their values)."""
    values = {name: changes[name] for name in SETTINGS_FIELDS if name in changes}
    if values.get("webhook_url") is None and "webhook_url" in values:
        values["webhook_url"] = ""
    found, _ = UserSettings.objects.update_or_create(user_id=user_id, defaults=values)
    return found
