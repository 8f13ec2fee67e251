"""Slices, runtime listing/delisting and a database outage, with real processes, Redis and PostgreSQL."""

from __future__ import annotations

import json

import httpx
import pandas as pd
import pytest
from django.conf import settings

from apps.collector.candles import MINUTE_MS
from apps.collector.models import Candle1m, Symbol
from apps.collector.store import active_symbols, candles_of_symbol, latest_open_times
from screener_project.kernel.redis_keys import collector_heartbeat_key, persist_queue_key
from tests.e2e.processes import free_port

from .processes import (
    Process,
    TcpProxy,
    broker_clear,
    collector_start,
    process_env,
    simulator_start,
    simulator_status,
    tick_messages,
    wait_until,
)
from .test_replay import assert_database_holds_exactly, dataset  # noqa: F401  (fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def wait_replayed(port: int, redis_client, process, minutes: int) -> dict:
    wait_until(lambda: simulator_status(port)["done"], 120, "the replay to finish", process)
    status = simulator_status(port)
    since = pd.Timestamp(status["start_ms"], unit="ms", tz="UTC")
    wait_until(
        lambda: (
            Candle1m.objects.filter(time__gte=since).count() >= 16 * minutes
            and redis_client.xlen(persist_queue_key()) == 0
        ),
        90,
        "every replayed candle in candles_1m",
        process,
    )
    return status


def test_two_slices_share_the_symbols_and_each_minute_ticks_once(dataset, redis_client, tmp_path):  # noqa: F811
    broker_clear()
    port, minutes = free_port(), 60
    sim = simulator_start(tmp_path, port, "--speed", "600", "--minutes", str(minutes), "--hold-until-connect", "2")
    slices = [
        collector_start(tmp_path, port, "--slice-index", str(i), "--slice-count", "2", name=f"slice-{i}")
        for i in range(2)
    ]
    try:
        for process in slices:
            process.wait_for_log("collector ready", 60)
        status = wait_replayed(port, redis_client, slices[0], minutes)
        beats = {k.decode(): json.loads(v) for k, v in redis_client.hgetall(collector_heartbeat_key()).items()}
    finally:
        for process in slices:
            assert process.stop() == 0
        sim.stop()
    assert_database_holds_exactly(dataset, status, min_history=1380)
    assert set(beats) == {"0", "1"}
    assert beats["0"]["symbols"] + beats["1"]["symbols"] == 16 and min(b["symbols"] for b in beats.values()) > 0
    ticks = [t["minute_ms"] for t in tick_messages()]
    assert len(ticks) == len(set(ticks))  # a minute completes once, whichever slice stored its last candle
    last = status["last_closed_open_ms"]
    assert sorted(ticks) == list(range(min(ticks), last + 1, MINUTE_MS))
    assert min(ticks) <= status["start_ms"] + 5 * MINUTE_MS


def test_symbols_listed_and_delisted_at_runtime_are_picked_up_without_a_restart(redis_client, tmp_path):
    port = free_port()
    sim = simulator_start(
        tmp_path, port, "--speed", "60", "--minutes", "600", "--unlisted", "XRPUSDT", "--hold-until-connect"
    )
    # Four streams per connection: 15 symbols take four; the listed one joins a connection with room by SUBSCRIBE.
    env = process_env(
        BINANCE_WS_BASE_URL=f"ws://127.0.0.1:{port}",
        BINANCE_REST_BASE_URL=f"http://127.0.0.1:{port}",
        STREAMS_PER_CONNECTION="4",
    )
    collector = Process("collector", ["run_collector", "--universe-refresh-seconds", "1"], tmp_path, env)
    try:
        collector.wait_for_log("collector ready: 15 symbols", 60)
        assert "XRPUSDT" not in active_symbols(redis_client)
        httpx.get(f"http://127.0.0.1:{port}/sim/list", params={"symbol": "XRPUSDT"}).raise_for_status()
        httpx.get(f"http://127.0.0.1:{port}/sim/delist", params={"symbol": "BTCUSDT"}).raise_for_status()
        wait_until(
            lambda: "XRPUSDT" in active_symbols(redis_client) and "BTCUSDT" not in active_symbols(redis_client),
            20,
            "the universe refresh",
            collector,
        )
        # The new symbol is warmed up (a full day of history) and then followed live.
        wait_until(lambda: len(candles_of_symbol(redis_client, "XRPUSDT")) >= 1440, 30, "XRPUSDT warm-up", collector)
        newest = latest_open_times(redis_client)["XRPUSDT"]
        wait_until(
            lambda: latest_open_times(redis_client)["XRPUSDT"] >= newest + 2 * MINUTE_MS,
            30,
            "live XRPUSDT candles",
            collector,
        )

        def streams_per_connection() -> list[int]:
            beat = json.loads(redis_client.hget(collector_heartbeat_key(), "0"))
            return [c["streams"] for c in beat["connections"]]

        # BTCUSDT was unsubscribed and XRPUSDT subscribed on a connection with room, none past its limit of 4.
        # (The two refreshes may see the listing and the delisting in either order.)
        wait_until(lambda: sorted(streams_per_connection()) == [3, 4, 4, 4], 30, "the new subscriptions", collector)
        subscribed = simulator_status(port)["subscribed"]
        assert "xrpusdt@kline_1m" in subscribed and "btcusdt@kline_1m" not in subscribed and len(subscribed) == 15
    finally:
        collector.stop()
        sim.stop()
    assert Symbol.objects.get(symbol="XRPUSDT").is_active
    assert not Symbol.objects.get(symbol="BTCUSDT").is_active


def test_candles_wait_in_redis_through_a_database_outage(dataset, redis_client, tmp_path):  # noqa: F811
    port, db_port = free_port(), free_port()
    proxy = TcpProxy(db_port, int(settings.DATABASES["default"]["PORT"] or 5432))
    proxy.up()
    db = settings.DATABASES["default"]
    # At most 400 minutes (80 s): the replay is ended below, 2 minutes after the database is back, so that a slow
    # warm-up never leaves too few minutes for the backlog.
    sim = simulator_start(tmp_path, port, "--speed", "300", "--minutes", "400", "--hold-until-connect")
    env = process_env(
        BINANCE_WS_BASE_URL=f"ws://127.0.0.1:{port}",
        BINANCE_REST_BASE_URL=f"http://127.0.0.1:{port}",
        DATABASE_URL=f"postgres://{db['USER'] or 'postgres'}@127.0.0.1:{db_port}/{db['NAME']}",
    )
    collector = Process("collector", ["run_collector"], tmp_path, env)
    try:
        collector.wait_for_log("collector ready", 60)
        proxy.down()
        wait_until(lambda: "persisting candles failed" in collector.log(), 30, "the persister to notice", collector)
        queued_at_outage = redis_client.xlen(persist_queue_key())
        # While the database is away, closed candles pile up in the Redis queue instead of being lost.
        wait_until(
            lambda: redis_client.xlen(persist_queue_key()) >= queued_at_outage + 16 * 20,
            60,
            f"a backlog in Redis (queued at the outage: {queued_at_outage})",
            collector,
        )
        backlog = redis_client.xlen(persist_queue_key()) - queued_at_outage
        proxy.up()
        newest = simulator_status(port)["last_closed_open_ms"]
        ending = httpx.get(f"http://127.0.0.1:{port}/sim/end", params={"minute_ms": newest + 2 * MINUTE_MS}).json()
        minutes = (ending["end_ms"] - ending["start_ms"]) // MINUTE_MS
        status = wait_replayed(port, redis_client, collector, minutes)
    finally:
        collector.stop()
        sim.stop()
        proxy.close()
    assert backlog >= 16 * 20
    assert_database_holds_exactly(dataset, status, min_history=1380)
