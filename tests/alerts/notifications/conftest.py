from __future__ import annotations

import itertools
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import redis as redis_lib
from django.conf import settings

from apps.alerts.models import AlertHistory, AlertRule
from apps.alerts.notifications.models import Destination

_minutes = itertools.count()


@pytest.fixture
def make_alert(db):
    """Create AlertHistory rows with distinct keys (one minute apart unless told)."""

    def make(symbol: str = "BTCUSDT", alert_type: str = "big_bull_60m", **fields) -> AlertHistory:
        triggered_at = fields.pop("triggered_at", None) or datetime(2026, 11, 23, 10, 0, tzinfo=UTC) + timedelta(
            minutes=next(_minutes)
        )
        values = {
            "price": 101.5,
            "volume": 2_500_000.0,
            "change_pct": 1.9,
            "timeframe": "1h",
            "metadata": {"vcp": 0.42},
        }
        values.update(fields)
        return AlertHistory.objects.create(triggered_at=triggered_at, symbol=symbol, alert_type=alert_type, **values)

    return make


@pytest.fixture
def make_destination(db):
    def make(**fields) -> Destination:
        values = {"name": "ops", "kind": Destination.Kind.WEBHOOK, "url": "https://hooks.example.com/in"}
        values.update(fields)
        return Destination.objects.create(**values)

    return make


@pytest.fixture
def broker(redis_client):
    """The test Celery broker (real Redis); this run's keys are removed before and after."""
    client = redis_lib.Redis.from_url(settings.CELERY_BROKER_URL)
    prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"]

    def clear() -> None:
        for found in client.scan_iter(match=prefix + "*", count=1000):
            client.delete(found)

    clear()
    client.queued = lambda queue: [json.loads(m) for m in client.lrange(prefix + queue, 0, -1)]
    client.queued.prefix = prefix
    yield client
    clear()
    client.close()


@pytest.fixture
def rules(db):
    """Rule names and categories as the admin shows them (seeded by migration; ensured here)."""
    for rule_type, name, category in [
        ("big_bull_60m", "Big Bull 60m", "bull"),
        ("big_bear_60m", "Big Bear 60m", "bear"),
    ]:
        AlertRule.objects.get_or_create(rule_type=rule_type, defaults={"name": name, "category": category})


@pytest.fixture
def receiver():
    from .receiver import Receiver

    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def fast_notifications(settings, receiver, redis_client):
    """Loopback allowed (the receiver), short timeouts and backoff so retries take a fraction of a second."""
    settings.NOTIFICATIONS_ALLOW_LOOPBACK = True
    settings.NOTIFICATIONS_CONNECT_TIMEOUT = 0.5
    settings.NOTIFICATIONS_READ_TIMEOUT = 0.5
    settings.NOTIFICATIONS_BACKOFF_BASE = 0.1
    settings.NOTIFICATIONS_INTERVAL_WEBHOOK = 0.0
    settings.NOTIFICATIONS_INTERVAL_DISCORD = 0.0
    # Telegram's pacing kept, a quarter as long (tests compare with these settings; their defaults are checked apart).
    settings.NOTIFICATIONS_INTERVAL_TELEGRAM_CHAT = 0.25
    settings.NOTIFICATIONS_INTERVAL_TELEGRAM_GROUP = 0.75
    settings.NOTIFICATIONS_TELEGRAM_API_URL = receiver.url
    return settings


@pytest.fixture
def drain():
    """Run the destination's sending the way the task chain does, sleeping the delays it asks for."""
    from apps.alerts.notifications.delivery import destination_deliver

    def run(destination_id: int, *, limit_seconds: float = 30.0) -> int:
        deadline = time.monotonic() + limit_seconds
        calls = 0
        while (delay := destination_deliver(destination_id=destination_id)) is not None:
            calls += 1
            assert time.monotonic() + delay < deadline, "deliveries still pending at the time limit"
            time.sleep(delay)
        return calls

    return run
