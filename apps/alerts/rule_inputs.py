"""The values rules read beyond a shard's block and window metrics, loaded on demand for the rows that need them.

- Indicators (`rsi_14_15m`): from the rows' clock-aligned bars (apps.metrics.shard_bars), live from the block and
  the bar store, in the backtest from each symbol's history (apps.metrics.history_closes).
- Daily changes (`change_7d`): close at t against the open of an older 1d bar (apps.metrics.daily).
- Reference-symbol metrics (`BTCUSDT.change_1h`): the reference symbol's window metrics at the same minute t,
  computed in every shard that needs them from that symbol's own 1m block (its row of the shard's block when it is
  in the shard, else read from the candle ring), so a shard sees them wherever the symbol hashes. The backtest
  computes them with the same window_metrics on the same block shape (ReferenceSeries), so live and backtest
  numbers are identical; a minute where the reference symbol has no candle gives no value.

apps.alerts.engine.rules_evaluate asks a loader for values only for the rows still standing when a rule reaches the
condition that reads them (all rows while most stand), so a rule such as whale_accumulation computes its 15m RSI
for the few symbols with a volume spike. Every value of a row depends on that row's data only, so it is the same
whichever rows are loaded together.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import redis as redis_lib

from apps.collector.candles import FIELD_INDEX, MINUTE_MS
from apps.collector.store import candles_matrix
from apps.metrics.daily import DAILY_METRICS, DailyOpens, daily_changes, daily_opens_load
from apps.metrics.history_closes import HistoryCloses
from apps.metrics.shard_bars import INDICATOR_METRICS, ShardBars, indicator_metrics, indicators_by_timeframe, shard_bars
from apps.metrics.windows import LONGEST_WINDOW, window_metrics, window_minutes

from .conditions import indicator_timeframes_ordered

# symbols -> their (fields, symbols, LONGEST_WINDOW) block ending at minute t.
BlockLoad = Callable[[list[str]], np.ndarray]


def references_by_symbol(labels: Sequence[str]) -> dict[str, list[str]]:
    """`{"BTCUSDT": ["change_1h", ...]}` from `BTCUSDT.change_1h` labels."""
    out: dict[str, list[str]] = {}
    for label in labels:
        symbol, name = label.split(".", 1)
        out.setdefault(symbol, []).append(name)
    return out


def reference_values(block: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
    """`{name: (rows,)}` of window metrics and newest-candle fields over a reference block."""
    metrics = window_metrics(block, names=names)
    missing = np.full(block.shape[1], np.nan)
    return {
        name: block[FIELD_INDEX[name], :, -1] if name in FIELD_INDEX else metrics.get(name, missing) for name in names
    }


def _split(names: Sequence[str]) -> tuple[tuple[str, ...], list[str], list[str]]:
    """(indicator timeframes, daily names, reference labels) among deferred names."""
    timeframes = indicator_timeframes_ordered(INDICATOR_METRICS[n][1] for n in names if n in INDICATOR_METRICS)
    return timeframes, [n for n in names if n in DAILY_METRICS], [n for n in names if "." in n]


class LiveValues:
    """The loader of a live shard at minute t (apps.alerts.engine.ValuesLoad).

    Indicators asked for all rows build the shard's ShardBars (`bars`), which the indicators stage then completes
    instead of starting over; asked for a few rows, they are computed from those rows' bars alone (unless the
    shard's bars exist already). `block_load` gives other symbols' blocks ending at t (default: the candle ring).
    """

    def __init__(
        self,
        client: redis_lib.Redis,
        *,
        minute_ms: int,
        symbols: Sequence[str],
        block: np.ndarray,
        block_load: BlockLoad | None = None,
    ) -> None:
        self.client = client
        self.minute_ms = minute_ms
        self.symbols = list(symbols)
        self.block = block
        self.block_load = block_load or (
            lambda wanted: candles_matrix(client, wanted, end_minute_ms=minute_ms, length=LONGEST_WINDOW)
        )
        self.bars: ShardBars | None = None
        self._references: dict[str, float] = {}

    def __call__(self, rows: np.ndarray | None, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        timeframes, daily, references = _split(names)
        symbols = self.symbols if rows is None else [self.symbols[i] for i in rows]
        out: dict[str, np.ndarray] = {}
        if timeframes:
            if rows is None or self.bars is not None:
                if self.bars is None:
                    self.bars = shard_bars(minute_ms=self.minute_ms, symbols=self.symbols, block=self.block)
                values = self.bars.metrics(self.client, timeframes)
                out.update(values if rows is None else {name: v[rows] for name, v in values.items()})
            else:
                bars = shard_bars(minute_ms=self.minute_ms, symbols=symbols, block=self.block[:, rows])
                out.update(bars.metrics(self.client, timeframes))
        if daily:
            close = self.block[FIELD_INDEX["close"], :, -1]
            opens = daily_opens_load(self.client, symbols, minute_ms=self.minute_ms, names=daily)
            out.update(daily_changes(close if rows is None else close[rows], opens))
        if references:
            self._references_load([label for label in references if label not in self._references])
            out.update({label: np.full(len(symbols), self._references[label]) for label in references})
        return out

    def _references_load(self, labels: list[str]) -> None:
        wanted = references_by_symbol(labels)
        if not wanted:
            return
        index = {symbol: i for i, symbol in enumerate(self.symbols)}
        outside = [symbol for symbol in wanted if symbol not in index]
        loaded = self.block_load(outside) if outside else None
        for symbol, names in wanted.items():
            if symbol in index:
                block = self.block[:, index[symbol] : index[symbol] + 1]
            else:
                i = outside.index(symbol)
                block = loaded[:, i : i + 1]
            for name, value in reference_values(block, names).items():
                self._references[f"{symbol}.{name}"] = float(value[0])


class ReferenceSeries:
    """Backtest: a reference symbol's metrics at every minute of its history, computed as a live shard would
    (window_metrics over the LONGEST_WINDOW minutes ending at t), then looked up by minute."""

    def __init__(self, frame: pd.DataFrame | None, names: Sequence[str], *, chunk_rows: int = 512) -> None:
        from .backtest import _grid  # the backtest's grid layout

        self.names = list(names)
        self.values: dict[str, np.ndarray] = {}
        self.first = 0
        if frame is None or frame.empty:
            return
        grid, self.first = _grid(frame)
        windows = np.lib.stride_tricks.sliding_window_view(grid, LONGEST_WINDOW, axis=1)  # (F, minutes, W)
        # Only the newest minutes of each window that the names read: the same runs of minutes a live shard reduces,
        # without copying the rest of the block.
        span = max((window_minutes(name) for name in self.names), default=1)
        parts: dict[str, list[np.ndarray]] = {name: [] for name in self.names}
        for start in range(0, windows.shape[1], chunk_rows):
            part = np.ascontiguousarray(windows[:, start : start + chunk_rows, -span:])
            for name, value in reference_values(part, self.names).items():
                parts[name].append(value)
        self.values = {name: np.concatenate(chunks) for name, chunks in parts.items()}

    def at(self, minutes_ms: np.ndarray) -> dict[str, np.ndarray]:
        """`{name: values}` at these minutes; NaN outside the reference symbol's history."""
        minutes_ms = np.asarray(minutes_ms, dtype=np.int64)
        if not self.values:
            return {name: np.full(len(minutes_ms), np.nan) for name in self.names}
        index = (minutes_ms - self.first) // MINUTE_MS
        count = len(next(iter(self.values.values())))
        inside = (index >= 0) & (index < count)
        safe = np.clip(index, 0, count - 1)
        return {name: np.where(inside, values[safe], np.nan) for name, values in self.values.items()}


class BacktestValues:
    """Backtest: the loaders of one symbol's chunks of rows, from its history (built once per symbol)."""

    def __init__(
        self, references: Mapping[str, ReferenceSeries], history: HistoryCloses | None, daily: DailyOpens | None
    ) -> None:
        self.references = references
        self.history = history
        self.daily = daily

    def loader(self, *, columns: np.ndarray, minutes_ms: np.ndarray, close: np.ndarray):
        """The ValuesLoad of a chunk whose rows end at these grid columns / minutes, with these closes at t."""

        def load(rows: np.ndarray | None, names: tuple[str, ...]) -> dict[str, np.ndarray]:
            pick = slice(None) if rows is None else rows
            timeframes, daily, references = _split(names)
            out: dict[str, np.ndarray] = {}
            count = len(minutes_ms) if rows is None else len(rows)
            if timeframes:
                if self.history is None:
                    out.update({n: np.full(count, np.nan) for n in names if n in INDICATOR_METRICS})
                else:
                    closes = self.history.closes(columns[pick])
                    values = indicators_by_timeframe({tf: closes[tf] for tf in timeframes if tf in closes})
                    out.update(indicator_metrics(values, [tf for tf in timeframes if tf in values]))
            if daily:
                opens = (
                    self.daily.at(minutes_ms[pick], daily)
                    if self.daily is not None
                    else {n: np.full(count, np.nan) for n in daily}
                )
                out.update(daily_changes(close[pick], opens))
            for symbol, wanted in references_by_symbol(references).items():
                series = self.references.get(symbol)
                found = series.at(minutes_ms[pick]) if series is not None else {}
                for name in wanted:
                    out[f"{symbol}.{name}"] = found.get(name, np.full(count, np.nan))
            return out

        return load
