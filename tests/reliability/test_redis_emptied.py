"""Redis emptied under a running collector: it notices at once and rebuilds the hot state.

Real processes: the exchange simulator replaying the bundled data and the collector, on a redis-server of the
test's own. After the FLUSHALL, the candle ring of every symbol holds its whole window again (equal to the data
file), the bar history and the active symbols are back, and every minute after the loss is ticked.
"""

from __future__ import annotations

import base64
import json
import time

import numpy as np
import pandas as pd
import pytest
from django.conf import settings

from apps.collector.candles import FIELDS, MINUTE_MS, data_files, read_csv_candles
from apps.collector.store import active_symbols, candles_of_symbol
from screener_project.kernel.redis_keys import bars_key, minute_closed_key
from tests.collector.processes import Process, process_env, simulator_start, simulator_status, wait_until
from tests.e2e.processes import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

REPLAY_MINUTES = 10


def ticks_sent(broker) -> list[int]:
    prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"]
    minutes = []
    for raw in broker.lrange(prefix + "ticks", 0, -1):
        message = json.loads(raw)
        if message["headers"]["task"] == "alerts.tick":
            minutes.append(json.loads(base64.b64decode(message["body"]))[1]["minute_ms"])
    return sorted(minutes)


def test_the_collector_rebuilds_rings_and_bars_after_redis_is_emptied(own_redis, bundled_data_dir, tmp_path):
    dataset = {symbol: read_csv_candles(paths) for symbol, paths in data_files(bundled_data_dir).items()}
    port = free_port()
    hot, broker = own_redis.client(0), own_redis.client(1)
    sim = simulator_start(tmp_path, port, "--speed", "30", "--minutes", str(REPLAY_MINUTES), "--hold-until-connect")
    env = process_env(
        TEST_REDIS_URL=own_redis.url(0),
        TEST_CELERY_BROKER_URL=own_redis.url(1),
        TEST_REDIS_KEY_PREFIX=settings.REDIS_KEY_PREFIX,
        BINANCE_WS_BASE_URL=f"ws://127.0.0.1:{port}",
        BINANCE_REST_BASE_URL=f"http://127.0.0.1:{port}",
    )
    collector = Process("collector", ["run_collector"], tmp_path, env)
    try:
        collector.wait_for_log("collector ready", 90)
        start = simulator_status(port)["start_ms"]
        wait_until(lambda: simulator_status(port)["last_closed_open_ms"] >= start + 2 * MINUTE_MS, 60, "live minutes")
        before_loss = simulator_status(port)["last_closed_open_ms"]
        hot.flushall()
        emptied_at = time.monotonic()
        collector.wait_for_log("hot state rebuilt", 60)
        rebuilt_in = time.monotonic() - emptied_at
        wait_until(lambda: simulator_status(port)["done"], 120, "the replay to finish", collector)
        last = simulator_status(port)["last_closed_open_ms"]
        wait_until(
            lambda: all(candles_of_symbol(hot, s)[-1][0] == last for s in dataset), 30, "the last minute", collector
        )
    finally:
        collector.stop()
        sim.stop()
    print(f"\nRedis emptied: collector rebuilt its hot state in {rebuilt_in:.1f} s")

    assert active_symbols(hot) == sorted(dataset)
    ring = settings.CANDLE_RING_MINUTES
    for symbol, frame in dataset.items():
        rows = candles_of_symbol(hot, symbol)
        expected = frame[(frame.open_time > last - ring * MINUTE_MS) & (frame.open_time <= last)]
        assert np.array_equal(rows, expected[list(FIELDS)].to_numpy(float)), symbol
        assert hot.strlen(bars_key(symbol)) > 0, f"{symbol}: no bar history"
    # Every minute closed after the loss is ticked (those closed during the rebuild once the windows were whole).
    ticked = [m for m in ticks_sent(broker) if m > before_loss]
    assert ticked == list(range(before_loss + MINUTE_MS, last + 1, MINUTE_MS))
    assert pd.Series(ticks_sent(broker)).is_unique
    # The rebuild has the newest minutes evaluated again (marked closed), but none from before the replay's first
    # minute: those were the warm-up's history, which a start never evaluates (the loss came 2 minutes after it).
    marked = sorted(int(k.decode().rsplit(":", 1)[1]) for k in hot.scan_iter(minute_closed_key("*")))
    assert marked and marked[0] >= start, (marked[:3], start)
    assert "Redis lost the hot state" in collector.log()
