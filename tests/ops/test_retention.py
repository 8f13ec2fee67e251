from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from apps.alerts.housekeeping import RETAINED_TABLES, retention_purge, retention_purge_run, retention_table_purge
from apps.alerts.models import AlertHistory
from apps.collector.models import Candle1m
from apps.metrics.models import MetricsCalculated
from screener_project.celery import app as celery_app
from screener_project.kernel.redis_keys import collector_clock_key, redis_client
from screener_project.timescale import retention_policy_hours

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


def _rows_at(minutes_ago: list[int]) -> None:
    """Candles, metrics and alerts for every symbol at each of `minutes_ago` before NOW."""
    candles, metrics, alerts = [], [], []
    for ago in minutes_ago:
        t = NOW - timedelta(minutes=ago)
        for symbol in SYMBOLS:
            candles.append(
                Candle1m(time=t, symbol=symbol, open=1, high=2, low=0.5, close=1.5, volume=10, quote_volume=15)
            )
            for timeframe in ("5m", "1h"):
                metrics.append(MetricsCalculated(time=t, symbol=symbol, timeframe=timeframe, close=1.5))
            alerts.append(
                AlertHistory(
                    id=uuid.uuid4(),
                    triggered_at=t + timedelta(minutes=1),
                    symbol=symbol,
                    alert_type="pioneer_bull",
                    price=1.5,
                )
            )
    Candle1m.objects.bulk_create(candles)
    MetricsCalculated.objects.bulk_create(metrics)
    AlertHistory.objects.bulk_create(alerts)


def _timescale_installed() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")
        return cursor.fetchone()[0] == 1


def _oldest_and_count(model, column: str) -> tuple[datetime, int]:
    rows = list(model.objects.order_by(column).values_list(column, flat=True))
    return rows[0], len(rows)


@pytest.mark.django_db
def test_purge_deletes_only_rows_older_than_the_retention_in_every_table():
    hours = 48
    # 20 minutes of old rows (beyond 48 h) and 15 of recent ones, the newest old row just over the edge.
    old = [hours * 60 + 2 + i for i in range(20)]
    recent = [hours * 60 - 5 - i for i in range(15)]
    _rows_at(old + recent)

    cutoff = NOW - timedelta(hours=hours)
    # The plain-PostgreSQL path, table by table (row deletes work on hypertables too, so this runs on both).
    result = {t.table: retention_table_purge(table=t, cutoff=cutoff, batch_size=7) for t in RETAINED_TABLES}

    assert result == {
        "candles_1m": 20 * len(SYMBOLS),
        "metrics_calculated": 20 * len(SYMBOLS) * 2,
        "alert_history": 20 * len(SYMBOLS),
    }
    oldest, count = _oldest_and_count(Candle1m, "time")
    assert oldest >= cutoff and count == 15 * len(SYMBOLS)
    oldest, count = _oldest_and_count(MetricsCalculated, "time")
    assert oldest >= cutoff and count == 15 * len(SYMBOLS) * 2
    oldest, count = _oldest_and_count(AlertHistory, "triggered_at")
    assert oldest >= cutoff and count == 15 * len(SYMBOLS)


@pytest.mark.django_db
def test_purge_is_bounded_per_batch_and_resumes_on_the_next_run():
    _rows_at([3000 + i for i in range(10)])  # 30 old candles
    candles = next(t for t in RETAINED_TABLES if t.table == "candles_1m")
    cutoff = NOW - timedelta(hours=48)

    first = retention_table_purge(table=candles, cutoff=cutoff, batch_size=4, max_batches=2)
    assert first == 8
    assert Candle1m.objects.count() == 22
    # the oldest rows go first, so what remains is the newest of the old ones
    remaining_oldest = Candle1m.objects.order_by("time").values_list("time", flat=True)[0]
    assert remaining_oldest == NOW - timedelta(minutes=3000 + 7)

    rest = retention_table_purge(table=candles, cutoff=cutoff, batch_size=4)
    assert rest == 22
    assert Candle1m.objects.count() == 0


@pytest.mark.django_db
def test_purge_task_honours_retention_hours_setting(settings):
    settings.RETENTION_HOURS = 1
    settings.RETENTION_BATCH_SIZE = 3
    now = datetime.now(tz=UTC).replace(second=0, microsecond=0)
    for ago, symbol in ((30, "BTCUSDT"), (90, "ETHUSDT"), (600, "SOLUSDT")):
        Candle1m.objects.create(
            time=now - timedelta(minutes=ago), symbol=symbol, open=1, high=1, low=1, close=1, volume=0, quote_volume=0
        )

    result = retention_purge.apply().get()

    if _timescale_installed():
        # TimescaleDB drops whole chunks itself: the task keeps its policy at RETENTION_HOURS instead
        assert result["candles_1m"] == "timescale"
        assert retention_policy_hours(connection, table="candles_1m") == 1
        return
    assert result["candles_1m"] == 2
    assert list(Candle1m.objects.values_list("symbol", flat=True)) == ["BTCUSDT"]


@pytest.mark.django_db
def test_plain_postgresql_is_not_mistaken_for_timescale():
    installed = _timescale_installed()
    _rows_at([5000])
    result = retention_purge_run(hours=48, batch_size=100, now=NOW)
    expected = "timescale" if installed else len(SYMBOLS)
    assert result["candles_1m"] == expected


def test_bad_retention_settings_are_refused():
    with pytest.raises(ValueError, match="RETENTION_HOURS"):
        retention_purge_run(hours=0, batch_size=10)
    with pytest.raises(ValueError, match="batch_size"):
        retention_table_purge(table=RETAINED_TABLES[0], cutoff=NOW, batch_size=0)


def test_purge_is_registered_and_scheduled_on_the_default_queue():
    assert "housekeeping.retention_purge" in celery_app.tasks
    entries = [e for e in celery_app.conf.beat_schedule.values() if e["task"] == "housekeeping.retention_purge"]
    assert len(entries) == 1
    assert entries[0]["options"]["queue"] == "default"


@pytest.mark.django_db
def test_purge_task_follows_the_exchange_clock_of_the_run(settings):
    """A replay runs on the simulator's clock: its rows are kept for RETENTION_HOURS of that clock, whatever the wall
    clock says (here the replay is dated a year ago and would otherwise be deleted whole)."""

    settings.RETENTION_HOURS = 1
    exchange_now = datetime(2025, 11, 20, 12, 0, tzinfo=UTC)
    for ago, symbol in ((30, "BTCUSDT"), (90, "ETHUSDT")):
        Candle1m.objects.create(
            time=exchange_now - timedelta(minutes=ago),
            symbol=symbol,
            open=1,
            high=1,
            low=1,
            close=1,
            volume=0,
            quote_volume=0,
        )
    client = redis_client()
    client.set(collector_clock_key(), int(exchange_now.timestamp() * 1000))
    try:
        result = retention_purge.apply().get()
    finally:
        client.delete(collector_clock_key())
    if _timescale_installed():
        assert result["candles_1m"] == "timescale"
        return
    assert result["candles_1m"] == 1
    assert list(Candle1m.objects.values_list("symbol", flat=True)) == ["BTCUSDT"]
