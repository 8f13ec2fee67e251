"""Bars whose ticks were missed reach the bar store from the 1m block when the indicators stage resumes."""

from __future__ import annotations

import numpy as np
import pytest

from apps.collector.bars_store import bars_of_symbol
from apps.collector.candles import FIELD_INDEX, FIELDS, MINUTE_MS
from apps.metrics.bars_repair import BARS_REPAIRED
from apps.metrics.services import shard_indicators_run
from screener_project.kernel.redis_keys import bars_rolled_key
from screener_project.kernel.timeframes import BAR_INTERVALS

from .conftest import SYMBOLS
from .test_bars import minute_of, resample, seed_history
from .test_services import load_ring

pytestmark = pytest.mark.django_db

PRICES = [FIELD_INDEX[name] for name in ("open_time", "open", "high", "low", "close")]
VOLUMES = [FIELD_INDEX[name] for name in ("volume", "quote_volume", "trades", "taker_buy_volume")]
RESUMED_ROW = 9000
OUTAGE_MINUTES = 200  # longer than REPAIR_MINUTES and MAX_CATCH_UP_MINUTES: no tick would fill it


def stored_opens(client, symbol: str, interval: str) -> set[int]:
    return {int(row[0]) for row in bars_of_symbol(client, symbol=symbol, interval=interval)}


def closed_between(frame, interval: str, after_ms: int, until_ms: int):
    """The bars of `interval` whose last minute is after after_ms and that closed by until_ms (pandas resample)."""
    step = BAR_INTERVALS[interval] * MINUTE_MS
    bars = resample(frame[frame["open_time"] <= until_ms], BAR_INTERVALS[interval])
    last_minute = bars["open_time"] + step - MINUTE_MS
    return bars[(last_minute > after_ms) & (last_minute < until_ms)]


@pytest.fixture
def outage(redis_client, frames):
    """A stage at minute t0, then no stage for OUTAGE_MINUTES while the collector kept filling the ring."""
    before_ms = minute_of(frames, RESUMED_ROW - OUTAGE_MINUTES)
    load_ring(redis_client, frames, RESUMED_ROW - OUTAGE_MINUTES)
    seed_history(redis_client, frames, before_ms)  # the warm-up
    shard_indicators_run(redis_client, minute_ms=before_ms, symbols=SYMBOLS)
    load_ring(redis_client, frames, RESUMED_ROW)
    return before_ms, minute_of(frames, RESUMED_ROW)


def test_the_resumed_stage_writes_every_bar_that_closed_during_the_outage(redis_client, frames, outage):
    before_ms, resumed_ms = outage
    for symbol in SYMBOLS:  # the outage left holes (the bar forming at t0 is there, but incomplete)
        for interval in ("15m", "1h"):
            missed = closed_between(frames[symbol], interval, before_ms, resumed_ms)
            opened_later = missed[missed["open_time"] > before_ms]
            assert len(opened_later) > 0
            assert not set(opened_later["open_time"]) & stored_opens(redis_client, symbol, interval)
    repaired_before = BARS_REPAIRED._value.get()

    shard_indicators_run(redis_client, minute_ms=resumed_ms, symbols=SYMBOLS)

    for symbol in SYMBOLS:
        for interval in ("15m", "1h", "4h"):
            missed = closed_between(frames[symbol], interval, before_ms, resumed_ms)
            stored = {int(row[0]): row for row in bars_of_symbol(redis_client, symbol=symbol, interval=interval)}
            for bar in missed.itertuples(index=False):
                assert bar.open_time in stored, (symbol, interval, bar.open_time)
                expected = np.array([getattr(bar, name) for name in FIELDS], dtype=float)
                # The store keeps prices on their decimal grid and volumes as float32.
                np.testing.assert_allclose(stored[bar.open_time][PRICES], expected[PRICES], rtol=1e-9)
                np.testing.assert_allclose(stored[bar.open_time][VOLUMES], expected[VOLUMES], rtol=1e-6)
    assert BARS_REPAIRED._value.get() > repaired_before


def test_a_symbol_never_rolled_before_is_left_as_the_warm_up_seeded_it(redis_client, frames, outage):
    before_ms, resumed_ms = outage
    redis_client.delete(bars_rolled_key())  # as after a warm-up: no stage has rolled these symbols yet
    shard_indicators_run(redis_client, minute_ms=resumed_ms, symbols=SYMBOLS)
    symbol = SYMBOLS[0]
    missed = closed_between(frames[symbol], "1h", before_ms, resumed_ms - 11 * MINUTE_MS)
    opened_later = set(missed["open_time"][missed["open_time"] > before_ms])
    assert opened_later and not opened_later & stored_opens(redis_client, symbol, "1h")
    assert float(redis_client.hget(bars_rolled_key(), symbol)) == resumed_ms


def test_an_older_minute_run_late_does_not_move_the_mark_back(redis_client, frames, outage):
    before_ms, resumed_ms = outage
    shard_indicators_run(redis_client, minute_ms=resumed_ms, symbols=SYMBOLS)
    shard_indicators_run(redis_client, minute_ms=resumed_ms - MINUTE_MS, symbols=SYMBOLS)  # a queued catch-up
    assert {float(v) for v in redis_client.hmget(bars_rolled_key(), SYMBOLS)} == {resumed_ms}
