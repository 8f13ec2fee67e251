"""The minute tick's bookkeeping on the real Redis: one start per minute, grace deadlines, in-order shard minutes."""

from __future__ import annotations

import pytest

from apps.alerts import tick
from apps.collector.candles import MINUTE_MS, Candle
from apps.collector.store import active_symbols_set, candles_store
from screener_project.kernel.redis_keys import collector_clock_key, collector_warming_up_key

T = 1_746_900_000_000 - 1_746_900_000_000 % MINUTE_MS


def candle(symbol: str, minute_ms: int) -> Candle:
    return Candle(symbol, minute_ms, 10.0, 11.0, 9.0, 10.5, 1.0, 10.0)


@pytest.fixture
def enqueued():
    calls: list[tuple] = []
    return calls


def test_a_minute_is_fanned_out_once_to_each_non_empty_shard(redis_client, settings, enqueued):
    settings.SHARD_COUNT = 3
    active_symbols_set(redis_client, ["AUSDT", "BUSDT", "CUSDT", "DUSDT", "EUSDT"])
    fanned = tick.tick_start(redis_client, minute_ms=T, enqueue_shard=lambda *a: enqueued.append(a))
    again = tick.tick_start(redis_client, minute_ms=T, enqueue_shard=lambda *a: enqueued.append(a))
    assert fanned == len(enqueued) and again == 0
    shards = [call[1] for call in enqueued]
    assert len(shards) == len(set(shards))
    assert sorted(s for call in enqueued for s in call[2]) == ["AUSDT", "BUSDT", "CUSDT", "DUSDT", "EUSDT"]


def test_a_minute_becomes_due_only_after_its_grace_deadline(redis_client, settings):
    settings.TICK_GRACE_SECONDS = 5
    active_symbols_set(redis_client, ["AUSDT", "BUSDT"])
    candles_store(redis_client, [candle("AUSDT", T)])  # BUSDT never closes minute T
    redis_client.set(collector_clock_key(), T + MINUTE_MS + 4_999)
    assert tick.minutes_due(redis_client) == []
    redis_client.set(collector_clock_key(), T + MINUTE_MS + 5_000)
    assert tick.minutes_due(redis_client) == [T]


def test_a_started_or_empty_minute_is_never_due(redis_client):
    active_symbols_set(redis_client, ["AUSDT"])
    candles_store(redis_client, [candle("AUSDT", T)])
    redis_client.set(collector_clock_key(), T + 10 * MINUTE_MS)
    assert tick.minutes_due(redis_client) == [T]  # minutes after T have no candle at all
    assert tick.tick_claim(redis_client, minute_ms=T)
    assert tick.minutes_due(redis_client) == []


@pytest.mark.parametrize(
    ("last_done", "minute", "expected"),
    [
        (None, T, [T]),
        (T, T, []),
        (T + MINUTE_MS, T, []),
        (T - 3 * MINUTE_MS, T, [T - 2 * MINUTE_MS, T - MINUTE_MS, T]),
        (T - 1000 * MINUTE_MS, T, [T]),
    ],
)
def test_a_shard_catches_up_missed_minutes_in_order_and_never_repeats_one(last_done, minute, expected):
    assert tick.shard_minutes_pending(last_done, minute) == expected


def test_no_minute_is_due_while_a_collector_is_warming_up(redis_client):
    active_symbols_set(redis_client, ["AUSDT"])
    candles_store(redis_client, [candle("AUSDT", T)])
    redis_client.set(collector_clock_key(), T + 10 * MINUTE_MS)
    redis_client.set(collector_warming_up_key("0"), 1)
    assert tick.minutes_due(redis_client) == []
    redis_client.delete(collector_warming_up_key("0"))
    assert tick.minutes_due(redis_client) == [T]


def test_a_shard_without_history_starts_at_the_first_live_closed_minute(redis_client):
    active_symbols_set(redis_client, ["AUSDT"])
    candles_store(redis_client, [candle("AUSDT", T - 5 * MINUTE_MS)], mark_closed=False)  # warm-up history
    candles_store(redis_client, [candle("AUSDT", T + m * MINUTE_MS) for m in (-4, -2, -1, 0)])  # -3 never closed
    assert tick.shard_first_minute(redis_client, minute_ms=T) == T - 2 * MINUTE_MS
