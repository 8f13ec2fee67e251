"""The values rules read beyond a shard's own block and window metrics, loaded only when a rule names them.

- Reference-symbol metrics (`BTCUSDT.change_1h`): the reference symbol's window metrics at the same minute t,
  computed in every shard that needs them from that symbol's own 1m block (its row of the shard's block when it
  is in the shard, else read from the candle ring), so a shard sees them wherever the symbol hashes. The
  backtest computes them with the same window_metrics on the same block shape (ReferenceSeries), so live and
  backtest numbers are identical; a minute where the reference symbol has no candle gives no value.
- Daily changes (`change_7d`): close at t against the open of an older 1d bar (apps.metrics.daily).

Both are handed to rule_context beside the indicators, so a row without a candle at t gets none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import redis as redis_lib

from apps.collector.candles import FIELD_INDEX, MINUTE_MS
from apps.collector.store import candles_matrix
from apps.metrics.daily import DailyOpens, daily_changes, daily_opens_load
from apps.metrics.windows import LONGEST_WINDOW, window_metrics

from .engine import CompiledRule

# symbols -> their (fields, symbols, LONGEST_WINDOW) block ending at minute t.
BlockLoad = Callable[[list[str]], np.ndarray]


def rules_references(rules: Iterable[CompiledRule]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(label for rule in rules for label in rule.references))


def rules_daily(rules: Iterable[CompiledRule]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(name for rule in rules for name in rule.daily))


def references_by_symbol(labels: Iterable[str]) -> dict[str, list[str]]:
    """`{"BTCUSDT": ["change_1h", ...]}` from `BTCUSDT.change_1h` labels."""
    out: dict[str, list[str]] = {}
    for label in labels:
        symbol, name = label.split(".", 1)
        out.setdefault(symbol, []).append(name)
    return out


def reference_values(block: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
    """`{name: (rows,)}` of window metrics and newest-candle fields over a reference block."""
    metrics = window_metrics(block)
    missing = np.full(block.shape[1], np.nan)
    return {
        name: block[FIELD_INDEX[name], :, -1] if name in FIELD_INDEX else metrics.get(name, missing) for name in names
    }


def rule_extras_load(
    client: redis_lib.Redis,
    *,
    rules: Sequence[CompiledRule],
    minute_ms: int,
    symbols: Sequence[str],
    block: np.ndarray,
    block_load: BlockLoad | None = None,
) -> dict[str, np.ndarray]:
    """Live: `{label: (symbols,)}` of the reference-symbol metrics and daily changes the rules name (empty when
    none does). `block_load` gives other symbols' blocks ending at t (default: the closed candle ring)."""
    out: dict[str, np.ndarray] = {}
    rows = len(symbols)
    references = references_by_symbol(rules_references(rules))
    if references:
        index = {symbol: i for i, symbol in enumerate(symbols)}
        outside = [symbol for symbol in references if symbol not in index]
        if outside:
            load = block_load or (
                lambda wanted: candles_matrix(client, wanted, end_minute_ms=minute_ms, length=LONGEST_WINDOW)
            )
            loaded = load(outside)
        for symbol, names in references.items():
            if symbol in index:
                ref_block = block[:, index[symbol] : index[symbol] + 1]
            else:
                i = outside.index(symbol)
                ref_block = loaded[:, i : i + 1]
            for name, value in reference_values(ref_block, names).items():
                out[f"{symbol}.{name}"] = np.full(rows, value[0])
    daily = rules_daily(rules)
    if daily:
        opens = daily_opens_load(client, list(symbols), minute_ms=minute_ms, names=daily)
        out.update(daily_changes(block[FIELD_INDEX["close"], :, -1], opens))
    return out


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
        count = windows.shape[1]
        parts: dict[str, list[np.ndarray]] = {name: [] for name in self.names}
        for start in range(0, count, chunk_rows):
            part = np.ascontiguousarray(windows[:, start : start + chunk_rows, :])
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


class BacktestExtras:
    """Backtest: the extra values of rule_extras_load for rows of one symbol at given minutes."""

    def __init__(self, rules: Sequence[CompiledRule], frames: Mapping[str, pd.DataFrame]) -> None:
        self.daily = rules_daily(rules)
        self.references = {
            symbol: ReferenceSeries(frames.get(symbol), names)
            for symbol, names in references_by_symbol(rules_references(rules)).items()
        }

    def __bool__(self) -> bool:
        return bool(self.daily or self.references)

    def for_symbol(self, grid: np.ndarray, grid_start_ms: int) -> Callable[[np.ndarray, np.ndarray], dict]:
        """(minutes ms, closes at t) -> `{label: values}` for one symbol's rows."""
        opens = DailyOpens(grid, grid_start_ms=grid_start_ms) if self.daily else None

        def values(minutes_ms: np.ndarray, close: np.ndarray) -> dict[str, np.ndarray]:
            out: dict[str, np.ndarray] = {}
            for symbol, series in self.references.items():
                for name, value in series.at(minutes_ms).items():
                    out[f"{symbol}.{name}"] = value
            if opens is not None:
                out.update(daily_changes(close, opens.at(minutes_ms, self.daily)))
            return out

        return values
