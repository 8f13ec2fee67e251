"""The shard tick runs the indicators of its minute on the block it loaded, after the alerts; what it cannot run
there goes to the indicators queue."""

from __future__ import annotations

import pytest

from apps.alerts import tasks as alert_tasks
from apps.alerts.tick import shard_tick_run
from apps.collector.candles import MINUTE_MS
from apps.metrics.models import MetricsCalculated
from apps.metrics.selectors import snapshot_read
from apps.metrics.services import minute_time
from apps.metrics.tasks import shard_indicators
from screener_project.kernel.redis_keys import shard_last_minute_key
from screener_project.kernel.timeframes import SCREENER_TIMEFRAMES

from .conftest import SYMBOLS
from .test_services import prepared  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db


def _rows(minute_ms: int) -> dict[tuple[str, str], dict]:
    query = MetricsCalculated.objects.filter(time=minute_time(minute_ms)).values()
    return {(row["symbol"], row["timeframe"]): row for row in query}


def test_the_shard_task_writes_its_minute_without_a_second_task(redis_client, prepared, monkeypatch):  # noqa: F811
    end_ms = prepared
    loads = []
    import apps.metrics.services as services

    original = services.candles_matrix
    monkeypatch.setattr(services, "candles_matrix", lambda *a, **k: loads.append(1) or original(*a, **k))
    enqueued = []
    monkeypatch.setattr(alert_tasks, "_enqueue_indicators", lambda *args: enqueued.append(args))
    redis_client.set(shard_last_minute_key(0), end_ms - MINUTE_MS)
    alert_tasks.shard_tick(minute_ms=end_ms, shard=0, symbols=SYMBOLS, received_ms=end_ms + MINUTE_MS)
    assert enqueued == [] and loads == []  # the block of the alerts was reused
    in_task = _rows(end_ms)
    assert len(in_task) == len(SYMBOLS) * len(SCREENER_TIMEFRAMES)
    assert set(snapshot_read(redis_client, symbols=SYMBOLS)) == set(SYMBOLS)
    # The same rows as the indicators task computes on its own load of the block.
    MetricsCalculated.objects.all().delete()
    shard_indicators(minute_ms=end_ms, symbols=SYMBOLS)
    assert _rows(end_ms) == in_task


def test_a_catch_up_sends_older_minutes_and_a_failure_to_the_queue(redis_client, prepared):  # noqa: F811
    end_ms = prepared
    redis_client.set(shard_last_minute_key(0), end_ms - 3 * MINUTE_MS)
    ran, enqueued = [], []
    shard_tick_run(
        redis_client,
        minute_ms=end_ms,
        shard=0,
        symbols=SYMBOLS,
        received_ms=end_ms + MINUTE_MS,
        enqueue_indicators=lambda minute, symbols: enqueued.append(minute),
        indicators=lambda minute, symbols, block, metrics, bars: ran.append((minute, block.shape, len(metrics))),
    )
    assert enqueued == [end_ms - 2 * MINUTE_MS, end_ms - MINUTE_MS]
    assert [minute for minute, _, _ in ran] == [end_ms]
    assert ran[0][1][1] == len(SYMBOLS)

    def broken(*args):
        raise ConnectionError("database away")

    enqueued.clear()
    shard_tick_run(
        redis_client,
        minute_ms=end_ms + MINUTE_MS,
        shard=0,
        symbols=SYMBOLS,
        received_ms=end_ms + 2 * MINUTE_MS,
        enqueue_indicators=lambda minute, symbols: enqueued.append(minute),
        indicators=broken,
    )
    assert enqueued == [end_ms + MINUTE_MS]
    assert redis_client.get(shard_last_minute_key(0)) == str(end_ms + MINUTE_MS).encode()
