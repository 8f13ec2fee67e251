"""Celery entry point of the indicators stage. Thin: the work is in apps.metrics.services."""

from __future__ import annotations

import logging

import redis as redis_lib
from celery import shared_task
from django.db import OperationalError

from apps.collector.store import redis_client
from screener_project.observability import TICK_STAGE_SECONDS

from . import services

logger = logging.getLogger(__name__)


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
    timings = services.shard_indicators_run(redis_client(), minute_ms=minute_ms, symbols=symbols, observe=_observe)
    logger.info(
        "indicators minute %d: %d symbols, %s", minute_ms, len(symbols), {k: round(v, 2) for k, v in timings.items()}
    )
    return timings
