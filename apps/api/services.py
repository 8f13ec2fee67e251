"""Writes behind the REST API."""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync

from apps.alerts.models import UserSettings

from .fanout import user_settings_broadcast

logger = logging.getLogger(__name__)

SETTINGS_FIELDS = ("selected_alerts", "webhook_url", "notification_enabled")


def user_settings_update(*, user_id: str, changes: dict) -> UserSettings:
    """Creates or updates one user's settings with the given fields (others keep their values)."""
    values = {name: changes[name] for name in SETTINGS_FIELDS if name in changes}
    if values.get("webhook_url") is None and "webhook_url" in values:
        values["webhook_url"] = ""
    found, _ = UserSettings.objects.update_or_create(user_id=user_id, defaults=values)
    if "selected_alerts" in values:
        try:
            async_to_sync(user_settings_broadcast)(user_id=user_id, selected_alerts=found.selected_alerts)
        except Exception:  # saved all the same; open sockets pick the selection up at their next auth
            logger.exception("Could not tell the web processes about user %s's new selection", user_id)
    return found
