"""The screener's Redis client and the one registry of its keys (docs/storage.md, "Redis", describes each family:
type, writer, readers, lifetime).

Every key starts with settings.REDIS_KEY_PREFIX, written `P` below. A family is one function returning its key; a Lua
script that builds keys itself receives the family's prefix (the function called with an empty last part).
"""

from __future__ import annotations

import functools

import redis as redis_lib
from django.conf import settings


@functools.cache
def _client_for(url: str) -> redis_lib.Redis:
    return redis_lib.Redis.from_url(url)


def redis_client() -> redis_lib.Redis:
    """The process's shared client of the screener's Redis (binary replies, pooled connections)."""
    return _client_for(settings.REDIS_URL)


def key(*parts: object) -> str:
    """`P:part:part...`: what the families below are built from; code names a family, not raw parts."""
    return ":".join((settings.REDIS_KEY_PREFIX, *map(str, parts)))


# --- candles and bars (the hot store) -------------------------------------------------------------------------------


def candles_ring_key(symbol: str) -> str:
    """String: the symbol's ring of CANDLE_RING_MINUTES closed 1m candles, one fixed-size row a minute."""
    return key("c1m", symbol)


def bars_key(symbol: str) -> str:
    """String: the symbol's rings of INDICATOR_BARS bars, one section per stored bar interval."""
    return key("bars", symbol)


def bars_rolled_key() -> str:
    """Hash: symbol -> newest minute whose bars the indicators stage rolled forward."""
    return key("bars_rolled")


def forming_key() -> str:
    """Hash: symbol -> its newest forming (not yet closed) candle row; near-real-time mode only."""
    return key("forming")


def latest_open_key() -> str:
    """Hash: symbol -> newest stored open time (ms)."""
    return key("latest")


def persist_queue_key() -> str:
    """Stream: candles waiting to be saved to candles_1m, removed once the database has them."""
    return key("persist")


# --- the minute: completeness, ticks, shards ------------------------------------------------------------------------


def active_symbols_key() -> str:
    """Set: the symbols being collected now."""
    return key("symbols", "active")


def minute_closed_key(minute_ms: int | str) -> str:
    """Set: the symbols whose closed candle of the minute is stored; the minute is complete when it covers
    active_symbols_key()."""
    return key("closed", minute_ms)


def collector_clock_key() -> str:
    """String: the newest exchange event time (ms) any collector saw; never moves back."""
    return key("collector", "clock")


def collector_warming_up_key(slice_id: int | str) -> str:
    """String `1` while the collector slice warms up; `"*"` gives the pattern of all slices."""
    return key("collector", "warming_up", slice_id)


def tick_claimed_key(minute_ms: int | str) -> str:
    """String: when the tick of the minute was started (`SET NX`: one start per minute)."""
    return key("tick", "claimed", minute_ms)


def tick_last_key() -> str:
    """String: JSON of the last minute a shard finished (`minute_ms`, `finished_ms`, `shard`)."""
    return key("tick", "last")


def shard_lock_key(shard: int) -> str:
    """redis-py lock of the shard: one evaluation of a shard at a time."""
    return key("shard", shard, "lock")


def shard_last_minute_key(shard: int) -> str:
    """String: the last minute the shard finished."""
    return key("shard", shard, "last_minute")


def shard_evaluated_key(shard: int, minute_ms: int, kind: str) -> str:
    """Set: the shard's symbols evaluated at the minute as they closed it, with every rule (`kind` "all") or with
    the rules reading no reference symbol ("partial"); expires after 2 hours."""
    return key("shard", shard, "evaluated", minute_ms, kind)


# --- published state ------------------------------------------------------------------------------------------------


def snapshot_key() -> str:
    """Hash: symbol -> the JSON body of GET /api/metrics/{symbol}."""
    return key("snapshot")


def snapshot_minute_key() -> str:
    """Hash: symbol -> the minute of its snapshot."""
    return key("snapshot", "minute")


def indicators_last_key() -> str:
    """String: JSON of the last indicators stage (`minute_ms`, `finished_ms`)."""
    return key("indicators", "last")


def collector_heartbeat_key() -> str:
    """Hash: collector slice -> JSON heartbeat (state, symbols, connections, stats)."""
    return key("collector", "heartbeat")


def collector_rejections_key() -> str:
    """Hash: reason -> count of frames the collector rejected."""
    return key("collector", "rejections")


def beat_heartbeat_key() -> str:
    """String: JSON of beat's last tick holding its lock (`ts_ms`, `sent_ms`, `pid`, `host`)."""
    return key("beat", "heartbeat")


def alert_pushed_key(alert_id: object) -> str:
    """String: the alert was pushed to browsers (the push sweep skips it)."""
    return key("alert", "pushed", alert_id)


# --- notifications --------------------------------------------------------------------------------------------------


def notif_lock_key(destination_id: int) -> str:
    """String: the token of the send task sending a batch to the destination."""
    return key("notif", "lock", destination_id)


def notif_next_key(destination_id: int) -> str:
    """String: earliest moment (epoch seconds) of the destination's next request."""
    return key("notif", "next", destination_id)


def notif_due_key(destination_id: int) -> str:
    """String: due time (epoch seconds) of the send task already queued for the destination."""
    return key("notif", "due", destination_id)
