"""Window metrics (docs/windows-and-indicators.md, Windows) for a whole shard at once.

Input is the candle block of apps.collector.store.candles_matrix: shape (len(FIELDS), symbols, minutes), oldest minute
first, the last column being minute t. Every metric is an array over the shard's symbols. A window that misses any
of its N candles is NaN throughout, so comparisons against it are false and no rule fires on it.

Sums are taken with numpy over contiguous rows of exactly N values, so the live tick and the backtest (which feed
the same function with the same block shapes) get bit-identical numbers.
"""

from __future__ import annotations

import numpy as np

from apps.collector.candles import FIELD_INDEX
from screener_project.kernel.timeframes import SCREENER_TIMEFRAMES

LONGEST_WINDOW = max(SCREENER_TIMEFRAMES.values())

WINDOW_METRICS = (
    "open",
    "high",
    "low",
    "close",
    "change",
    "vol",
    "base_vol",
    "trades",
    "taker_buy_ratio",
    "vwap",
    "vcp",
    "fib_pivot",
    "fib_r1",
    "fib_r2",
    "fib_r3",
    "fib_s1",
    "fib_s2",
    "fib_s3",
)
FIB_RATIOS = {"1": 0.382, "2": 0.618, "3": 1.0}


def window_metric_names() -> list[str]:
    return [f"{metric}_{window}" for window in SCREENER_TIMEFRAMES for metric in WINDOW_METRICS]


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray, *, when_zero: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = numerator / denominator
    return np.where(denominator == 0, when_zero, out)


def window_metrics(candles: np.ndarray, windows: dict[str, int] = SCREENER_TIMEFRAMES) -> dict[str, np.ndarray]:
    """`{"<metric>_<window>": array over symbols}` for every window whose length fits the block.

    The minute axis is the last one; any axes between fields and minutes are kept (held_within passes a
    (fields, symbols, minutes s, window) view of sliding windows and gets (symbols, minutes s) arrays), with the
    same operations on the same contiguous runs of minutes.
    """
    field = {name: candles[i] for name, i in FIELD_INDEX.items()}
    length = candles.shape[-1]
    out: dict[str, np.ndarray] = {}
    for window, n in windows.items():
        if n > length:
            continue
        start = length - n
        complete = ~np.isnan(field["open_time"][..., start:]).any(axis=-1)
        open_ = field["open"][..., start]
        high = field["high"][..., start:].max(axis=-1)
        low = field["low"][..., start:].min(axis=-1)
        close = field["close"][..., -1]
        vol = field["quote_volume"][..., start:].sum(axis=-1)
        base_vol = field["volume"][..., start:].sum(axis=-1)
        trades = field["trades"][..., start:].sum(axis=-1)
        taker_buy_quote = field["taker_buy_quote_volume"][..., start:].sum(axis=-1)
        price_range = high - low
        vwap = _safe_divide(vol, base_vol, when_zero=np.nan)
        pivot = (high + low + close) / 3
        values = {
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "change": (close - open_) / open_ * 100,
            "vol": vol,
            "base_vol": base_vol,
            "trades": trades,
            "taker_buy_ratio": _safe_divide(taker_buy_quote, vol, when_zero=0.0),
            "vwap": vwap,
            "vcp": _safe_divide((close / vwap) * ((close - low) - (high - close)), price_range, when_zero=0.0),
            "fib_pivot": pivot,
        }
        for level, ratio in FIB_RATIOS.items():
            values[f"fib_r{level}"] = pivot + ratio * price_range
            values[f"fib_s{level}"] = pivot - ratio * price_range
        for metric, value in values.items():
            out[f"{metric}_{window}"] = np.where(complete, value, np.nan)
    return out
