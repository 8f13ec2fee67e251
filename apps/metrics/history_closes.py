"""The closes a live tick would feed the indicators, at any minute of a symbol's history: for the backtest.

At minute t the live tick (apps.metrics.bars.closes_shard) reads, per timeframe, the last K clock-aligned bars ending
with the forming one: bars opening inside its 1m block (the LONGEST_WINDOW minutes ending at t) are aggregated from
the block, older ones come from the bar store, which the collector seeds with the exchange's klines and the ticks
roll forward from 1m candles. A bar's close is the close of its newest candle; the forming bar's is that of the
newest candle at or before t; a bar without any candle is NaN; history before the first bar is NaN padding at the
front; a timeframe without a bar store (5m) has no bar older than the block. All of these are the candles' own
closes, so the backtest's K closes equal the live ones exactly, and so do the indicators computed from them.

Everything here is precomputed once per symbol over its dense minute grid; the closes of any set of minutes are then
one gather per timeframe.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from apps.collector.candles import FIELD_INDEX, MINUTE_MS
from screener_project.kernel.timeframes import BAR_INTERVALS, SCREENER_TIMEFRAMES

from .windows import LONGEST_WINDOW


class HistoryCloses:
    """`closes(columns)` -> `{tf: (len(columns), count)}`, oldest bar first, for minutes of a dense grid.

    `grid` is a (fields, minutes) array whose column c is minute grid_start_ms + c * MINUTE_MS, NaN where the
    symbol has no candle (as apps.alerts.backtest lays it out).
    """

    def __init__(self, grid: np.ndarray, *, grid_start_ms: int, timeframes: Sequence[str], count: int) -> None:
        self.count = count
        self.grid_start_ms = grid_start_ms
        close = grid[FIELD_INDEX["close"]]
        columns = np.arange(close.shape[0])
        minute_ms = grid_start_ms + columns * MINUTE_MS
        # Newest column at or before each column that has a candle (-1: none yet).
        newest = np.maximum.accumulate(np.where(np.isnan(close), -1, columns))
        self._bar_of_column: dict[str, np.ndarray] = {}
        self._forming: dict[str, np.ndarray] = {}
        self._bar_close: dict[str, np.ndarray] = {}
        self._first_bar: dict[str, int] = {}
        for timeframe in timeframes:
            step_ms = SCREENER_TIMEFRAMES[timeframe] * MINUTE_MS
            bar = minute_ms // step_ms  # absolute bar number of each column
            first_bar = int(bar[0]) if len(bar) else 0
            bar_open_column = (bar * step_ms - grid_start_ms) // MINUTE_MS
            # The forming bar's close at each minute: the newest candle's, if it lies inside the same bar.
            inside = (newest >= 0) & (newest >= bar_open_column)
            forming = np.where(inside, close[np.maximum(newest, 0)], np.nan)
            # A completed bar's close is its forming close at its last minute (the grid ends in the newest bar,
            # whose close is never read as a completed bar's).
            bars = int(bar[-1]) - first_bar + 1 if len(bar) else 0
            last_column = ((first_bar + np.arange(bars) + 1) * step_ms - grid_start_ms) // MINUTE_MS - 1
            self._bar_close[timeframe] = forming[np.minimum(last_column, len(forming) - 1)]
            self._forming[timeframe] = forming
            self._bar_of_column[timeframe] = bar - first_bar
            self._first_bar[timeframe] = first_bar

    def closes(self, columns: np.ndarray) -> dict[str, np.ndarray]:
        """The K closes of every timeframe at the minutes of these grid columns, C-contiguous (rows, K)."""
        columns = np.asarray(columns, dtype=np.int64)
        back = np.arange(-(self.count - 1), 0)  # the completed bars before the forming one, oldest first
        out = {}
        for timeframe, bar_close in self._bar_close.items():
            bar = self._bar_of_column[timeframe][columns]
            older = bar[:, None] + back[None, :]
            closes = np.empty((len(columns), self.count))
            closes[:, :-1] = np.where(older >= 0, bar_close[np.maximum(older, 0)], np.nan)
            closes[:, -1] = self._forming[timeframe][columns]
            if timeframe not in BAR_INTERVALS:
                # No bar store for this timeframe: the live tick only has the bars opening inside its 1m block.
                step_ms = SCREENER_TIMEFRAMES[timeframe] * MINUTE_MS
                opens_ms = (older + self._first_bar[timeframe]) * step_ms
                block_start_ms = self.grid_start_ms + (columns - (LONGEST_WINDOW - 1)) * MINUTE_MS
                closes[:, :-1][opens_ms < block_start_ms[:, None]] = np.nan
            out[timeframe] = closes
        return out
