"""The short fault suite: the whole screener on real processes, each fault once over a few replayed minutes.

Each run prints one JSON line (candles, alerts against the backtest, WebSocket frames, webhook deliveries, recovery
seconds) and must lose nothing and duplicate nothing. REPLAY_MINUTES and SPEED set the length; the suite's long form
is the same runs with more minutes (RELIABILITY_MINUTES=90 RELIABILITY_SPEED=20).
"""

from __future__ import annotations

import json
import os
import time

import pandas as pd
import pytest

from apps.collector.candles import data_files, read_csv_candles
from apps.collector.store import key

from .harness import FaultRun, wait_seconds

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

REPLAY_MINUTES = int(os.environ.get("RELIABILITY_MINUTES", "8"))
SPEED = float(os.environ.get("RELIABILITY_SPEED", "30"))


def last_tick_minute(run: FaultRun) -> int:
    raw = run.hot.get(key("tick", "last"))
    return json.loads(raw)["minute_ms"] if raw else 0


def worker_killed_at_a_tick(run: FaultRun) -> float:
    """SIGKILL the worker as a minute's tick starts, start another; seconds until that minute is evaluated."""
    claimed = len(run.claimed_minutes())
    run.group.assert_running()
    seen = wait_seconds(lambda: len(run.claimed_minutes()) > claimed, timeout=60, what="the next tick")
    minute = run.claimed_minutes()[-1]
    assert seen >= 0
    run.kill("worker")
    run.start("worker")
    return wait_seconds(lambda: run.shards_at(minute), timeout=120, what="the killed minute", group=run.group)


def beat_killed(run: FaultRun) -> float:
    """SIGKILL beat, start another at once; seconds until the new one schedules."""
    run.kill("beat")
    restarted_ms = time.time() * 1000
    run.start("beat")

    def scheduling() -> bool:
        raw = run.hot.get(key("beat", "heartbeat"))
        return bool(raw) and (json.loads(raw).get("sent_ms") or 0) > restarted_ms

    return wait_seconds(scheduling, timeout=60, what="the new beat to schedule", group=run.group)


def redis_emptied(run: FaultRun) -> float:
    """FLUSHALL under the running screener; seconds until a minute after the loss is evaluated."""
    before = last_tick_minute(run)
    run.hot.flushall()
    return wait_seconds(
        lambda: last_tick_minute(run) > before, timeout=120, what="a tick after the loss", group=run.group
    )


def collector_killed(run: FaultRun) -> float:
    """SIGKILL the collector, start it again 2 s later; seconds until a newer minute is evaluated."""
    before = last_tick_minute(run)
    run.kill("collector")
    time.sleep(2)  # the outage itself
    run.start("collector")
    return wait_seconds(
        lambda: last_tick_minute(run) > before, timeout=120, what="a tick after the restart", group=run.group
    )


FAULTS = {
    "none": None,
    "worker SIGKILL at a tick": worker_killed_at_a_tick,
    "beat SIGKILL": beat_killed,
    "Redis emptied": redis_emptied,
    "collector SIGKILL": collector_killed,
}


@pytest.fixture(scope="module")
def frames(bundled_data_dir) -> dict[str, pd.DataFrame]:
    return {symbol: read_csv_candles(paths) for symbol, paths in data_files(bundled_data_dir).items()}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_fault_loses_and_duplicates_nothing(fault, frames, tmp_path):
    run = FaultRun(tmp_path=tmp_path, frames=frames, minutes=REPLAY_MINUTES, speed=SPEED)
    report = run.run(fault, FAULTS[fault])
    assert report.alerts_expected > 0, "the replayed stretch should produce alerts"
    losses = {
        name: getattr(report, name)
        for name in (
            "candles_lost",
            "candles_duplicated",
            "alerts_missing",
            "alerts_extra",
            "alerts_duplicated",
            "ws_missing",
            "ws_duplicated",
            "webhooks_missing",
            "webhooks_duplicated",
        )
    }
    assert losses == dict.fromkeys(losses, 0), report.line()
