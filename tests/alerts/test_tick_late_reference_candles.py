"""A late candle of a reference symbol (`BTCUSDT.close` in a rule): every symbol's minute is evaluated again, since
every symbol's rules read it. Real Redis and PostgreSQL."""

from __future__ import annotations

import pytest

from apps.alerts import tick
from apps.alerts.models import AlertHistory, AlertRule
from apps.collector.candles import MINUTE_MS, Candle
from apps.collector.store import active_symbols_set, candles_store
from screener_project.kernel.redis_keys import key

pytestmark = pytest.mark.django_db

T = 1_800_000_000_000 // MINUTE_MS * MINUTE_MS
SYMBOLS = ["AUSDT", "BTCUSDT", "CUSDT"]


def candle(symbol: str, minute_ms: int) -> Candle:
    return Candle(symbol, minute_ms, 10.0, 11.0, 9.0, 10.5, 1.0, 10.0, 3)


@pytest.fixture
def history(redis_client, settings):
    """Only a rule reading BTCUSDT's close; five minutes of history; minute T closed on time by all but BTCUSDT."""
    settings.SHARD_COUNT = 1
    AlertRule.objects.update(enabled=False)
    AlertRule.objects.create(
        rule_type="btc_there", name="BTC there", conditions=["close > 0", "BTCUSDT.close > 0"], cooldown_minutes=1
    )
    active_symbols_set(redis_client, SYMBOLS)
    candles_store(redis_client, [candle(s, T - m * MINUTE_MS) for s in SYMBOLS for m in range(1, 6)], mark_closed=False)
    candles_store(redis_client, [candle(s, T) for s in SYMBOLS if s != "BTCUSDT"])
    redis_client.set(key("shard", 0, "last_minute"), T - MINUTE_MS)


def fired_at(minute_ms: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for alert in AlertHistory.objects.filter(alert_type="btc_there", triggered_at__isnull=False):
        if alert.triggered_at.timestamp() * 1000 == minute_ms + MINUTE_MS:
            counts[alert.symbol] = counts.get(alert.symbol, 0) + 1
    return counts


def test_a_late_reference_candle_has_every_symbols_minute_evaluated_again_once(redis_client, history):
    tick.shard_tick_run(redis_client, minute_ms=T, shard=0, symbols=SYMBOLS, received_ms=T + MINUTE_MS)
    assert fired_at(T) == {}  # BTCUSDT's close was not there: no symbol's rule could pass

    candles_store(redis_client, [candle("BTCUSDT", T)])  # the REST repair of its dropped closing frame
    evaluated = tick.late_candles_evaluate(redis_client, minute_ms=T, symbols=["BTCUSDT"], received_ms=T + MINUTE_MS)
    assert evaluated == {0: SYMBOLS}
    assert fired_at(T) == dict.fromkeys(SYMBOLS, 1)

    tick.late_candles_evaluate(redis_client, minute_ms=T, symbols=["BTCUSDT"], received_ms=T + MINUTE_MS)
    assert fired_at(T) == dict.fromkeys(SYMBOLS, 1)  # once


def test_a_late_candle_of_another_symbol_is_evaluated_alone(redis_client, history):
    candles_store(redis_client, [candle("BTCUSDT", T)])
    tick.shard_tick_run(redis_client, minute_ms=T, shard=0, symbols=SYMBOLS, received_ms=T + MINUTE_MS)
    evaluated = tick.late_candles_evaluate(redis_client, minute_ms=T, symbols=["AUSDT"], received_ms=T + MINUTE_MS)
    assert evaluated == {0: ["AUSDT"]}
