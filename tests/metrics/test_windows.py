"""Every window metric (docs/windows-and-indicators.md) against a plain pandas computation on the bundled real data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from apps.collector.candles import FIELDS, data_files, read_csv_candles
from apps.metrics.windows import window_metrics
from screener_project.kernel.timeframes import SCREENER_TIMEFRAMES

SYMBOLS = ["BTCUSDT", "ETHUSDT", "LAYERUSDT", "XMRUSDT"]


@pytest.fixture(scope="module")
def frames(bundled_data_dir) -> dict[str, pd.DataFrame]:
    files = data_files(bundled_data_dir)
    return {symbol: read_csv_candles(files[symbol]) for symbol in SYMBOLS}


def block_ending_at(frames: dict[str, pd.DataFrame], row: int, length: int = 1440) -> np.ndarray:
    """The (fields, symbols, minutes) block the store would return, built straight from the frames."""
    block = np.full((len(FIELDS), len(frames), length), np.nan)
    for s, frame in enumerate(frames.values()):
        part = frame.iloc[max(0, row - length + 1) : row + 1]
        for f, name in enumerate(FIELDS):
            block[f, s, length - len(part) :] = part[name].to_numpy(dtype=float)
    return block


def pandas_window(frame: pd.DataFrame, row: int, n: int) -> dict[str, float]:
    w = frame.iloc[row - n + 1 : row + 1]
    open_, high, low, close = w["open"].iloc[0], w["high"].max(), w["low"].min(), w["close"].iloc[-1]
    vol, base_vol = w["quote_volume"].sum(), w["volume"].sum()
    vwap = vol / base_vol
    rng = high - low
    pivot = (high + low + close) / 3
    return {
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "change": (close - open_) / open_ * 100,
        "vol": vol,
        "base_vol": base_vol,
        "trades": float(w["trades"].sum()),
        "taker_buy_ratio": w["taker_buy_quote_volume"].sum() / vol if vol else 0.0,
        "vwap": vwap,
        "vcp": 0.0 if rng == 0 else (close / vwap) * ((close - low) - (high - close)) / rng,
        "fib_pivot": pivot,
        "fib_r1": pivot + 0.382 * rng,
        "fib_r2": pivot + 0.618 * rng,
        "fib_r3": pivot + rng,
        "fib_s1": pivot - 0.382 * rng,
        "fib_s2": pivot - 0.618 * rng,
        "fib_s3": pivot - rng,
    }


@pytest.mark.parametrize("row", [1439, 5000, 11519])
def test_every_window_metric_matches_pandas(frames, row):
    metrics = window_metrics(block_ending_at(frames, row))
    for s, frame in enumerate(frames.values()):
        for window, n in SCREENER_TIMEFRAMES.items():
            for metric, expected in pandas_window(frame, row, n).items():
                got = metrics[f"{metric}_{window}"][s]
                assert got == pytest.approx(expected, rel=1e-9, abs=1e-12), (metric, window, s)


def test_a_window_with_too_little_history_is_null(frames):
    metrics = window_metrics(block_ending_at(frames, 100))
    assert np.isnan(metrics["change_1d"]).all() and np.isnan(metrics["vol_8h"]).all()
    assert not np.isnan(metrics["change_1h"]).any()


def test_a_missing_candle_nulls_only_the_windows_that_contain_it(frames):
    block = block_ending_at(frames, 3000)
    block[:, 0, -20] = np.nan  # one candle of the first symbol, 19 minutes before t, never arrived
    metrics = window_metrics(block)
    assert not np.isnan(metrics["change_15m"][0])
    assert np.isnan(metrics["change_1h"][0]) and np.isnan(metrics["vol_1d"][0])
    assert not np.isnan(metrics["change_1h"][1])


def test_flat_window_has_zero_vcp():
    block = np.ones((len(FIELDS), 1, 5))
    block[0, 0] = np.arange(5) * 60_000.0
    metrics = window_metrics(block, {"5m": 5})
    assert metrics["vcp_5m"][0] == 0.0 and metrics["change_5m"][0] == 0.0


def test_asked_for_metrics_are_those_of_the_full_computation_bit_for_bit(frames):
    block = block_ending_at(frames, row=3000)
    block[:, 1, -7] = np.nan  # a missing minute inside the 15m window of one symbol
    everything = window_metrics(block)
    names = {"change_5m", "vcp_15m", "fib_s2_1h", "taker_buy_ratio_4h", "vol_1d", "no_such_metric_1h"}
    some = window_metrics(block, names=names)
    assert set(some) == names - {"no_such_metric_1h"}
    for name, values in some.items():
        assert np.array_equal(values, everything[name], equal_nan=True), name
    assert np.isnan(some["vcp_15m"][1]) and not np.isnan(some["vcp_15m"][0])
