"""The shard's 1m block read from the ring equals the candles stored, whether or not the window wraps the ring."""

from __future__ import annotations

import numpy as np
import pytest

from apps.collector.candles import MINUTE_MS, Candle
from apps.collector.store import candles_matrix, candles_store


@pytest.mark.parametrize("length", [5, 60, 1440])
def test_block_matches_the_stored_candles_across_the_ring_seam(redis_client, settings, length):
    ring = settings.CANDLE_RING_MINUTES
    symbols = [f"S{i}USDT" for i in range(11)]  # more than one assembly chunk
    start_minute = 29_000_000 - 29_000_000 % ring - 700  # the ring's seam falls inside the window
    stored = {}
    candles = []
    for s, symbol in enumerate(symbols):
        for m in range(1500):
            if (s + m) % 97 == 0:
                continue  # a missing minute here and there
            price = 100.0 + s + m / 1000
            candles.append(
                Candle(symbol, (start_minute + m) * MINUTE_MS, price, price + 1, price - 1, price, 1.0 + m, 2.0 + s, m)
            )
            stored[symbol, start_minute + m] = candles[-1].as_row()
    candles_store(redis_client, candles, mark_closed=False)
    for end_minute in (start_minute + 699, start_minute + 705, start_minute + 1499):
        block = candles_matrix(redis_client, symbols, end_minute_ms=end_minute * MINUTE_MS, length=length)
        for s, symbol in enumerate(symbols):
            for j, minute in enumerate(range(end_minute - length + 1, end_minute + 1)):
                expected = stored.get((symbol, minute))
                if expected is None or end_minute - minute >= ring:
                    assert np.isnan(block[:, s, j]).all()
                else:
                    np.testing.assert_array_equal(block[:, s, j], expected)
