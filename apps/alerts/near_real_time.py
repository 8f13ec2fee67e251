"""Near-real-time mode (setting ALERTS_NEAR_REAL_TIME, off by default): evaluate the forming candle every few seconds.

Every ALERTS_NEAR_REAL_TIME_SECONDS a pass takes, per shard, the closed candles up to minute t - 1 from the ring
and the forming candle of minute t (apps.collector.store.forming_rows), shapes them exactly like a closed block
ending at t, and runs the same rules. An alert is keyed by minute t as usual, so whichever of the forming passes
or the closed tick of minute t fires first records it, and the others find the key taken: still at most one alert
per (symbol, rule, minute). A shard's minutes stay in order: the forming minute t is evaluated only once the shard's
closed tick finished t - 1, under the same per-shard lock, so the cooldown sees the same history as the tick.

Alerts fired here carry metadata source "forming"; with the mode on, live alerts can differ from a backtest of the
closed candles, which is why it is off by default.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import redis as redis_lib
from django.conf import settings
from redis.exceptions import LockError

from apps.collector.candles import MINUTE_MS
from apps.collector.store import active_symbols, candles_matrix, forming_rows
from apps.metrics.sharding import shards_split
from apps.metrics.windows import LONGEST_WINDOW
from screener_project.kernel.redis_keys import shard_last_minute_key, shard_lock_key

from .evaluation import minute_evaluate_live
from .models import AlertHistory
from .services import alerts_fire

logger = logging.getLogger(__name__)

# A forming pass never waits long for a shard busy with its closed tick: the next pass is seconds away.
LOCK_WAIT_SECONDS = 0.5
LOCK_TIMEOUT_SECONDS = 60


def forming_block(*, closed: np.ndarray, forming: np.ndarray) -> np.ndarray:
    """A (fields, symbols, minutes) block ending at minute t from one ending at t - 1 and minute t's forming rows."""
    block = np.empty_like(closed)
    block[:, :, :-1] = closed[:, :, 1:]
    block[:, :, -1] = forming
    return block


def near_real_time_shard(client: redis_lib.Redis, *, shard: int, symbols: list[str], now_ms: int) -> list[AlertHistory]:
    """Evaluate the forming minute of one shard; returns the alerts it created."""
    minute = now_ms // MINUTE_MS * MINUTE_MS
    lock = client.lock(shard_lock_key(shard), timeout=LOCK_TIMEOUT_SECONDS, blocking_timeout=LOCK_WAIT_SECONDS)
    if not lock.acquire():
        return []
    try:
        last = client.get(shard_last_minute_key(shard))
        if last is None or int(last) != minute - MINUTE_MS:
            return []  # the closed tick of t - 1 is not done (or t is already closed): keep the shard's order
        forming = forming_rows(client, symbols, minute_ms=minute)
        present = ~np.isnan(forming[0])
        if not present.any():
            return []
        closed = candles_matrix(client, symbols, end_minute_ms=minute - MINUTE_MS, length=LONGEST_WINDOW)
        # Indicators see the forming bars built from this block; reference symbols are read at the forming minute
        # as well (their closed candles and forming candle).
        evaluation, _ = minute_evaluate_live(
            client,
            minute_ms=minute,
            symbols=symbols,
            block=forming_block(closed=closed, forming=forming),
            block_load=lambda wanted: forming_block(
                closed=candles_matrix(client, wanted, end_minute_ms=minute - MINUTE_MS, length=LONGEST_WINDOW),
                forming=forming_rows(client, wanted, minute_ms=minute),
            ),
        )
        context, rules, fired = evaluation.context, evaluation.rules, evaluation.fired
        return alerts_fire(
            minute_ms=minute,
            symbols=symbols,
            fired=fired,
            context=context,
            rules=rules,
            timestamps={
                "candle_close_ms": minute + MINUTE_MS,
                "received_ms": now_ms,
                "evaluated_ms": int(time.time() * 1000),
            },
            source="forming",
        )
    finally:
        try:
            lock.release()
        except LockError:
            logger.warning("near-real-time pass of shard %d outlived its lock", shard)


def near_real_time_run(client: redis_lib.Redis, *, now_ms: int | None = None) -> list[AlertHistory]:
    """One near-real-time pass over every shard; does nothing unless ALERTS_NEAR_REAL_TIME is on."""
    if not settings.ALERTS_NEAR_REAL_TIME:
        return []
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    alerts: list[AlertHistory] = []
    for shard, symbols in enumerate(shards_split(active_symbols(client), shard_count=settings.SHARD_COUNT)):
        if symbols:
            alerts += near_real_time_shard(client, shard=shard, symbols=symbols, now_ms=now_ms)
    return alerts
