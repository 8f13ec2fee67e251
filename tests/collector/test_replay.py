"""Replays of the bundled data through the real simulator and collector processes, against real Redis/PostgreSQL."""

from __future__ import annotations

import json
import os
import signal

import httpx
import numpy as np
import pandas as pd
import pytest

from apps.collector.candles import FIELDS, MINUTE_MS, data_files, read_csv_candles
from apps.collector.models import Candle1m
from apps.collector.store import candles_of_symbol
from screener_project.kernel.redis_keys import collector_heartbeat_key, collector_rejections_key, persist_queue_key
from tests.e2e.processes import free_port

from .processes import (
    broker_clear,
    collector_start,
    simulator_start,
    simulator_status,
    tick_messages,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

REPLAY_MINUTES = 90
VALUE_FIELDS = [f for f in FIELDS if f != "open_time"]


@pytest.fixture(scope="module")
def dataset(bundled_data_dir) -> dict[str, pd.DataFrame]:
    return {symbol: read_csv_candles(paths) for symbol, paths in data_files(bundled_data_dir).items()}


def db_frame(symbol: str) -> pd.DataFrame:
    rows = list(Candle1m.objects.filter(symbol=symbol).order_by("time").values("time", *VALUE_FIELDS))
    frame = pd.DataFrame(rows)
    frame["open_time"] = [int(t.timestamp() * 1000) for t in frame.pop("time")]
    return frame


def expected_frame(dataset, symbol: str, first_ms: int, last_ms: int) -> pd.DataFrame:
    csv = dataset[symbol]
    return csv[(csv.open_time >= first_ms) & (csv.open_time <= last_ms)].reset_index(drop=True)


def assert_database_holds_exactly(dataset, status: dict, *, min_history: int) -> None:
    """candles_1m holds, per symbol, exactly the CSV candles of one contiguous span ending at the last closed minute."""
    last = status["last_closed_open_ms"]
    for symbol in dataset:
        stored = db_frame(symbol)
        first = int(stored.open_time.min())
        assert int(stored.open_time.max()) == last, symbol
        assert first <= status["start_ms"] - min_history * MINUTE_MS, f"{symbol}: warm-up history too short"
        expected = expected_frame(dataset, symbol, first, last)
        missing = sorted(set(expected.open_time) - set(stored.open_time))
        assert not missing, f"{symbol}: {len(missing)} minutes missing, first ones {missing[:10]}"
        assert len(stored) == len(expected) == (last - first) // MINUTE_MS + 1, symbol
        assert stored.open_time.tolist() == expected.open_time.tolist(), symbol
        for field in VALUE_FIELDS:
            # Bit-exact: the simulator formats with repr(float) and every hop keeps float64.
            assert np.array_equal(stored[field].to_numpy(float), expected[field].to_numpy(float)), (symbol, field)
    assert not Candle1m.objects.exclude(symbol__in=list(dataset)).exists()


def metric(exposition: str, name: str) -> float:
    """The value of one sample line of a Prometheus text exposition (0 when absent)."""
    for line in exposition.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_replay_reaches_redis_and_candles_1m_exactly_and_ticks_every_minute(dataset, redis_client, tmp_path, settings):
    broker_clear()
    port, metrics_port = free_port(), free_port()
    sim = simulator_start(
        tmp_path,
        port,
        "--speed",
        "600",
        "--minutes",
        str(REPLAY_MINUTES),
        "--fault-malformed",
        "0.05",
        "--seed",
        "7",
        "--hold-until-connect",
    )
    collector = collector_start(tmp_path, port, "--metrics-port", str(metrics_port), "--metrics-addr", "127.0.0.1")
    try:
        collector.wait_for_log("collector ready: 16 symbols, warm-up done", 60)
        wait_until(lambda: simulator_status(port)["done"], 60, "the replay to finish", collector)
        status = simulator_status(port)
        last = status["last_closed_open_ms"]
        wait_until(
            lambda: (
                Candle1m.objects.filter(time__gte=pd.Timestamp(last, unit="ms", tz="UTC")).count() == 16
                and redis_client.xlen(persist_queue_key()) == 0
            ),
            30,
            "the last minute to reach candles_1m",
            collector,
        )

        def heartbeat() -> dict:
            return json.loads(redis_client.hget(collector_heartbeat_key(), "0") or "{}")

        # The heartbeat reports the exchange's newest event time, and the live state, within a few seconds (on a slow
        # machine the warm-up can outlast the fast replay: the heartbeat written while warming up is not the last).
        wait_until(
            lambda: (heartbeat().get("last_event_ms") or 0) >= last + MINUTE_MS and heartbeat().get("state") == "live",
            10,
            "a live heartbeat",
            collector,
        )
        beat = heartbeat()
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    finally:
        assert collector.stop() == 0, collector.log()[-3000:]  # SIGTERM stops it cleanly
        sim.stop()
    rejections = {k.decode(): int(v) for k, v in redis_client.hgetall(collector_rejections_key()).items()}

    assert_database_holds_exactly(dataset, status, min_history=1380)

    # The Redis ring holds the last CANDLE_RING_MINUTES minutes of every symbol, values equal to the file.
    ring = settings.CANDLE_RING_MINUTES
    for symbol in dataset:
        rows = candles_of_symbol(redis_client, symbol)
        expected = expected_frame(dataset, symbol, last - (ring - 1) * MINUTE_MS, last)
        assert len(rows) == ring
        assert np.array_equal(rows, expected[list(FIELDS)].to_numpy(float)), symbol

    # One tick per completed minute, each exactly once, contiguous up to the last replayed minute.
    ticks = [t["minute_ms"] for t in tick_messages()]
    assert len(ticks) == len(set(ticks))
    assert max(ticks) == last
    assert sorted(ticks) == list(range(min(ticks), last + 1, MINUTE_MS))
    assert min(ticks) <= status["start_ms"] + 2 * MINUTE_MS  # live from the first minutes of the replay on

    # Every injected malformed frame was rejected and counted by reason; none reached Redis or the database.
    assert status["stats"]["malformed"] > 0
    assert sum(rejections.values()) == status["stats"]["malformed"]
    assert set(rejections) <= {
        "malformed_json",
        "malformed",
        "non_positive_price",
        "high_below_body",
        "negative_volume",
        "bad_close_time",
        "open_time_not_on_minute",
    }
    # Prometheus has the same story: closed candles by source, rejections by reason, ticks.
    assert metric(metrics, 'collector_closed_candles_total{source="live"}') >= 16 * (REPLAY_MINUTES - 2)
    assert metric(metrics, 'collector_closed_candles_total{source="warmup"}') >= 16 * 1380
    assert metric(metrics, "collector_ticks_sent_total") == len(ticks)
    assert sum(metric(metrics, f'collector_rejections_total{{reason="{r}"}}') for r in rejections) == sum(
        rejections.values()
    )
    assert beat["symbols"] == 16 and beat["state"] == "live"
    assert [(c["state"], c["streams"]) for c in beat["connections"]] == [("open", 16)]


FAULT_REPLAY_MINUTES = int(os.environ.get("COLLECTOR_FAULT_REPLAY_MINUTES", "480"))
FAULT_REPLAY_SPEED = os.environ.get("COLLECTOR_FAULT_REPLAY_SPEED", "900")


def test_faulty_replay_with_a_sigkill_restart_still_stores_exactly_the_data_set(dataset, redis_client, tmp_path):
    """Disconnects, silence, dropped/duplicated/reordered/malformed frames, rotations, 429s and a SIGKILL."""
    broker_clear()
    port = free_port()
    minutes = FAULT_REPLAY_MINUTES
    sim = simulator_start(
        tmp_path,
        port,
        "--speed",
        FAULT_REPLAY_SPEED,
        "--minutes",
        str(minutes),
        "--hold-until-connect",
        "--seed",
        "16",
        "--fault-disconnect",
        "0.008",
        "--fault-silence",
        "0.008",
        "--fault-silence-seconds",
        "2.5",
        "--fault-drop",
        "0.01",
        "--fault-duplicate",
        "0.02",
        "--fault-out-of-order",
        "0.02",
        "--fault-malformed",
        "0.01",
        "--fault-rotate-after",
        "3",
        "--fault-429",
        "0.03",
    )
    # The first collector outlives the exchange's connection limit (3 s here): the exchange forces its rotations.
    first = collector_start(
        tmp_path,
        port,
        "--watchdog-seconds",
        "1.5",
        "--rotate-after-seconds",
        "6",
        "--reconcile-seconds",
        "1",
        name="collector-1",
    )
    second = None
    try:
        start_ms = simulator_status(port)["start_ms"]
        first.wait_for_log("collector ready", 60)
        wait_until(
            lambda: simulator_status(port)["last_closed_open_ms"] >= start_ms + minutes * 2 // 5 * MINUTE_MS,
            240,
            "40% of the replay",
            first,
        )
        assert not simulator_status(port)["done"], "the replay ended before the collector could be killed"
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL
        killed_at = simulator_status(port)["last_closed_open_ms"]
        # The exchange goes on meanwhile: the second collector has minutes to repair.
        wait_until(lambda: simulator_status(port)["last_closed_open_ms"] > killed_at, 30, "a minute closed meanwhile")
        # The second one rotates by plan before the limit, overlapping the old and new connection.
        second = collector_start(
            tmp_path,
            port,
            "--watchdog-seconds",
            "1.5",
            "--rotate-after-seconds",
            "2",
            "--reconcile-seconds",
            "1",
            name="collector-2",
        )
        second.wait_for_log("collector ready", 60)
        wait_until(lambda: simulator_status(port)["done"], 300, "the replay to finish", second)
        status = simulator_status(port)
        expected_rows = 16 * minutes
        since = pd.Timestamp(status["start_ms"], unit="ms", tz="UTC")
        wait_until(
            lambda: (
                Candle1m.objects.filter(time__gte=since).count() >= expected_rows
                and redis_client.xlen(persist_queue_key()) == 0
            ),
            # Repairs after the replay can meet the exchange's 429s and backoff; on a loaded machine this takes time.
            180,
            "every replayed candle in candles_1m",
            second,
        )
    finally:
        for process in (first, second):
            if process is not None:
                process.stop()
        sim.stop()

    assert_database_holds_exactly(dataset, status, min_history=1380)
    stats = status["stats"]
    for fault in (
        "disconnects",
        "silences",
        "dropped",
        "duplicated",
        "reordered",
        "malformed",
        "rotations",
        "rest_429",
    ):
        assert stats[fault] > 0, (fault, stats)
    log = second.log()
    assert "rotated before the 24 h limit" in log
    assert "gap of" in first.log() + log  # minutes were repaired from REST
    rejections = {k.decode(): int(v) for k, v in redis_client.hgetall(collector_rejections_key()).items()}
    assert sum(rejections.values()) > 0
    ticks = [t["minute_ms"] for t in tick_messages()]
    assert len(ticks) == len(set(ticks))  # never twice, even across the restart
    assert len(ticks) >= minutes * 0.9
