"""Notification settings: Django settings win, then environment variables, then these defaults.

Kept here so the delivery code reads one place; tests override them with pytest-django's `settings` fixture.
"""

from __future__ import annotations

from typing import Any

import environ
from django.conf import settings

_env = environ.Env()

DEFAULTS: dict[str, Any] = {
    # Loopback destinations (127.0.0.0/8, ::1) are refused unless this is on: self-hosting and tests.
    "NOTIFICATIONS_ALLOW_LOOPBACK": _env.bool("NOTIFICATIONS_ALLOW_LOOPBACK", default=False),
    # Connect / read timeouts of one request, seconds.
    "NOTIFICATIONS_CONNECT_TIMEOUT": _env.float("NOTIFICATIONS_CONNECT_TIMEOUT", default=3.0),
    "NOTIFICATIONS_READ_TIMEOUT": _env.float("NOTIFICATIONS_READ_TIMEOUT", default=5.0),
    # A delivery that keeps failing (5xx, timeouts, refused connections) is retried for NOTIFICATIONS_RETRY_SECONDS
    # and at least NOTIFICATIONS_MAX_ATTEMPTS times, then given up (failed).
    "NOTIFICATIONS_MAX_ATTEMPTS": _env.int("NOTIFICATIONS_MAX_ATTEMPTS", default=3),
    "NOTIFICATIONS_RETRY_SECONDS": _env.float("NOTIFICATIONS_RETRY_SECONDS", default=3600.0),
    # Backoff of a destination after its n-th failed request in a row: base * 2**(n-1) seconds (2, 4, ...) up to
    # NOTIFICATIONS_MAX_BACKOFF, or the server's Retry-After if longer.
    "NOTIFICATIONS_BACKOFF_BASE": _env.float("NOTIFICATIONS_BACKOFF_BASE", default=2.0),
    "NOTIFICATIONS_MAX_BACKOFF": _env.float("NOTIFICATIONS_MAX_BACKOFF", default=60.0),
    # A Retry-After longer than this is capped (a hostile or broken server must not park deliveries for days).
    "NOTIFICATIONS_MAX_RETRY_AFTER": _env.float("NOTIFICATIONS_MAX_RETRY_AFTER", default=300.0),
    # Consecutive failed requests after which a destination is paused.
    "NOTIFICATIONS_PAUSE_AFTER_FAILURES": _env.int("NOTIFICATIONS_PAUSE_AFTER_FAILURES", default=6),
    "NOTIFICATIONS_TELEGRAM_API_URL": _env("NOTIFICATIONS_TELEGRAM_API_URL", default="https://api.telegram.org"),
    # Minimum seconds between two messages to one destination. Telegram: ~1/s per chat, 20/min per group
    # (group chat ids are negative); Discord: 30 messages/min per webhook's channel.
    "NOTIFICATIONS_INTERVAL_TELEGRAM_CHAT": _env.float("NOTIFICATIONS_INTERVAL_TELEGRAM_CHAT", default=1.0),
    "NOTIFICATIONS_INTERVAL_TELEGRAM_GROUP": _env.float("NOTIFICATIONS_INTERVAL_TELEGRAM_GROUP", default=3.0),
    "NOTIFICATIONS_INTERVAL_DISCORD": _env.float("NOTIFICATIONS_INTERVAL_DISCORD", default=2.0),
    "NOTIFICATIONS_INTERVAL_WEBHOOK": _env.float("NOTIFICATIONS_INTERVAL_WEBHOOK", default=0.2),
    # Slack incoming webhooks: about one message a second.
    "NOTIFICATIONS_INTERVAL_SLACK": _env.float("NOTIFICATIONS_INTERVAL_SLACK", default=1.0),
    # Alerts per message: Discord allows 10 embeds; Telegram is cut by its 4096-character limit too.
    "NOTIFICATIONS_BATCH_DISCORD": 10,
    "NOTIFICATIONS_BATCH_TELEGRAM": _env.int("NOTIFICATIONS_BATCH_TELEGRAM", default=25),
    "NOTIFICATIONS_BATCH_WEBHOOK": _env.int("NOTIFICATIONS_BATCH_WEBHOOK", default=50),
    "NOTIFICATIONS_BATCH_SLACK": _env.int("NOTIFICATIONS_BATCH_SLACK", default=20),
}


def conf(name: str) -> Any:
    return getattr(settings, name, DEFAULTS[name])
