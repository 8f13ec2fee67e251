from __future__ import annotations

import numpy as np
import pytest

from apps.collector.candles import FIELD_INDEX, MINUTE_MS, Candle
from apps.collector.store import active_symbols_set, candles_matrix, candles_store
from screener_project.kernel.redis_keys import candles_ring_key

T0 = 1_746_814_680_000  # 2025-05-09 18:18 UTC, a minute boundary


def candle(symbol: str, minute: int, close: float = 100.0) -> Candle:
    return Candle(symbol, T0 + minute * MINUTE_MS, 100.0, max(101.0, close), 99.0, close, 2.0, 200.0 + minute)


def test_storing_a_candle_twice_is_a_duplicate(redis_client):
    first = candles_store(redis_client, [candle("BTCUSDT", 0)])
    second = candles_store(redis_client, [candle("BTCUSDT", 0)])
    assert len(first.stored) == 1
    assert second.stored == [] and second.duplicates == 1


def test_out_of_order_candles_land_in_their_minute(redis_client):
    candles_store(redis_client, [candle("BTCUSDT", 2, 102.0), candle("BTCUSDT", 0, 100.0)])
    matrix = candles_matrix(redis_client, ["BTCUSDT"], end_minute_ms=T0 + 2 * MINUTE_MS, length=3)
    closes = matrix[FIELD_INDEX["close"], 0]
    assert closes[0] == 100.0 and closes[2] == 102.0
    assert np.isnan(closes[1])  # minute 1 was never received


def test_a_candle_older_than_the_ring_does_not_overwrite_newer_data(redis_client, settings):
    ring = settings.CANDLE_RING_MINUTES
    candles_store(redis_client, [candle("BTCUSDT", ring, 150.0)])
    result = candles_store(redis_client, [candle("BTCUSDT", 0, 100.0)])  # same slot, older minute
    assert result.too_old == 1
    matrix = candles_matrix(redis_client, ["BTCUSDT"], end_minute_ms=T0 + ring * MINUTE_MS, length=1)
    assert matrix[FIELD_INDEX["close"], 0, 0] == 150.0


def test_minute_completes_when_every_active_symbol_has_closed_it(redis_client):
    active_symbols_set(redis_client, ["AUSDT", "BUSDT"])
    assert candles_store(redis_client, [candle("AUSDT", 5)]).completed_minutes == []
    assert candles_store(redis_client, [candle("BUSDT", 5)]).completed_minutes == [T0 + 5 * MINUTE_MS]
    # A duplicate of the last candle does not complete the minute a second time.
    assert candles_store(redis_client, [candle("BUSDT", 5)]).completed_minutes == []


def test_history_written_without_marking_never_completes_a_minute(redis_client):
    active_symbols_set(redis_client, ["AUSDT"])
    assert candles_store(redis_client, [candle("AUSDT", 1)], mark_closed=False).completed_minutes == []


@pytest.mark.parametrize("length", [1, 5, 1440])
def test_matrix_is_fields_by_symbols_by_minutes(redis_client, length):
    candles_store(redis_client, [candle("AUSDT", m) for m in range(length)])
    matrix = candles_matrix(
        redis_client, ["AUSDT", "MISSINGUSDT"], end_minute_ms=T0 + (length - 1) * MINUTE_MS, length=length
    )
    assert matrix.shape == (10, 2, length)
    assert matrix[FIELD_INDEX["open_time"], 0, -1] == T0 + (length - 1) * MINUTE_MS
    assert np.isnan(matrix[:, 1]).all()
    assert matrix[FIELD_INDEX["close"]].flags.c_contiguous


def test_the_ring_is_allocated_once_at_its_full_size(redis_client, settings):
    from apps.collector.store import ROW_BYTES

    candles_store(redis_client, [candle("BTCUSDT", m) for m in range(0, settings.CANDLE_RING_MINUTES, 7)])
    ring_bytes = settings.CANDLE_RING_MINUTES * ROW_BYTES
    assert redis_client.strlen(candles_ring_key("BTCUSDT")) == ring_bytes
    # One allocation of the ring's size class, not the ~2x of a string grown piece by piece.
    assert redis_client.memory_usage(candles_ring_key("BTCUSDT")) < 1.2 * ring_bytes
    print(f"ring bytes in Redis per symbol: {redis_client.memory_usage(candles_ring_key('BTCUSDT'))}")
