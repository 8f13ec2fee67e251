"""Clock-aligned bars against bars aggregated independently with pandas resample, on the bundled real data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from apps.collector.bars_store import bars_of_symbol, bars_roll, bars_seed, bars_write
from apps.collector.candles import FIELD_INDEX, FIELDS, MINUTE_MS
from apps.metrics.bars import bars_from_block, bars_shard, bars_to_roll, closes_shard
from screener_project.kernel.timeframes import BAR_INTERVALS, SCREENER_TIMEFRAMES

from .conftest import SYMBOLS, as_candles

COLUMNS = [
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "trades",
    "taker_buy_volume",
    "taker_buy_quote_volume",
]
AGG = {
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


def resample(frame: pd.DataFrame, minutes: int) -> pd.DataFrame:
    """Bars of `minutes` on UTC boundaries; a bar without any candle is absent."""
    indexed = frame.set_index(pd.to_datetime(frame["open_time"], unit="ms", utc=True))
    bars = indexed[COLUMNS].resample(f"{minutes}min", label="left", closed="left").agg(AGG)
    bars = bars[indexed["close"].resample(f"{minutes}min", label="left", closed="left").count() > 0]
    bars.insert(0, "open_time", bars.index.as_unit("ms").asi8)
    return bars.reset_index(drop=True)


def block_ending_at(frames: dict[str, pd.DataFrame], end_ms: int, length: int = 1440) -> np.ndarray:
    block = np.full((len(FIELDS), len(frames), length), np.nan)
    start_ms = end_ms - (length - 1) * MINUTE_MS
    for s, frame in enumerate(frames.values()):
        part = frame[(frame["open_time"] >= start_ms) & (frame["open_time"] <= end_ms)]
        columns = ((part["open_time"].to_numpy() - start_ms) // MINUTE_MS).astype(int)
        for f, name in enumerate(FIELDS):
            block[f, s, columns] = part[name].to_numpy(dtype=float)
    return block


def seed_history(client, frames: dict[str, pd.DataFrame], end_ms: int) -> None:
    """What the warm-up puts in the store: the complete bars of every interval before end_ms (from REST klines)."""
    for symbol, frame in frames.items():
        for interval, minutes in BAR_INTERVALS.items():
            bars = resample(frame[frame["open_time"] <= end_ms], minutes)
            bars = bars[bars["open_time"] + minutes * MINUTE_MS <= end_ms + MINUTE_MS]
            bars_seed(
                client,
                symbol=symbol,
                interval=interval,
                candles=as_candles(symbol, bars),
            )


def expected_bars(frame: pd.DataFrame, end_ms: int, minutes: int, count: int) -> np.ndarray:
    """(len(FIELDS), count) of the last `count` bar slots ending with the forming one, NaN where no bar."""
    bars = resample(frame[frame["open_time"] <= end_ms], minutes).set_index("open_time")
    step = minutes * MINUTE_MS
    opens = end_ms // step * step + step * (np.arange(count) - count + 1)
    out = np.full((len(FIELDS), count), np.nan)
    present = np.isin(opens, bars.index)
    out[FIELD_INDEX["open_time"], present] = opens[present]
    for name in COLUMNS:
        out[FIELD_INDEX[name], present] = bars.loc[opens[present], name].to_numpy(dtype=float)
    return out


def minute_of(frames, row: int) -> int:
    return int(next(iter(frames.values()))["open_time"].iloc[row])


# Rows: the end of the data, mid-data, the last minute of a UTC day (every bar completes) and the first of the next.
END_ROWS = [11519, 5000, 1781, 1782]


@pytest.mark.parametrize("row", END_ROWS)
def test_bars_of_every_timeframe_match_pandas_resample(redis_client, frames, row, settings):
    end_ms = minute_of(frames, row)
    seed_history(redis_client, frames, end_ms)
    count = settings.INDICATOR_BARS
    bars = bars_shard(redis_client, block_ending_at(frames, end_ms), SYMBOLS, end_minute_ms=end_ms, count=count)
    assert set(bars) == set(SCREENER_TIMEFRAMES)
    for timeframe, minutes in SCREENER_TIMEFRAMES.items():
        assert bars[timeframe].shape == (len(FIELDS), len(SYMBOLS), count)
        for s, frame in enumerate(frames.values()):
            expected = expected_bars(frame, end_ms, minutes, count)
            got = bars[timeframe][:, s]
            assert np.array_equal(np.isnan(got[FIELD_INDEX["close"]]), np.isnan(expected[FIELD_INDEX["close"]]))
            for name in ("open_time", "open", "high", "low", "close"):
                np.testing.assert_array_equal(
                    got[FIELD_INDEX[name]], expected[FIELD_INDEX[name]], err_msg=f"{timeframe} {name}"
                )
            # Sums: block bars are float64 sums in another order; stored bars keep float32 volumes.
            for name in ("volume", "quote_volume", "trades", "taker_buy_quote_volume"):
                np.testing.assert_allclose(
                    got[FIELD_INDEX[name]], expected[FIELD_INDEX[name]], rtol=1e-6, err_msg=f"{timeframe} {name}"
                )


def test_the_day_bar_midday_is_the_forming_bar_of_the_candles_so_far(frames):
    end_ms = minute_of(frames, 1782 + 12 * 60 + 7)  # 12:07 UTC
    from_block = bars_from_block(block_ending_at(frames, end_ms), end_minute_ms=end_ms)
    day, first_ms = from_block["1d"]
    assert day.shape[2] == 1 and first_ms == end_ms - (12 * 60 + 7) * MINUTE_MS
    btc = frames["BTCUSDT"]
    today = btc[(btc["open_time"] >= first_ms) & (btc["open_time"] <= end_ms)]
    assert day[FIELD_INDEX["open"], 0, 0] == today["open"].iloc[0]
    assert day[FIELD_INDEX["close"], 0, 0] == today["close"].iloc[-1]
    assert day[FIELD_INDEX["high"], 0, 0] == today["high"].max()


def test_missing_minutes_are_left_out_of_their_bars(redis_client, frames):
    end_ms = minute_of(frames, 6000)
    gappy = {
        symbol: frame.drop(index=range(5990, 5996)).drop(index=range(5200, 5215)) for symbol, frame in frames.items()
    }
    bars = bars_shard(redis_client, block_ending_at(gappy, end_ms), SYMBOLS, end_minute_ms=end_ms, count=20)
    for timeframe in ("5m", "15m", "1h"):
        for s, frame in enumerate(gappy.values()):
            expected = expected_bars(frame, end_ms, SCREENER_TIMEFRAMES[timeframe], 20)
            got = bars[timeframe][:, s]
            for name in ("open_time", "open", "high", "low", "close"):
                np.testing.assert_array_equal(
                    got[FIELD_INDEX[name]], expected[FIELD_INDEX[name]], err_msg=f"{timeframe} {name}"
                )
            np.testing.assert_allclose(got[FIELD_INDEX["volume"]], expected[FIELD_INDEX["volume"]], rtol=1e-9)


def test_rolled_bars_complete_the_history_a_later_tick_reads(redis_client, frames):
    """Ticks roll bars forward; a tick long after the block has moved on still sees them, from the store."""
    start = minute_of(frames, 3000)
    symbols = ["BTCUSDT"]
    btc = {"BTCUSDT": frames["BTCUSDT"]}
    for minute in range(0, 8 * 60, 1):  # eight hours of ticks, every minute
        end_ms = start + minute * MINUTE_MS
        from_block = bars_from_block(block_ending_at(btc, end_ms), end_minute_ms=end_ms)
        for interval, bars in bars_to_roll(from_block, end_minute_ms=end_ms).items():
            bars_write(redis_client, interval=interval, symbols=symbols, bars=bars)
    end_ms = start + 8 * 60 * MINUTE_MS + 1440 * MINUTE_MS  # a day later: none of those hours is in the block
    stored = bars_of_symbol(redis_client, symbol="BTCUSDT", interval="1h")
    expected = resample(frames["BTCUSDT"], 60).set_index("open_time")
    complete = stored[stored[:, 0] + 60 * MINUTE_MS <= start + 8 * 60 * MINUTE_MS]
    assert len(complete) >= 7
    np.testing.assert_array_equal(
        complete[:, FIELD_INDEX["close"]], expected.loc[complete[:, 0].astype(np.int64), "close"].to_numpy()
    )
    np.testing.assert_array_equal(
        complete[:, FIELD_INDEX["high"]], expected.loc[complete[:, 0].astype(np.int64), "high"].to_numpy()
    )
    assert end_ms > complete[-1, 0]


@pytest.mark.parametrize("row", [11519, 1782])
def test_closes_shard_is_the_close_row_of_bars_shard(redis_client, frames, row, settings):
    end_ms = minute_of(frames, row)
    seed_history(redis_client, frames, end_ms)
    block = block_ending_at(frames, end_ms)
    from_block = bars_from_block(block, end_minute_ms=end_ms)
    count = settings.INDICATOR_BARS
    bars = bars_shard(redis_client, block, SYMBOLS, end_minute_ms=end_ms, count=count, from_block=from_block)
    closes = closes_shard(redis_client, SYMBOLS, from_block=from_block, count=count)
    for timeframe in SCREENER_TIMEFRAMES:
        np.testing.assert_array_equal(closes[timeframe], bars[timeframe][FIELD_INDEX["close"]], err_msg=timeframe)


def test_a_missed_tick_at_the_end_of_a_bar_is_repaired_by_the_next_one(redis_client, frames):
    btc = {"BTCUSDT": frames["BTCUSDT"]}
    hour_open = minute_of(frames, 3000) // (60 * MINUTE_MS) * 60 * MINUTE_MS + 60 * MINUTE_MS
    for end_ms in (hour_open + 50 * MINUTE_MS, hour_open + 61 * MINUTE_MS):  # minutes 51..60 of the hour missed
        from_block = bars_from_block(block_ending_at(btc, end_ms), end_minute_ms=end_ms)
        bars_roll(redis_client, symbols=["BTCUSDT"], bars=bars_to_roll(from_block, end_minute_ms=end_ms))
    stored = {int(row[0]): row for row in bars_of_symbol(redis_client, symbol="BTCUSDT", interval="1h")}
    expected = resample(frames["BTCUSDT"], 60).set_index("open_time").loc[hour_open]
    assert stored[hour_open][FIELD_INDEX["close"]] == expected["close"]
    assert stored[hour_open][FIELD_INDEX["high"]] == expected["high"]
    assert hour_open + 60 * MINUTE_MS in stored  # and the new forming bar


def test_long_after_a_bar_closed_only_the_forming_bar_is_written(frames):
    end_ms = minute_of(frames, 5000) // (60 * MINUTE_MS) * 60 * MINUTE_MS + 30 * MINUTE_MS
    from_block = bars_from_block(block_ending_at(frames, end_ms), end_minute_ms=end_ms)
    rolled = bars_to_roll(from_block, end_minute_ms=end_ms)
    assert set(rolled) == {"15m", "1h", "4h", "8h", "1d"}
    assert rolled["1h"].shape[2] == 1 and rolled["1h"][0, 0, 0] == end_ms - 30 * MINUTE_MS
    assert rolled["15m"].shape[2] == 2  # the 15m bar of :15-:29 closed a minute ago: re-written as well


@pytest.mark.parametrize("minutes", [1440, 1437])  # a whole number of 5m bars, and a partial one at the end
def test_the_compiled_minute_level_equals_the_general_reduction(frames, minutes):
    """1m -> 5m runs compiled; it must equal _reduce to the last bit, with and without missing minutes."""
    from apps.metrics.bars import _reduce, _reduce_groups

    block = block_ending_at(frames, minute_of(frames, 9000), minutes)
    holes = block.copy()
    rng = np.random.default_rng(7)
    holes[:, rng.random(holes.shape[1:]) < 0.2] = np.nan  # missing minutes: every field NaN, as the ring gives them
    holes[:, 1, 5:10] = np.nan  # a whole bar missing
    for fine in (block, holes):
        f, n, m = fine.shape
        full = m // 5
        parts = [_reduce(fine[:, :, : full * 5].reshape(f, n, full, 5))]
        if m % 5:
            parts.append(_reduce(fine[:, :, full * 5 :][:, :, None, :]))
        expected = np.concatenate(parts, axis=2)
        got = np.empty((f, n, -(-m // 5)))
        _reduce_groups(fine, 5, got)
        time_row = FIELD_INDEX["open_time"]
        keep = [i for i in range(f) if i != time_row]
        assert np.array_equal(got[keep], expected[keep], equal_nan=True)
