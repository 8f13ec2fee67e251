"""Long windows from the daily bars: `change_3d`, `change_7d`, `change_14d`, `change_30d`.

`change_<N>d` at minute t = (close at t - open of the 1d bar that opened N days before the current 1d bar) / that
open * 100, the 1d bars being clock-aligned (00:00 UTC). The current bar is always inside the 1m block, the older
ones are not: live they come from the bar store (the collector seeds INDICATOR_BARS of them, the ticks roll them
forward), in the backtest from the symbol's own history, a bar's open being that of its first candle, as the ticks
write it. No value without that bar or without a candle at t. Defined in docs/windows-and-indicators.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import redis as redis_lib

from apps.collector.bars_store import bars_matrices
from apps.collector.candles import FIELD_INDEX, MINUTE_MS

DAY_MS = 1440 * MINUTE_MS
DAILY_METRICS: dict[str, int] = {"change_3d": 3, "change_7d": 7, "change_14d": 14, "change_30d": 30}


def daily_changes(close: np.ndarray, opens: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`{name: (close - open) / open * 100}` for the daily metrics whose bar opens are given (NaN stays NaN)."""
    with np.errstate(all="ignore"):
        return {name: (close - open_) / open_ * 100 for name, open_ in opens.items()}


def daily_opens_load(
    client: redis_lib.Redis, symbols: Sequence[str], *, minute_ms: int, names: Iterable[str]
) -> dict[str, np.ndarray]:
    """Live: `{name: (symbols,)}` opens of the 1d bars the daily metrics need at minute t, from the bar store."""
    names = list(names)
    if not names or not symbols:
        return {name: np.full(len(symbols), np.nan) for name in names}
    days = max(DAILY_METRICS[name] for name in names)
    current_open = minute_ms // DAY_MS * DAY_MS
    bars = bars_matrices(client, symbols, last_open_ms={"1d": current_open - DAY_MS}, count={"1d": days})["1d"]
    return {name: bars[FIELD_INDEX["open"], :, days - DAILY_METRICS[name]] for name in names}


class DailyOpens:
    """Backtest: the opens of a symbol's 1d bars from its dense minute grid, for any of its minutes."""

    def __init__(self, grid: np.ndarray, *, grid_start_ms: int) -> None:
        opens = grid[FIELD_INDEX["open"]]
        has = ~np.isnan(grid[FIELD_INDEX["close"]])
        minutes = grid_start_ms + np.arange(opens.shape[0], dtype=np.int64) * MINUTE_MS
        self.first_day = int(minutes[0] // DAY_MS) if len(minutes) else 0
        day = minutes // DAY_MS - self.first_day
        count = int(day[-1]) + 1 if len(day) else 0
        self.opens = np.full(count, np.nan)
        # A bar's open is that of its first candle with a close: the first such column of each day.
        columns = np.flatnonzero(has)
        days, first = np.unique(day[columns], return_index=True)
        self.opens[days] = opens[columns[first]]

    def at(self, minutes_ms: np.ndarray, names: Iterable[str]) -> dict[str, np.ndarray]:
        """`{name: opens}` of the bars N days before each minute's day (NaN outside the symbol's history)."""
        day = np.asarray(minutes_ms, dtype=np.int64) // DAY_MS - self.first_day
        out = {}
        for name in names:
            back = day - DAILY_METRICS[name]
            inside = (back >= 0) & (back < len(self.opens))
            out[name] = np.where(inside, self.opens[np.clip(back, 0, max(len(self.opens) - 1, 0))], np.nan)
        return out
