"""Retention (docs/storage.md): keep RETENTION_HOURS of candles, metrics and alerts.

On plain PostgreSQL a periodic task deletes older rows in bounded batches (one short transaction each, so the
minute's writers never wait behind a long delete). Where TimescaleDB manages a table (a hypertable with a retention
policy), its policy drops whole chunks instead; the task then only keeps that policy's interval equal to
RETENTION_HOURS, so changing the setting is honoured by both paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from celery import shared_task
from django.conf import settings
from django.db import connection
from django.utils import timezone

from screener_project.kernel.redis_keys import collector_clock_key, redis_client
from screener_project.observability import RETENTION_ROWS_DELETED
from screener_project.timescale import retention_policy_ensure, timescale_retention_managed

logger = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RetainedTable:
    table: str
    time_column: str
    # The primary key: batches are chosen by key, which stays unambiguous on partitioned (hyper)tables.
    key: tuple[str, ...]


RETAINED_TABLES: tuple[RetainedTable, ...] = (
    RetainedTable("candles_1m", "time", ("time", "symbol")),
    RetainedTable("metrics_calculated", "time", ("time", "symbol", "timeframe")),
    RetainedTable("alert_history", "triggered_at", ("triggered_at", "symbol", "alert_type")),
)


def retention_table_purge(
    *, table: RetainedTable, cutoff: datetime, batch_size: int, max_batches: int | None = None
) -> int:
    """Delete rows of `table` older than `cutoff`, `batch_size` rows per statement; returns the rows deleted."""
    if batch_size <= 0:
        raise ValueError("batch_size must be positive")
    keys = ", ".join(table.key)
    # Oldest first, through the primary key index (time leads every key), so each batch is an index range scan.
    sql = (
        f"DELETE FROM {table.table} WHERE ({keys}) IN ("  # noqa: S608 - identifiers come from RETAINED_TABLES
        f"SELECT {keys} FROM {table.table} WHERE {table.time_column} < %s ORDER BY {table.time_column} LIMIT %s)"
    )
    deleted = 0
    batches = 0
    while max_batches is None or batches < max_batches:
        with connection.cursor() as cursor:  # autocommit: each batch is its own short transaction
            cursor.execute(sql, [cutoff, batch_size])
            count = cursor.rowcount
        deleted += count
        batches += 1
        if count < batch_size:
            break
    if deleted:
        RETENTION_ROWS_DELETED.labels(table=table.table).inc(deleted)
    return deleted


def retention_purge_run(
    *, hours: int, batch_size: int, now: datetime | None = None, max_batches: int | None = None
) -> dict[str, int | str]:
    """Apply the retention to every table: rows deleted per table, or "timescale" where a policy drops chunks."""
    if hours <= 0:
        raise ValueError("RETENTION_HOURS must be positive")
    cutoff = (now or timezone.now()) - timedelta(hours=hours)
    result: dict[str, int | str] = {}
    for table in RETAINED_TABLES:
        if timescale_retention_managed(connection, table=table.table):
            retention_policy_ensure(connection, table=table.table, hours=hours)
            result[table.table] = "timescale"
            continue
        result[table.table] = retention_table_purge(
            table=table, cutoff=cutoff, batch_size=batch_size, max_batches=max_batches
        )
    logger.info("retention purge done", cutoff=cutoff.isoformat(), retention_hours=hours, **result)
    return result


def retention_now() -> datetime:
    """The run's own clock: the exchange's time as the collector last saw it, else the wall clock.

    Live, the two agree. A replay runs on the simulator's clock (faster than the wall clock, or in the past), and
    its data must be kept for RETENTION_HOURS of that clock, not of the wall clock.
    """

    try:
        clock = redis_client().get(collector_clock_key())
    except Exception:  # Redis down: the wall clock is the only one left
        logger.warning("retention falls back to the wall clock: the exchange clock is unreadable")
        clock = None
    if clock is None:
        return timezone.now()
    return datetime.fromtimestamp(int(float(clock)) / 1000, tz=UTC)


@shared_task(name="housekeeping.retention_purge", ignore_result=True)
def retention_purge() -> dict[str, int | str]:
    # No retry: the next scheduled run picks up where this one stopped (batches are independent).
    return retention_purge_run(
        hours=settings.RETENTION_HOURS, batch_size=settings.RETENTION_BATCH_SIZE, now=retention_now()
    )
