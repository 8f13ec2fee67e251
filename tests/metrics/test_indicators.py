"""RSI, MACD and Bollinger Bands against the `ta` library on the same closes, for every timeframe of the real data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import ta

from apps.collector.candles import FIELD_INDEX
from apps.metrics.bars import bars_shard
from apps.metrics.indicators import INDICATOR_NAMES, bollinger_last, indicators_last, macd, rsi
from screener_project.kernel.timeframes import SCREENER_TIMEFRAMES

from .conftest import SYMBOLS
from .test_bars import block_ending_at, expected_bars, minute_of, seed_history

CLOSE = FIELD_INDEX["close"]


def ta_reference(closes: np.ndarray) -> dict[str, np.ndarray]:
    """ta 0.11 on a row's closes from its first known bar (the full series, NaN where ta gives NaN)."""
    first = int(np.argmax(~np.isnan(closes)))
    series = pd.Series(closes[first:])
    trend = ta.trend.MACD(series)
    bands = ta.volatility.BollingerBands(series)
    pad = np.full(first, np.nan)
    full = {
        "rsi_14": ta.momentum.RSIIndicator(series).rsi(),
        "macd": trend.macd(),
        "macd_signal": trend.macd_signal(),
        "macd_hist": trend.macd_diff(),
        "bb_upper": bands.bollinger_hband(),
        "bb_middle": bands.bollinger_mavg(),
        "bb_lower": bands.bollinger_lband(),
    }
    return {name: np.concatenate([pad, values.to_numpy()]) for name, values in full.items()}


def assert_close(got: np.ndarray, expected: np.ndarray, label: str) -> None:
    assert np.array_equal(np.isnan(got), np.isnan(expected)), label
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=0, err_msg=label)


@pytest.mark.parametrize("row", [11519, 6000, 1781])
def test_every_indicator_matches_ta_for_every_timeframe(redis_client, frames, settings, row):
    end_ms = minute_of(frames, row)
    seed_history(redis_client, frames, end_ms)
    count = settings.INDICATOR_BARS
    bars = bars_shard(redis_client, block_ending_at(frames, end_ms), SYMBOLS, end_minute_ms=end_ms, count=count)
    checked = 0
    for timeframe, minutes in SCREENER_TIMEFRAMES.items():
        closes = bars[timeframe][CLOSE]
        line, signal, hist = macd(closes)
        series = {"rsi_14": rsi(closes), "macd": line, "macd_signal": signal, "macd_hist": hist}
        last = indicators_last(closes)
        upper, middle, lower = bollinger_last(closes)
        for s, frame in enumerate(frames.values()):
            independent = expected_bars(frame, end_ms, minutes, count)[CLOSE]
            reference = ta_reference(independent)
            for name, values in series.items():
                assert_close(values[s], reference[name], f"{timeframe} {name} {s}")
            for name in last:
                assert_close(last[name][s : s + 1], reference[name][-1:], f"{timeframe} last {name} {s}")
            for name, value in (("bb_upper", upper), ("bb_middle", middle), ("bb_lower", lower)):
                assert_close(value[s : s + 1], reference[name][-1:], f"{timeframe} {name} {s}")
            checked += int(not np.isnan(reference["macd_signal"][-1]))
    assert checked >= 2 * len(SYMBOLS)  # at least 5m and 15m carry every value


def test_rows_with_missing_bars_match_ta_on_the_same_series(frames):
    closes = np.vstack([frame["close"].to_numpy()[-400:][::2] for frame in frames.values()])
    closes[0, :37] = np.nan  # a symbol listed recently
    closes[1, 120] = np.nan  # a bar that never arrived
    closes[2, -5] = np.nan  # ... near the end: BB has no value then
    line, signal, hist = macd(closes)
    got = {"rsi_14": rsi(closes), "macd": line, "macd_signal": signal, "macd_hist": hist}
    for s in range(len(closes)):
        reference = ta_reference(closes[s])
        for name, values in got.items():
            assert_close(values[s], reference[name], f"{name} {s}")
        for name, value in zip(("bb_upper", "bb_middle", "bb_lower"), bollinger_last(closes), strict=True):
            assert_close(value[s : s + 1], reference[name][-1:], f"{name} {s}")


def test_flat_prices_give_rsi_100_and_zero_width_bands():
    closes = np.full((2, 60), 0.1)
    closes[1] = np.linspace(1.0, 2.0, 60)
    out = indicators_last(closes)
    assert out["rsi_14"][0] == 100.0 and out["rsi_14"][1] == 100.0  # no down move at all
    assert out["bb_upper"][0] == out["bb_lower"][0] == out["bb_middle"][0]
    assert out["macd"][0] == 0.0 and out["macd_hist"][0] == 0.0


def test_too_short_a_history_has_no_values():
    closes = np.linspace(1.0, 2.0, 30)[None, :] * np.ones((1, 1))
    padded = np.concatenate([np.full((1, 170), np.nan), closes], axis=1)
    out = indicators_last(padded)
    assert not np.isnan(out["rsi_14"][0]) and not np.isnan(out["macd"][0]) and not np.isnan(out["bb_middle"][0])
    assert np.isnan(out["macd_signal"][0])  # needs 26 + 9 - 1 bars


def test_the_compiled_recursion_is_pandas_ewm_to_the_last_bit(frames):
    """Each row's average equals pandas' own ewm(adjust=False), bit for bit, for the coms the indicators use."""
    from apps.metrics.indicators import ewm_mean

    closes = np.stack([frames[symbol]["close"].to_numpy()[-300:] for symbol in SYMBOLS])
    closes[1, 100:140] = closes[1, 99]  # a flat stretch: pandas leaves the average alone when it equals the value
    for com, periods in ((13.0, 14), (5.5, 12), (12.5, 26), (4.0, 9)):
        got = ewm_mean(closes, com=com, min_periods=periods)
        last = ewm_mean(closes, com=com, min_periods=periods, last_only=True)
        for row, values in enumerate(closes):
            expected = pd.Series(values).ewm(com=com, min_periods=periods, adjust=False).mean().to_numpy()
            assert np.array_equal(got[row], expected, equal_nan=True), (com, row)
            assert last[row] == expected[-1]


@pytest.mark.parametrize("length", [14, 20, 26, 33, 34, 35, 200])
def test_the_one_pass_kernel_equals_the_general_path_to_the_last_bit(frames, length):
    """Shards without gaps take a fused compiled pass; it must give exactly what the general passes give."""
    from apps.metrics.indicators import _indicators_last_clean, _indicators_last_general

    closes = np.stack([frames[symbol]["close"].to_numpy()[-length - 500 : -500] for symbol in SYMBOLS])
    flat = closes.copy()
    flat[:, length // 2 :] = flat[:, [length // 2]]  # constant tails: the equal-value rule and RSI's zero averages
    for values in (closes, flat, np.concatenate([closes, flat])):
        fused, general = _indicators_last_clean(values), _indicators_last_general(values)
        for name in INDICATOR_NAMES:
            assert np.array_equal(fused[name], general[name], equal_nan=True), (length, name)


def test_rows_with_a_short_history_take_the_one_pass_kernel_bit_for_bit(frames):
    """Leading NaN (fewer than K bars) and rows shorter than the signal line's 34 bars: the compiled pass from each
    row's first bar gives exactly the general passes' values, and ta's."""
    from apps.metrics.indicators import _indicators_last_general

    base = np.stack([frames[symbol]["close"].to_numpy()[-700:-500] for symbol in SYMBOLS])
    rows = []
    for leading in (0, 1, 150, 165, 166, 167, 174, 175, 176, 180, 186, 187, 190, 199, 200):
        for row in base:
            shortened = row.copy()
            shortened[:leading] = np.nan
            rows.append(shortened)
    closes = np.stack(rows)
    got, general = indicators_last(closes), _indicators_last_general(closes)
    for name in INDICATOR_NAMES:
        assert np.array_equal(got[name], general[name], equal_nan=True), name
    for r in range(0, len(closes), 3):
        if np.isnan(closes[r]).all():
            assert all(np.isnan(got[name][r]) for name in INDICATOR_NAMES)
            continue
        reference = ta_reference(closes[r])
        for name in INDICATOR_NAMES:
            assert_close(got[name][r : r + 1], reference[name][-1:], f"{name} row {r}")


def test_a_row_with_a_gap_does_not_change_the_other_rows(frames):
    """A shard mixing full rows, short rows and a row with a missing bar: each row's values are those it has alone."""
    closes = np.stack([frames[symbol]["close"].to_numpy()[-260:-60] for symbol in SYMBOLS])
    closes[1, :120] = np.nan
    closes[2, 77] = np.nan
    together = indicators_last(closes)
    for r in range(len(closes)):
        alone = indicators_last(closes[r : r + 1].copy())
        for name in INDICATOR_NAMES:
            assert np.array_equal(together[name][r : r + 1], alone[name], equal_nan=True), (name, r)
