"""Celery entry point of the indicators stage. Thin: the work is in apps.metrics.services."""

from __future__ import annotations

import logging

import numpy as np
import redis as redis_lib
from celery import shared_task
from django.db import OperationalError
from prometheus_client import Counter

from apps.collector.candles import MINUTE_MS
from screener_project.kernel.redis_keys import redis_client
from screener_project.observability import TICK_STAGE_SECONDS

from . import services
from .shard_bars import ShardBars

logger = logging.getLogger(__name__)


INVALID_TASKS = Counter("screener_indicator_tasks_invalid_total", "Indicator tasks ignored for bad arguments")


def _invalid_arguments(minute_ms: object, symbols: object) -> str:
    if isinstance(minute_ms, bool) or not isinstance(minute_ms, int) or minute_ms <= 0 or minute_ms % MINUTE_MS:
        return f"minute_ms must be a positive whole minute in ms, got {minute_ms!r}"
    if not isinstance(symbols, list) or not all(isinstance(s, str) and s for s in symbols):
        return "symbols must be a list of symbol names"
    return ""


def _observe(stage: str, ms: float) -> None:
    TICK_STAGE_SECONDS.labels(stage=f"indicators_{stage}").observe(ms / 1000)


# Routed to the "indicators" queue by settings.CELERY_TASK_ROUTES. A lost connection is retried a few times; a
# retry of an older minute cannot roll a snapshot back (the write keeps the newest minute).
@shared_task(
    name="metrics.shard_indicators",
    ignore_result=True,
    autoretry_for=(OperationalError, redis_lib.ConnectionError, redis_lib.TimeoutError),
    retry_backoff=1,
    max_retries=3,
)
def shard_indicators(minute_ms: int, symbols: list[str]) -> dict[str, float]:
    problem = _invalid_arguments(minute_ms, symbols)
    if problem:
        INVALID_TASKS.inc()
        logger.error("metrics.shard_indicators ignored: %s", problem)
        return {}
    timings = services.shard_indicators_run(redis_client(), minute_ms=minute_ms, symbols=symbols, observe=_observe)
    logger.info(
        "indicators minute %d: %d symbols, %s", minute_ms, len(symbols), {k: round(v, 2) for k, v in timings.items()}
    )
    return timings


def indicators_on_block(
    *,
    minute_ms: int,
    symbols: list[str],
    block: np.ndarray,
    metrics: dict[str, np.ndarray],
    bars: ShardBars | None = None,
) -> dict[str, float]:
    """The indicators stage inside the shard tick, on the 1m block and window metrics it already has (and the bars
    and indicators its rules computed, when a rule names an indicator)."""
    timings = services.shard_indicators_run(
        redis_client(),
        minute_ms=minute_ms,
        symbols=symbols,
        block=block,
        metrics=metrics,
        bars=bars,
        observe=_observe,
    )
    logger.info(
        "indicators minute %d: %d symbols, %s", minute_ms, len(symbols), {k: round(v, 2) for k, v in timings.items()}
    )
    return timings
