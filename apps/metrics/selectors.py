"""Reads of the metrics the indicators stage publishes."""

from __future__ import annotations

import orjson
import redis as redis_lib

from screener_project.kernel.redis_keys import indicators_last_key, snapshot_key

# The fields of each timeframe in a snapshot, in the order GET /api/metrics/{symbol} lists them (docs/api.md).
SNAPSHOT_FIELDS: tuple[str, ...] = (
    "open",
    "high",
    "low",
    "close",
    "volume",
    "change_pct",
    "vcp",
    "rsi_14",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_upper",
    "bb_middle",
    "bb_lower",
    "fib_pivot",
    "fib_r1",
    "fib_r2",
    "fib_r3",
    "fib_s1",
    "fib_s2",
    "fib_s3",
    "vwap",
    "trades",
    "taker_buy_ratio",
)


def snapshot_read(client: redis_lib.Redis, *, symbols: list[str] | None = None) -> dict[str, dict]:
    """symbol -> its latest snapshot (the body of GET /api/metrics/{symbol}), in one round trip.

    With `symbols`, only those (a symbol without a snapshot is absent); without, every symbol's.
    """
    if symbols is None:
        raw = client.hgetall(snapshot_key())
        return {name.decode(): orjson.loads(body) for name, body in raw.items()}
    if not symbols:
        return {}
    bodies = client.hmget(snapshot_key(), symbols)
    return {symbol: orjson.loads(body) for symbol, body in zip(symbols, bodies, strict=True) if body is not None}


def indicators_last_run(client: redis_lib.Redis) -> dict | None:
    """{"minute_ms", "finished_ms"} of the newest indicators stage that finished, or None."""
    raw = client.get(indicators_last_key())
    return orjson.loads(raw) if raw else None
