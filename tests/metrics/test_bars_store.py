"""Bar history in Redis: exact round trip of real prices, idempotence by open time, bounded size."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from apps.collector.bars_store import bars_bytes, bars_matrices, bars_of_symbol, bars_seed, bars_write
from apps.collector.candles import FIELD_INDEX, FIELDS, MINUTE_MS, Candle, data_files, read_csv_candles
from screener_project.kernel.timeframes import BAR_INTERVALS

from .conftest import as_candles


def resampled(frame: pd.DataFrame, minutes: int) -> pd.DataFrame:
    """Clock-aligned bars aggregated with pandas, one row per bar, open_time in ms."""
    indexed = frame.set_index(pd.to_datetime(frame["open_time"], unit="ms", utc=True))
    agg = (
        indexed.resample(f"{minutes}min", label="left", closed="left")
        .agg(
            {
                "open": "first",
                "high": "max",
                "low": "min",
                "close": "last",
                "volume": "sum",
                "quote_volume": "sum",
                "trades": "sum",
                "taker_buy_volume": "sum",
                "taker_buy_quote_volume": "sum",
            }
        )
        .dropna()
    )
    agg["open_time"] = agg.index.as_unit("ms").asi8
    return agg.reset_index(drop=True)


@pytest.fixture(scope="module")
def btc(bundled_data_dir) -> pd.DataFrame:
    return read_csv_candles(data_files(bundled_data_dir)["BTCUSDT"])


@pytest.mark.parametrize("interval", list(BAR_INTERVALS))
def test_seeded_bars_read_back_with_exact_prices(redis_client, btc, interval):
    bars = resampled(btc, BAR_INTERVALS[interval]).tail(150)
    bars_seed(redis_client, symbol="BTCUSDT", interval=interval, candles=as_candles("BTCUSDT", bars))
    stored = bars_of_symbol(redis_client, symbol="BTCUSDT", interval=interval)
    assert len(stored) == len(bars)
    for name in ("open_time", "open", "high", "low", "close", "trades"):
        np.testing.assert_array_equal(stored[:, FIELD_INDEX[name]], bars[name].to_numpy(dtype=float), err_msg=name)
    for name in ("volume", "quote_volume"):
        np.testing.assert_allclose(stored[:, FIELD_INDEX[name]], bars[name].to_numpy(dtype=float), rtol=1e-7)


def test_seeding_twice_and_older_bars_change_nothing(redis_client, btc, settings):
    settings.INDICATOR_BARS = 10
    bars = resampled(btc, 60)
    newest = as_candles("BTCUSDT", bars.tail(10))
    bars_seed(redis_client, symbol="BTCUSDT", interval="1h", candles=newest)
    before = redis_client.get(f"{settings.REDIS_KEY_PREFIX}:bars:BTCUSDT")
    bars_seed(redis_client, symbol="BTCUSDT", interval="1h", candles=newest)
    # Ten hours older: the same slots, older open times, so nothing may be overwritten.
    bars_seed(redis_client, symbol="BTCUSDT", interval="1h", candles=as_candles("BTCUSDT", bars.iloc[-20:-10]))
    assert redis_client.get(f"{settings.REDIS_KEY_PREFIX}:bars:BTCUSDT") == before
    assert len(bars_of_symbol(redis_client, symbol="BTCUSDT", interval="1h")) == 10


def test_a_bar_is_replaced_by_its_newer_state(redis_client):
    t = 1_746_835_200_000  # a 4h boundary
    forming = Candle("XUSDT", t, 10.0, 10.5, 9.9, 10.2, 1.0, 10.0)
    done = Candle("XUSDT", t, 10.0, 10.9, 9.5, 10.7, 3.0, 30.0)
    bars_seed(redis_client, symbol="XUSDT", interval="4h", candles=[forming])
    bars_seed(redis_client, symbol="XUSDT", interval="4h", candles=[done])
    (row,) = bars_of_symbol(redis_client, symbol="XUSDT", interval="4h")
    assert row[FIELD_INDEX["high"]] == 10.9 and row[FIELD_INDEX["close"]] == 10.7


def test_matrices_place_bars_by_open_time_with_nan_gaps(redis_client):
    t = 1_746_835_200_000
    step = 15 * MINUTE_MS
    bars_seed(
        redis_client,
        symbol="AUSDT",
        interval="15m",
        candles=[Candle("AUSDT", t + i * step, 1.0 + i, 2.0 + i, 0.5, 1.5 + i, 1.0, 2.0) for i in (0, 1, 3)],
    )
    out = bars_matrices(redis_client, ["AUSDT", "NONEUSDT"], last_open_ms={"15m": t + 3 * step}, count=5)
    block = out["15m"]
    assert block.shape == (len(FIELDS), 2, 5)
    closes = block[FIELD_INDEX["close"]]
    assert np.isnan(closes[0, 0]) and closes[0, 1] == 1.5 and closes[0, 2] == 2.5
    assert np.isnan(closes[0, 3]) and closes[0, 4] == 4.5
    assert np.isnan(closes[1]).all()


def test_bars_written_from_a_block_skip_missing_rows(redis_client):
    block = np.full((len(FIELDS), 2, 2), np.nan)
    block[:, 0, 1] = [1_746_835_200_000, 1, 2, 0.5, 1.5, 1, 2, 3, 0.5, 1]
    assert bars_write(redis_client, interval="1d", symbols=["AUSDT", "BUSDT"], bars=block) == 1


def test_full_history_of_a_symbol_stays_compact(redis_client, btc, settings):
    for interval, minutes in BAR_INTERVALS.items():
        bars = resampled(btc, minutes)
        history = pd.concat([bars] * (settings.INDICATOR_BARS // len(bars) + 1)).head(settings.INDICATOR_BARS)
        history = history.assign(open_time=bars["open_time"].iloc[0] + np.arange(len(history)) * minutes * MINUTE_MS)
        bars_seed(redis_client, symbol="BTCUSDT", interval=interval, candles=as_candles("BTCUSDT", history))
    used = bars_bytes(redis_client, symbol="BTCUSDT")
    print(f"bar history bytes per symbol: {used}")
    assert used < 42_000


@pytest.mark.parametrize(
    "wanted", [("1h",), ("15m", "4h", "1d"), ("4h", "8h"), ("1d",), ("15m", "1h", "4h", "8h", "1d")]
)
def test_any_subset_of_intervals_reads_what_reading_them_all_gives(redis_client, btc, wanted):
    """Reading some intervals (the rules' timeframes, then the rest) fetches only their sections, same values."""
    last_open = {}
    for interval, minutes in BAR_INTERVALS.items():
        bars = resampled(btc, minutes)
        bars_seed(redis_client, symbol="BTCUSDT", interval=interval, candles=as_candles("BTCUSDT", bars))
        last_open[interval] = int(bars["open_time"].iloc[-2])
    symbols = ["BTCUSDT", "NONEUSDT"]
    everything = bars_matrices(redis_client, symbols, last_open_ms=last_open, count=8)
    subset = bars_matrices(redis_client, symbols, last_open_ms={i: last_open[i] for i in wanted}, count=8)
    closes = bars_matrices(
        redis_client, symbols, last_open_ms={i: last_open[i] for i in wanted}, count=8, close_only=True
    )
    assert set(subset) == set(closes) == set(wanted)
    for interval in wanted:
        assert np.array_equal(subset[interval], everything[interval], equal_nan=True), interval
        assert np.array_equal(closes[interval], everything[interval][FIELD_INDEX["close"]], equal_nan=True)
        assert not np.isnan(closes[interval][0]).any() and np.isnan(closes[interval][1]).all()
