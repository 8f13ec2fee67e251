"""Celery entry points of the minute tick. Thin: the work is in apps.alerts.tick."""

from __future__ import annotations

import numpy as np
import redis as redis_lib
from celery import shared_task
from django.db import InterfaceError, OperationalError

from apps.metrics.shard_bars import ShardBars
from apps.metrics.tasks import indicators_on_block
from screener_project.kernel.redis_keys import redis_client

from . import tick


def _enqueue_shard(minute_ms: int, shard: int, symbols: list[str], received_ms: int) -> None:
    shard_tick.apply_async(
        kwargs={"minute_ms": minute_ms, "shard": shard, "symbols": symbols, "received_ms": received_ms}
    )


def _enqueue_indicators(minute_ms: int, symbols: list[str]) -> None:
    shard_tick.app.send_task("metrics.shard_indicators", kwargs={"minute_ms": minute_ms, "symbols": symbols})


def _indicators(
    minute_ms: int,
    symbols: list[str],
    block: np.ndarray,
    metrics: dict[str, np.ndarray],
    bars: ShardBars | None = None,
) -> None:
    # The indicators of the tick's own minute, on the block the shard task already read (no second load), completing
    # the bars and indicators its rules already computed, if any.
    indicators_on_block(minute_ms=minute_ms, symbols=symbols, block=block, metrics=metrics, bars=bars)


@shared_task(name="alerts.tick", ignore_result=True)
def tick_minute(minute_ms: int) -> int:
    """Minute t is complete (or past its grace deadline): fan it out to the shards, once."""
    return tick.tick_start(redis_client(), minute_ms=minute_ms, enqueue_shard=_enqueue_shard)


@shared_task(name="alerts.tick_due", ignore_result=True)
def tick_due() -> list[int]:
    """Beat, every few seconds: start the minutes whose grace deadline passed."""
    client = redis_client()
    started = []
    for minute_ms in tick.minutes_due(client):
        if tick.tick_start(client, minute_ms=minute_ms, enqueue_shard=_enqueue_shard):
            started.append(minute_ms)
    return started


# An older minute still waiting for its candles (a repair on its way) holds the shard back this many times, a second
# apart, before it is evaluated as it is; its grace deadline normally ends the wait sooner.
SHARD_WAIT_ATTEMPTS = 30


# A lost database or Redis connection fails the task before it records the minute: retried with backoff (1 s
# doubling to 30 s, for about 10 minutes), since nothing else evaluates a minute when no later tick comes.
_RETRY = {
    "autoretry_for": (OperationalError, InterfaceError, redis_lib.ConnectionError, redis_lib.TimeoutError),
    "retry_backoff": 1,
    "retry_backoff_max": 30,
    "retry_jitter": False,
    "max_retries": 25,
}


@shared_task(name="alerts.shard_tick", ignore_result=True, acks_late=True, **_RETRY)
def shard_tick(minute_ms: int, shard: int, symbols: list[str], received_ms: int, attempt: int = 0) -> list[int]:
    done = tick.shard_tick_run(
        redis_client(),
        minute_ms=minute_ms,
        shard=shard,
        symbols=symbols,
        received_ms=received_ms,
        enqueue_indicators=_enqueue_indicators,
        indicators=_indicators,
        wait_for_candles=attempt < SHARD_WAIT_ATTEMPTS,
    )
    if done[-1:] != [minute_ms] and tick.shard_minutes_pending(
        tick.shard_last_minute(redis_client(), shard), minute_ms
    ):
        kwargs = {"minute_ms": minute_ms, "shard": shard, "symbols": symbols, "received_ms": received_ms}
        shard_tick.apply_async(kwargs={**kwargs, "attempt": attempt + 1}, countdown=1)
    return done


@shared_task(name="alerts.shard_closed", ignore_result=True)
def shard_closed(minute_ms: int, shard: int, received_ms: int) -> list[str]:
    """The collector stored closed candles of minute t for symbols of this shard: evaluate those not evaluated yet.

    Not retried: whatever a lost batch would have evaluated, the shard's tick of t evaluates."""
    return tick.shard_closed_run(redis_client(), minute_ms=minute_ms, shard=shard, received_ms=received_ms)


@shared_task(name="alerts.tick_late", ignore_result=True, acks_late=True, **_RETRY)
def tick_late(minute_ms: int, symbols: list[str], received_ms: int) -> dict[int, list[str]]:
    """The collector stored candles of minute t after t was started: evaluate t again for those symbols."""
    return tick.late_candles_evaluate(redis_client(), minute_ms=minute_ms, symbols=symbols, received_ms=received_ms)


@shared_task(name="alerts.sweep_pushes", ignore_result=True)
def sweep_pushes() -> int:
    """Beat, every 10 s: push to browsers the recent alerts whose push never happened."""
    from .services import alerts_push_sweep

    return alerts_push_sweep()


@shared_task(name="alerts.near_real_time", ignore_result=True)
def near_real_time() -> int:
    """Beat, every ALERTS_NEAR_REAL_TIME_SECONDS when that mode is on: evaluate the forming candles."""
    from .near_real_time import near_real_time_run

    return len(near_real_time_run(redis_client()))
