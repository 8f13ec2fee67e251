"""Checks of a user's webhook shared by the API and the admin (UserWebhook.clean)."""

from __future__ import annotations

import re

from apps.alerts.notifications.safety import UnsafeDestination, url_check

__all__ = ["UnsafeDestination", "telegram_config_errors", "webhook_url_check"]

TELEGRAM_CHAT_ID = re.compile(r"^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{3,64})$")


def webhook_url_check(url: str) -> None:
    """The notifications' destination check (apps.alerts.notifications.safety), the same for every entry point."""
    url_check(url)


def telegram_config_errors(config: dict) -> dict[str, list[str]]:
    """What a Telegram webhook's config lacks, by key (empty when it is complete)."""
    errors: dict[str, list[str]] = {}
    token = config.get("bot_token")
    if not isinstance(token, str) or not token.strip():
        errors["bot_token"] = ["A Telegram webhook needs config.bot_token (from @BotFather)."]
    elif ":" not in token or "/" in token or len(token) > 100:
        errors["bot_token"] = ["A bot token looks like 123456:ABC-DEF..."]
    chat_id = config.get("chat_id")
    if isinstance(chat_id, bool) or not isinstance(chat_id, str | int) or str(chat_id).strip() == "":
        errors["chat_id"] = ["A Telegram webhook needs config.chat_id."]
    elif not TELEGRAM_CHAT_ID.match(str(chat_id).strip()):
        errors["chat_id"] = ["A chat id is a number (negative for groups) or @channelname."]
    return errors
