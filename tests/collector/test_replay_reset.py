"""replay_reset forgets a replay (Redis keys under the prefix, time-series rows) in the offline sandbox only."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.alerts.models import AlertHistory, AlertRule
from apps.collector.models import Candle1m

pytestmark = pytest.mark.django_db

MINUTE = datetime(2025, 5, 10, 12, 0, tzinfo=UTC)


def other_screeners_key() -> str:
    """A key of another screener on the same Redis (another prefix), one per test process: the tests of this module
    run side by side in parallel workers, and one's teardown must not delete the key another is checking."""
    return f"someoneelse-{settings.REDIS_KEY_PREFIX}:shard:0:last_minute"


@pytest.fixture
def replayed(redis_client):
    """What a replay leaves: hot-store keys under the prefix, candles and an alert; plus another prefix's key."""
    redis_client.set(f"{settings.REDIS_KEY_PREFIX}:shard:0:last_minute", 1)
    redis_client.set(f"{settings.REDIS_KEY_PREFIX}:tick:claimed:1", 1)
    redis_client.set(other_screeners_key(), 1)
    Candle1m.objects.create(time=MINUTE, symbol="BTCUSDT", open=1, high=1, low=1, close=1, volume=1, quote_volume=1)
    AlertHistory.objects.create(triggered_at=MINUTE, symbol="BTCUSDT", alert_type="pioneer_bull", price=1.0)
    yield
    redis_client.delete(other_screeners_key())


def test_outside_the_sandbox_it_refuses_and_deletes_nothing(redis_client, replayed, monkeypatch):
    monkeypatch.delenv("SCREENER_SANDBOX", raising=False)
    with pytest.raises(CommandError, match="sandbox"):
        call_command("replay_reset", no_input=True)
    assert redis_client.exists(f"{settings.REDIS_KEY_PREFIX}:shard:0:last_minute")
    assert Candle1m.objects.count() == 1 and AlertHistory.objects.count() == 1


def test_in_the_sandbox_it_forgets_the_replay_and_keeps_the_rest(redis_client, replayed, monkeypatch):
    monkeypatch.setenv("SCREENER_SANDBOX", "1")
    rules = AlertRule.objects.count()
    out = io.StringIO()
    call_command("replay_reset", no_input=True, stdout=out)
    assert list(redis_client.scan_iter(match=f"{settings.REDIS_KEY_PREFIX}:*")) == []
    assert redis_client.exists(other_screeners_key())  # another prefix is another screener
    assert Candle1m.objects.count() == 0 and AlertHistory.objects.count() == 0
    assert AlertRule.objects.count() == rules > 0
    assert "replay state reset" in out.getvalue()
