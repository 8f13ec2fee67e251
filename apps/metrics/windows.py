"""Window metrics (docs/windows-and-indicators.md, Windows) for a whole shard at once.

Input is the candle block of apps.collector.store.candles_matrix: shape (len(FIELDS), symbols, minutes), oldest minute
first, the last column being minute t. Every metric is an array over the shard's symbols. A window that misses any
of its N candles is NaN throughout, so comparisons against it are false and no rule fires on it.

Sums are taken with numpy over contiguous rows of exactly N values, so the live tick and the backtest (which feed
the same function with the same block shapes) get bit-identical numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from functools import cached_property

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


def window_minutes(name: str) -> int:
    """The minutes a window metric (`change_1h`) reads at one minute t; 1 for a field of the candle of t."""
    return SCREENER_TIMEFRAMES.get(name.rsplit("_", 1)[-1], 1)


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray, *, when_zero: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = numerator / denominator
    return np.where(denominator == 0, when_zero, out)


class _WindowRun:
    """The reductions over one window of a block, each taken the first time a metric needs it."""

    def __init__(self, field: dict[str, np.ndarray], start: int) -> None:
        self.field, self.start = field, start

    @cached_property
    def complete(self) -> np.ndarray:
        return ~np.isnan(self.field["open_time"][..., self.start :]).any(axis=-1)

    @cached_property
    def open(self) -> np.ndarray:
        return self.field["open"][..., self.start]

    @cached_property
    def high(self) -> np.ndarray:
        return self.field["high"][..., self.start :].max(axis=-1)

    @cached_property
    def low(self) -> np.ndarray:
        return self.field["low"][..., self.start :].min(axis=-1)

    @cached_property
    def close(self) -> np.ndarray:
        return self.field["close"][..., -1]

    @cached_property
    def vol(self) -> np.ndarray:
        return self.field["quote_volume"][..., self.start :].sum(axis=-1)

    @cached_property
    def base_vol(self) -> np.ndarray:
        return self.field["volume"][..., self.start :].sum(axis=-1)

    @cached_property
    def trades(self) -> np.ndarray:
        return self.field["trades"][..., self.start :].sum(axis=-1)

    @cached_property
    def price_range(self) -> np.ndarray:
        return self.high - self.low

    @cached_property
    def vwap(self) -> np.ndarray:
        return _safe_divide(self.vol, self.base_vol, when_zero=np.nan)

    @cached_property
    def pivot(self) -> np.ndarray:
        return (self.high + self.low + self.close) / 3

    def taker_buy_ratio(self) -> np.ndarray:
        taker_buy_quote = self.field["taker_buy_quote_volume"][..., self.start :].sum(axis=-1)
        return _safe_divide(taker_buy_quote, self.vol, when_zero=0.0)

    def vcp(self) -> np.ndarray:
        close, low, high = self.close, self.low, self.high
        return _safe_divide((close / self.vwap) * ((close - low) - (high - close)), self.price_range, when_zero=0.0)


def _fib_level(ratio: float, *, above: bool) -> Callable[[_WindowRun], np.ndarray]:
    if above:
        return lambda run: run.pivot + ratio * run.price_range
    return lambda run: run.pivot - ratio * run.price_range


# Each metric from a window's reductions, in the order window_metrics has always returned them.
_FORMULAS: dict[str, Callable[[_WindowRun], np.ndarray]] = {
    "open": lambda run: run.open,
    "high": lambda run: run.high,
    "low": lambda run: run.low,
    "close": lambda run: run.close,
    "change": lambda run: (run.close - run.open) / run.open * 100,
    "vol": lambda run: run.vol,
    "base_vol": lambda run: run.base_vol,
    "trades": lambda run: run.trades,
    "taker_buy_ratio": _WindowRun.taker_buy_ratio,
    "vwap": lambda run: run.vwap,
    "vcp": _WindowRun.vcp,
    "fib_pivot": lambda run: run.pivot,
}
for _level, _ratio in FIB_RATIOS.items():
    _FORMULAS[f"fib_r{_level}"] = _fib_level(_ratio, above=True)
    _FORMULAS[f"fib_s{_level}"] = _fib_level(_ratio, above=False)


def window_metrics(
    candles: np.ndarray, windows: dict[str, int] = SCREENER_TIMEFRAMES, names: Collection[str] | None = None
) -> dict[str, np.ndarray]:
    """`{"<metric>_<window>": array over symbols}` for every window whose length fits the block; with `names`, only
    those metrics (held_within computes just what the rule it names reads, at each of up to 1,439 minutes).

    The minute axis is the last one; any axes between fields and minutes are kept (held_within passes a
    (fields, symbols, minutes s, window) view of sliding windows and gets (symbols, minutes s) arrays), with the
    same operations on the same contiguous runs of minutes, whichever metrics are asked for.
    """
    field = {name: candles[i] for name, i in FIELD_INDEX.items()}
    length = candles.shape[-1]
    out: dict[str, np.ndarray] = {}
    for window, n in windows.items():
        if n > length:
            continue
        wanted = [m for m in _FORMULAS if names is None or f"{m}_{window}" in names]
        if not wanted:
            continue
        run = _WindowRun(field, length - n)
        for metric in wanted:
            out[f"{metric}_{window}"] = np.where(run.complete, _FORMULAS[metric](run), np.nan)
    return out
