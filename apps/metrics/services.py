"""The indicators stage of a minute tick for one shard: bars, indicators, metrics_calculated, the Redis snapshot.

It runs once the shard's alerts are out, so nothing here delays an alert: inside the shard task on the 1m block the
alerts were computed from (no second read), or as its own task on the indicators queue (a shard catching up on
missed minutes, a retry). Every step is one vectorized pass over the shard and one round trip to its store: one
Redis read of the 1m block (unless given) and one of the bar history, one DELETE and one INSERT for the (symbol,
timeframe) rows, one script call that rolls bars forward (plus the bars of any symbol whose previous stage is
more than a few minutes old: apps.metrics.bars_repair), one that writes snapshots.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import orjson
import redis as redis_lib
from django.db import IntegrityError, connection, transaction

from apps.collector.bars_store import bars_roll
from apps.collector.candles import FIELD_INDEX, MINUTE_MS
from apps.collector.store import candles_matrix
from apps.metrics.windows import LONGEST_WINDOW, window_metrics
from screener_project.kernel.clock import iso_utc_seconds, now_ms
from screener_project.kernel.redis_keys import indicators_last_key, snapshot_key, snapshot_minute_key
from screener_project.kernel.stages import stage
from screener_project.kernel.timeframes import SCREENER_TIMEFRAMES

from .bars import bars_to_roll
from .bars_repair import bars_missed_roll
from .indicators import INDICATOR_NAMES
from .selectors import SNAPSHOT_FIELDS
from .shard_bars import ShardBars, shard_bars

# metrics_calculated column -> window metric (names of docs/windows-and-indicators.md, suffixed by the window).
WINDOW_COLUMNS: dict[str, str] = {
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "volume": "vol",
    "base_volume": "base_vol",
    "change_pct": "change",
    "vwap": "vwap",
    "vcp": "vcp",
    "trades": "trades",
    "taker_buy_ratio": "taker_buy_ratio",
    "fib_pivot": "fib_pivot",
    "fib_r1": "fib_r1",
    "fib_r2": "fib_r2",
    "fib_r3": "fib_r3",
    "fib_s1": "fib_s1",
    "fib_s2": "fib_s2",
    "fib_s3": "fib_s3",
}
VALUE_COLUMNS: tuple[str, ...] = (*WINDOW_COLUMNS, *INDICATOR_NAMES)


@dataclass
class ShardIndicators:
    """Everything the stage computes for a shard at minute t; `values[column]` is (timeframes, symbols)."""

    minute_ms: int
    symbols: list[str]
    values: dict[str, np.ndarray]
    rolled: dict[str, np.ndarray]
    timings: dict[str, float] = field(default_factory=dict)
    # Every bar opening inside the 1m block, `{tf: (bars, open ms of the first)}`: what a repair after missed ticks
    # writes from.
    from_block: dict[str, tuple[np.ndarray, int]] = field(default_factory=dict)


def shard_values(
    *,
    block: np.ndarray,
    metrics: dict[str, np.ndarray],
    indicators: dict[str, dict[str, np.ndarray]],
) -> dict[str, np.ndarray]:
    """Window metrics and indicators of every timeframe, as `{column: (len(SCREENER_TIMEFRAMES), symbols)}`.

    `indicators[tf][name]` is the (symbols,) value of an indicator at the timeframe's newest bar."""
    values = {
        column: np.stack([metrics[f"{metric}_{tf}"] for tf in SCREENER_TIMEFRAMES])
        for column, metric in WINDOW_COLUMNS.items()
    }
    values.update({name: np.stack([indicators[tf][name] for tf in SCREENER_TIMEFRAMES]) for name in INDICATOR_NAMES})
    return values


def shard_indicators_compute(
    client: redis_lib.Redis,
    *,
    minute_ms: int,
    symbols: Sequence[str],
    block: np.ndarray | None = None,
    metrics: dict[str, np.ndarray] | None = None,
    bars: ShardBars | None = None,
) -> ShardIndicators:
    """Load the shard's 1m block (unless given), its window metrics, bars and indicators at minute t.

    `bars`, from the shard tick's rules that named indicators, are completed rather than built again: the
    timeframes they already hold are neither loaded nor computed a second time.
    """
    symbols = list(symbols)
    timings: dict[str, float] = {}
    if block is None:
        with stage("load", timings):
            block = candles_matrix(client, symbols, end_minute_ms=minute_ms, length=LONGEST_WINDOW)
    # A symbol the ring knows nothing about (delisted, never collected) gets no row and no snapshot.
    known = ~np.isnan(block[FIELD_INDEX["open_time"]]).all(axis=1)
    if not known.all():
        block = block[:, known]
        symbols = [symbol for symbol, keep in zip(symbols, known.tolist(), strict=True) if keep]
        metrics = {name: values[known] for name, values in metrics.items()} if metrics is not None else None
        bars = bars.rows(known) if bars is not None else None
    if metrics is None:
        with stage("window_metrics", timings):
            metrics = window_metrics(block)
    with stage("bars", timings):
        if bars is None or bars.minute_ms != minute_ms or bars.symbols != symbols:
            bars = shard_bars(minute_ms=minute_ms, symbols=symbols, block=block)
        bars.closes_load(client, SCREENER_TIMEFRAMES)
    with stage("indicators", timings):
        bars.indicators_compute(SCREENER_TIMEFRAMES)
        values = shard_values(block=block, metrics=metrics, indicators=bars.indicators)
    rolled = bars_to_roll(bars.from_block, end_minute_ms=minute_ms)
    return ShardIndicators(minute_ms, symbols, values, rolled, timings, from_block=bars.from_block)


def minute_time(minute_ms: int) -> datetime:
    return datetime.fromtimestamp(minute_ms / 1000, tz=UTC)


# Rows travel by COPY in PostgreSQL's binary format into a session-local staging table: no text to format or parse
# (parsing 80,000 floats from text cost more than the insert itself), fixed-size rows built by numpy in one go.
_COPY_ROW = np.dtype(
    [("fields", ">i2"), ("symbol_len", ">i4"), ("symbol", ">i4"), ("timeframe_len", ">i4"), ("timeframe", ">i4")]
    + [item for column in VALUE_COLUMNS for item in ((f"{column}_len", ">i4"), (column, ">f8"))]
)
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
_COPY_TRAILER = (-1).to_bytes(2, "big", signed=True)
_STAGING_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS metrics_staging (symbol int4, timeframe int4, "
    + ", ".join(f"{column} float8" for column in VALUE_COLUMNS)
    + ") ON COMMIT DELETE ROWS"
)


def _copy_payload(result: ShardIndicators) -> bytes:
    n = len(result.symbols)
    rows = np.empty(len(SCREENER_TIMEFRAMES) * n, dtype=_COPY_ROW)
    rows["fields"] = 2 + len(VALUE_COLUMNS)
    rows["symbol_len"] = 4
    rows["symbol"] = np.tile(np.arange(n), len(SCREENER_TIMEFRAMES))
    rows["timeframe_len"] = 4
    rows["timeframe"] = np.repeat(np.arange(len(SCREENER_TIMEFRAMES)), n)
    for column in VALUE_COLUMNS:
        rows[f"{column}_len"] = 8
        rows[column] = result.values[column].reshape(-1)  # timeframe-major, like the two index columns
    return _COPY_HEADER + rows.tobytes() + _COPY_TRAILER


def _upsert_sql(*, on_conflict: bool) -> str:
    columns = list(VALUE_COLUMNS)
    # trades is a bigint column fed from float8 sums of whole numbers.
    selected = ", ".join(f"NULLIF(s.{c}, 'NaN')::bigint" if c == "trades" else f"NULLIF(s.{c}, 'NaN')" for c in columns)
    sql = (
        f"INSERT INTO metrics_calculated (time, symbol, timeframe, {', '.join(columns)}) "
        f"SELECT %s, sy.name, tf.name, {selected} FROM metrics_staging s "
        "JOIN unnest(%s::text[]) WITH ORDINALITY AS sy(name, i) ON sy.i = s.symbol + 1 "
        "JOIN unnest(%s::text[]) WITH ORDINALITY AS tf(name, i) ON tf.i = s.timeframe + 1"
    )
    if on_conflict:
        sql += " ON CONFLICT (time, symbol, timeframe) DO UPDATE SET " + ", ".join(
            f"{c} = EXCLUDED.{c}" for c in columns
        )
    return sql


_INSERT_SQL = _upsert_sql(on_conflict=False)
_UPSERT_SQL = _upsert_sql(on_conflict=True)


def metrics_calculated_upsert(*, result: ShardIndicators) -> int:
    """One row per (symbol, timeframe) at time = minute t, inserted or replaced (NaN -> NULL); returns the rows.

    The shard's rows of minute t are deleted, then inserted by a plain INSERT: a third cheaper than INSERT ... ON
    CONFLICT, whose speculative insertion costs more than the (almost always empty) delete. A concurrent writer of
    the same rows (a duplicated task) makes that insert fail on the key; the statement is then redone as an upsert.
    """
    if not result.symbols:
        return 0
    try:
        return _rows_write(result=result, on_conflict=False)
    except IntegrityError:
        return _rows_write(result=result, on_conflict=True)


def _rows_write(*, result: ShardIndicators, on_conflict: bool) -> int:
    time_ = minute_time(result.minute_ms)
    with transaction.atomic(), connection.cursor() as cursor:
        # Recomputable rows: no need to wait for the WAL flush (a crash loses at most the last moments' rows).
        cursor.execute("SET LOCAL synchronous_commit TO OFF")
        cursor.execute(_STAGING_DDL)
        cursor.execute("DELETE FROM metrics_staging")  # empty already, unless an outer transaction is still open
        cursor.copy_expert("COPY metrics_staging FROM STDIN WITH (FORMAT binary)", io.BytesIO(_copy_payload(result)))
        if not on_conflict:
            cursor.execute(
                "DELETE FROM metrics_calculated WHERE time = %s AND symbol = ANY(%s)", [time_, result.symbols]
            )
        cursor.execute(_UPSERT_SQL if on_conflict else _INSERT_SQL, [time_, result.symbols, list(SCREENER_TIMEFRAMES)])
        return cursor.rowcount


# Writes each symbol's snapshot unless a newer minute's is already there (a late retry never rolls it back).
_SNAPSHOT_SCRIPT = """
local snapshots, minutes, minute = ARGV[1], ARGV[2], tonumber(ARGV[3])
local function hset_all(k, list)
  for i = 1, #list, 1000 do  -- unpack has a stack limit: a thousand values at a time
    redis.call('HSET', k, unpack(list, i, math.min(i + 999, #list)))
  end
end
local names = {}
for i = 4, #ARGV, 2 do
  table.insert(names, ARGV[i])
end
local stored = {}
for i = 1, #names, 1000 do
  local part = redis.call('HMGET', minutes, unpack(names, i, math.min(i + 999, #names)))
  for _, value in ipairs(part) do table.insert(stored, value) end
end
local bodies, stamps = {}, {}
for j, name in ipairs(names) do
  if tonumber(stored[j] or '0') <= minute then
    table.insert(bodies, name)
    table.insert(bodies, ARGV[3 + 2 * j])
    table.insert(stamps, name)
    table.insert(stamps, minute)
  end
end
hset_all(snapshots, bodies)
hset_all(minutes, stamps)
return #bodies / 2
"""


def snapshots_build(*, result: ShardIndicators) -> dict[str, bytes]:
    """symbol -> the JSON body of GET /api/metrics/{symbol} (docs/api.md), nulls where a value is unknown."""
    stacked = np.stack([result.values[name] for name in SNAPSHOT_FIELDS], axis=-1)  # (timeframes, n, fields)
    per_symbol = np.moveaxis(stacked, 1, 0).tolist()  # n x timeframes x fields, NaN kept (orjson writes null)
    trades_at = SNAPSHOT_FIELDS.index("trades")
    timestamp = iso_utc_seconds(result.minute_ms + MINUTE_MS)
    out = {}
    for symbol, rows in zip(result.symbols, per_symbol, strict=True):
        timeframes = {}
        for timeframe, row in zip(SCREENER_TIMEFRAMES, rows, strict=True):
            entry = dict(zip(SNAPSHOT_FIELDS, row, strict=True))
            trades = row[trades_at]
            entry["trades"] = None if trades != trades else int(trades)
            timeframes[timeframe] = entry
        out[symbol] = orjson.dumps({"symbol": symbol, "timestamp": timestamp, "timeframes": timeframes})
    return out


def snapshot_write(client: redis_lib.Redis, *, result: ShardIndicators) -> int:
    """Store the latest snapshot of each symbol in snapshot_key() (one round trip); returns how many were newer."""
    args: list[object] = [snapshot_key(), snapshot_minute_key(), result.minute_ms]
    for symbol, body in snapshots_build(result=result).items():
        args += [symbol, body]
    return int(client.eval(_SNAPSHOT_SCRIPT, 0, *args))


def shard_indicators_run(
    client: redis_lib.Redis,
    *,
    minute_ms: int,
    symbols: Sequence[str],
    block: np.ndarray | None = None,
    metrics: dict[str, np.ndarray] | None = None,
    bars: ShardBars | None = None,
    observe: Callable[[str, float], None] | None = None,
) -> dict[str, float]:
    """The whole indicators stage of one shard at minute t; returns milliseconds per stage.

    The shard tick passes the 1m block and window metrics it already has, which saves reading the block again, and
    the bars its rules computed indicators from, if any.
    """
    result = shard_indicators_compute(
        client, minute_ms=minute_ms, symbols=symbols, block=block, metrics=metrics, bars=bars
    )
    timings = result.timings
    # The snapshot first: the API reads it, and it is the cheapest write; the database row is the record.
    with stage("snapshot", timings):
        snapshot_write(client, result=result)
    with stage("bars_roll", timings):
        bars_roll(client, symbols=result.symbols, bars=result.rolled)
        bars_missed_roll(client, symbols=result.symbols, from_block=result.from_block, minute_ms=minute_ms)
    with stage("database", timings):
        metrics_calculated_upsert(result=result)
    client.set(indicators_last_key(), orjson.dumps({"minute_ms": minute_ms, "finished_ms": now_ms()}))
    if observe is not None:
        for name, ms in timings.items():
            observe(name, ms)
    return timings
