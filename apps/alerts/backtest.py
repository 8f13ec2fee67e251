"""Backtest: the live rule code over history, one (symbol, minute) window per row.

Every minute t of a symbol becomes a row of a (fields, rows, LONGEST_WINDOW) block shaped exactly like the live
tick's candles_matrix block (missing minutes NaN, minute t last), built from numpy sliding windows made
C-contiguous, a chunk of rows at a time. The block goes through the same evaluation as the live tick
(apps.alerts.evaluation.rows_evaluate), and fired rows through the same cooldown rule, so replaying a data set
through the live pipeline yields the alert set this module computes for it. Indicators, daily changes and reference
symbols' metrics are loaded on demand by the same rules_evaluate, for the rows that reach a condition reading them
(apps.alerts.rule_inputs.BacktestValues): indicators from the K bar closes the live tick would read at each row's
minute (apps.metrics.history_closes) through the same indicators_last, daily changes from the symbol's own daily
bars, reference metrics from the reference symbol's own windows at the same minute.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from django.conf import settings
from tqdm import tqdm

from apps.collector.candles import FIELDS, MINUTE_MS, data_files, read_csv_candles, symbol_from_filename
from apps.metrics.daily import DailyOpens
from apps.metrics.history_closes import HistoryCloses
from apps.metrics.windows import LONGEST_WINDOW

from .engine import (
    CompiledRule,
    cooldown_suppresses,
    rules_block_minutes,
    rules_indicator_timeframes,
    rules_window_metric_names,
)
from .evaluation import rows_evaluate
from .rule_inputs import BacktestValues, ReferenceSeries, references_by_symbol

# Rows per block. Small blocks (at most 128 windows x 1440 minutes x 10 fields = 15 MB) in one reused buffer
# measured up to twice as fast as freshly allocated 512-row blocks: the copy out of the sliding windows dominated.
CHUNK_ROWS = 128
HORIZONS = {"5m": 5, "15m": 15, "1h": 60, "4h": 240, "1d": 1440}
BASE_COLUMNS = ["symbol", "alert_type", "candle_open_time", "price", "change_pct"]
DIRECTION = {"bull": 1.0, "bear": -1.0}
HIT_RATE_NOTE = (
    "Hit rate: the share of alerts after which the price moved in the rule's direction by the horizon: up for a "
    "bull rule, down for a bear rule (a bear rule hits when the price falls); neutral rules have none. Returns "
    "are signed as the price moved (a bear rule's good alert has a negative return); '-' where no alert has a "
    "price that far ahead."
)


@dataclass
class BacktestResult:
    # One row per alert: BASE_COLUMNS, then the metrics of each rule (NaN where a rule does not read one),
    # then ret_<horizon> forward returns in percent. Sorted by candle_open_time, symbol, alert_type.
    alerts: pd.DataFrame
    metric_columns: list[str]
    candles: int  # (symbol, minute) windows evaluated
    seconds: float  # time spent evaluating

    @property
    def candles_per_second(self) -> float:
        return self.candles / self.seconds if self.seconds else float("nan")

    def keys(self) -> set[tuple[str, str, int]]:
        """The alert set as (symbol, alert_type, candle open ms), for comparison with alert_history."""
        return set(
            zip(
                self.alerts["symbol"],
                self.alerts["alert_type"],
                self.alerts["candle_open_time"].astype(int),
                strict=True,
            )
        )


def frames_from_files(paths: Iterable[Path]) -> dict[str, pd.DataFrame]:
    """Candle frames per symbol from Binance public-dump CSV files (gzipped or not) or directories of them."""
    grouped: dict[str, list[Path]] = {}
    for path in map(Path, paths):
        if path.is_dir():
            for symbol, files in data_files(path).items():
                grouped.setdefault(symbol, []).extend(files)
        elif path.is_file():
            grouped.setdefault(symbol_from_filename(path), []).append(path)
        else:
            raise FileNotFoundError(f"no such data file or directory: {path}")
    return {symbol: read_csv_candles(sorted(files)) for symbol, files in sorted(grouped.items())}


def frames_from_database(
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
    symbols: Sequence[str] | None = None,
    history_days: int = 1,
) -> dict[str, pd.DataFrame]:
    """Candle frames per symbol from candles_1m (pandas through SQLAlchemy), with `history_days` days of history
    before start (one fills the 1m block; the daily changes need 31)."""
    from django.db import connection
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import URL

    db = connection.settings_dict
    url = URL.create(
        "postgresql+psycopg2",
        username=db.get("USER") or None,
        password=db.get("PASSWORD") or None,
        host=db.get("HOST") or None,
        port=int(db["PORT"]) if db.get("PORT") else None,
        database=db["NAME"],
    )
    clauses, params = [], {}
    if start_ms is not None:
        clauses.append("time >= :since")
        history_ms = (max(history_days, 1) * LONGEST_WINDOW - 1) * MINUTE_MS
        params["since"] = pd.Timestamp((start_ms - history_ms) * 1_000_000, tz="UTC")
    if end_ms is not None:
        clauses.append("time <= :until")
        params["until"] = pd.Timestamp(end_ms * 1_000_000, tz="UTC")
    if symbols:
        clauses.append("symbol = ANY(:symbols)")
        params["symbols"] = list(symbols)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    columns = ", ".join(name for name in FIELDS if name != "open_time")
    query = text(f"SELECT symbol, time, {columns} FROM candles_1m{where} ORDER BY symbol, time")
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            frame = pd.read_sql(query, connection, params=params)
    finally:
        engine.dispose()
    frame["open_time"] = pd.to_datetime(frame.pop("time"), utc=True).dt.as_unit("ms").astype("int64")
    return {str(symbol): part.reset_index(drop=True) for symbol, part in frame.groupby("symbol", sort=True)}


def _grid(frame: pd.DataFrame) -> tuple[np.ndarray, int]:
    """The symbol's candles on a dense minute grid, (fields, minutes), NaN where a minute is missing.

    LONGEST_WINDOW - 1 empty minutes come first, so grid column `i + LONGEST_WINDOW - 1` is minute `first + i` and
    the sliding window starting at column i ends there. Returns (grid, open time of the first candle).
    """
    times = frame["open_time"].to_numpy(dtype=np.int64)
    first = int(times.min())
    pad = LONGEST_WINDOW - 1
    positions = (times - first) // MINUTE_MS + pad
    grid = np.full((len(FIELDS), int(positions.max()) + 1), np.nan)
    for f, name in enumerate(FIELDS):
        grid[f, positions] = frame[name].to_numpy(dtype=np.float64)
    return grid, first


def _block(windows: np.ndarray, rows: np.ndarray, buffer: np.ndarray) -> np.ndarray:
    """The windows of `rows` as a C-contiguous (fields, rows, minutes) block, in `buffer` when it fits."""
    if len(rows) != buffer.shape[1]:
        return np.ascontiguousarray(windows[:, rows, :])
    if rows[-1] - rows[0] == len(rows) - 1:
        buffer[...] = windows[:, rows[0] : rows[-1] + 1, :]
    else:
        # Fancy indexing, not np.take: take over a sliding-window view walks it element by element (seconds per
        # chunk; indexing copies each window's minutes as one run, in milliseconds).
        buffer[...] = windows[:, rows, :]
    return buffer


def _cooldown_keep(minutes: np.ndarray, cooldown_minutes: int) -> np.ndarray:
    """Which of a pair's ascending firing minutes survive the cooldown, processed in order as the live tick does."""
    keep = np.zeros(len(minutes), dtype=bool)
    previous: int | None = None
    for i, minute in enumerate(minutes.tolist()):
        if not cooldown_suppresses(previous_ms=previous, minute_ms=minute, cooldown_minutes=cooldown_minutes):
            keep[i] = True
            previous = minute
    return keep


def backtest_run(
    *,
    frames: Mapping[str, pd.DataFrame],
    rules: Sequence[CompiledRule],
    start_ms: int | None = None,
    end_ms: int | None = None,
    cooldown_minutes: int | None = None,
    progress: bool = False,
    chunk_rows: int = CHUNK_ROWS,
) -> BacktestResult:
    """Evaluate `rules` at every minute t in [start_ms, end_ms] that has a candle, per symbol of `frames`.

    Frames have the FIELDS columns (as read_csv_candles returns), open times on minute boundaries. Candles before
    start_ms serve as history only. `cooldown_minutes` overrides every rule's own cooldown.
    """
    rules = list(rules)
    timeframes = rules_indicator_timeframes(rules)
    daily = any(rule.daily for rule in rules)
    references = {
        symbol: ReferenceSeries(frames.get(symbol), names)
        for symbol, names in references_by_symbol([label for rule in rules for label in rule.references]).items()
    }
    metric_columns: list[str] = []
    for rule in rules:
        metric_columns += [label for label in rule.inputs if label not in metric_columns]

    def evaluated_times(frame: pd.DataFrame) -> np.ndarray:
        times = frame["open_time"].to_numpy(dtype=np.int64)
        wanted = np.ones(len(times), dtype=bool)
        if start_ms is not None:
            wanted &= times >= start_ms
        if end_ms is not None:
            wanted &= times <= end_ms
        return times[wanted]

    total = sum(len(evaluated_times(frame)) for frame in frames.values())
    parts: list[pd.DataFrame] = []
    evaluated = 0
    seconds = 0.0
    bar = tqdm(total=total, disable=not progress, unit="candle", unit_scale=True, desc="backtest")
    # Each row's block holds only the newest minutes the rules read, the rest of its 1,440 never being looked at:
    # the copy out of the sliding windows and the window metrics were most of a backtest's time.
    block_minutes = rules_block_minutes(rules)
    metric_names = rules_window_metric_names(rules)
    buffer = np.empty((len(FIELDS), chunk_rows, block_minutes))
    # One symbol at a time, so only one symbol's minute grid is in memory.
    for symbol, frame in frames.items():
        if frame.empty:
            continue
        grid, first = _grid(frame)
        starts = np.sort((evaluated_times(frame) - first) // MINUTE_MS)  # window index of each evaluated minute
        windows = np.lib.stride_tricks.sliding_window_view(grid, LONGEST_WINDOW, axis=1)[..., -block_minutes:]
        closes = grid[FIELDS.index("close")]
        history = (
            HistoryCloses(
                grid,
                grid_start_ms=first - (LONGEST_WINDOW - 1) * MINUTE_MS,
                timeframes=timeframes,
                count=settings.INDICATOR_BARS,
            )
            if timeframes
            else None
        )
        grid_start_ms = first - (LONGEST_WINDOW - 1) * MINUTE_MS
        values = BacktestValues(references, history, DailyOpens(grid, grid_start_ms=grid_start_ms) if daily else None)
        fired_parts: dict[str, list[dict[str, np.ndarray]]] = {rule.rule_type: [] for rule in rules}
        for chunk_start in range(0, len(starts), chunk_rows):
            began = time.perf_counter()
            rows = starts[chunk_start : chunk_start + chunk_rows]
            block = _block(windows, rows, buffer)
            # Window `i` ends at grid column i + LONGEST_WINDOW - 1, its minute t.
            loader = values.loader(
                columns=rows + LONGEST_WINDOW - 1,
                minutes_ms=first + rows.astype(np.int64) * MINUTE_MS,
                close=block[FIELDS.index("close"), :, -1],
            )
            evaluation = rows_evaluate(
                rules,
                block=block,
                symbols=np.full(len(rows), symbol, dtype=object),
                loader=loader,
                metric_names=metric_names,
            )
            context, fired = evaluation.context, evaluation.fired
            price = context.value("close")
            for rule in rules:
                hit = np.flatnonzero(fired[rule.rule_type])
                if hit.size == 0:
                    continue
                _, change = context.timeframe_values(rule.timeframe)
                columns = {
                    "minute_index": rows[hit],
                    "price": price[hit],
                    "change_pct": change[hit],
                    **context.values_at(hit, rule.inputs),
                }
                fired_parts[rule.rule_type].append(columns)
            seconds += time.perf_counter() - began
            evaluated += len(rows)
            bar.update(len(rows))
        for rule in rules:
            if not fired_parts[rule.rule_type]:
                continue
            chunks = fired_parts[rule.rule_type]
            hits = pd.DataFrame({name: np.concatenate([chunk[name] for chunk in chunks]) for name in chunks[0]})
            minutes = first + hits["minute_index"].to_numpy(dtype=np.int64) * MINUTE_MS
            cooldown = rule.cooldown_minutes if cooldown_minutes is None else cooldown_minutes
            keep = _cooldown_keep(minutes, cooldown)
            hits = hits[keep].reset_index(drop=True)
            index = hits.pop("minute_index").to_numpy(dtype=np.int64) + LONGEST_WINDOW - 1
            hits.insert(0, "candle_open_time", minutes[keep])
            hits.insert(0, "alert_type", rule.rule_type)
            hits.insert(0, "symbol", symbol)
            now = closes[index]
            for horizon, n in HORIZONS.items():
                ahead = index + n
                later = np.full(len(index), np.nan)
                inside = ahead < len(closes)
                later[inside] = closes[ahead[inside]]
                hits[f"ret_{horizon}"] = (later - now) / now * 100
            parts.append(hits)
    bar.close()
    columns = BASE_COLUMNS + metric_columns + [f"ret_{h}" for h in HORIZONS]
    alerts = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    alerts = alerts.reindex(columns=columns)
    alerts = alerts.sort_values(["candle_open_time", "symbol", "alert_type"], kind="stable").reset_index(drop=True)
    return BacktestResult(alerts=alerts, metric_columns=metric_columns, candles=evaluated, seconds=seconds)


def backtest_summary(result: BacktestResult, rules: Sequence[CompiledRule]) -> pd.DataFrame:
    """Per rule: count, and mean / median forward return (%) and hit rate (%) after each horizon.

    A hit is a move in the rule's direction (up for bull, down for bear); neutral rules have no hit rate.
    """
    rows = []
    for rule in rules:
        alerts = result.alerts[result.alerts["alert_type"] == rule.rule_type]
        row: dict[str, object] = {"rule_type": rule.rule_type, "count": len(alerts)}
        direction = DIRECTION.get(rule.category)
        for horizon in HORIZONS:
            returns = alerts[f"ret_{horizon}"].dropna()
            row[f"mean_{horizon}"] = returns.mean() if len(returns) else np.nan
            row[f"median_{horizon}"] = returns.median() if len(returns) else np.nan
            row[f"hit_{horizon}"] = (
                (np.sign(returns) == direction).mean() * 100 if direction is not None and len(returns) else np.nan
            )
        rows.append(row)
    return pd.DataFrame(rows).set_index("rule_type")


def backtest_csv(result: BacktestResult, path: Path) -> None:
    """Write one row per alert: symbol, alert_type, candle_open_time (ms), price, change_pct, the rules' metrics."""
    result.alerts[BASE_COLUMNS + result.metric_columns].to_csv(path, index=False, float_format="%.10g")
