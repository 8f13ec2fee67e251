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
from screener_project.kernel.redis_keys import key
from tests.e2e.processes import wait_for
from tests.notifications.receiver import Reply

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


def worker_killed_mid_send(run: FaultRun) -> float:
    """SIGKILL the worker while a webhook request is out (the receiver holds its answer), start another; seconds
    until the alerts of that request are delivered and acknowledged."""
    sent = len(run.receiver.requests)
    run.receiver.replies = [Reply(200, stall=3.0)]
    wait_for(lambda: len(run.receiver.requests) > sent, timeout=90, what="a webhook request", group=run.group)
    alert_ids = {a["id"] for a in run.receiver.requests[sent].json()["alerts"]}
    run.kill("worker")
    run.start("worker")

    def acknowledged() -> bool:
        done = {a["id"] for r in run.receiver.requests if r.answered for a in r.json()["alerts"]}
        return alert_ids <= done

    return wait_seconds(acknowledged, timeout=120, what="the killed send to be resumed", group=run.group)


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
    """FLUSHALL under the running screener; seconds until a minute that closed after the loss is evaluated."""
    before = run.sim_status()["last_closed_open_ms"]
    run.hot.flushall()
    return wait_seconds(
        lambda: last_tick_minute(run) > before, timeout=120, what="a tick after the loss", group=run.group
    )


def collector_killed(run: FaultRun) -> float:
    """SIGKILL the collector, start it again 2 s later; seconds from the restart until a minute that closed after
    it started again is evaluated."""
    run.kill("collector")
    time.sleep(2)  # the outage itself
    run.start("collector")
    before = run.sim_status()["last_closed_open_ms"]
    return wait_seconds(
        lambda: last_tick_minute(run) > before, timeout=120, what="a tick after the restart", group=run.group
    )


def database_down(run: FaultRun) -> float:
    """PostgreSQL unreachable for 10 s (every open connection cut); seconds from its return until a minute that
    closed meanwhile is evaluated."""
    run.database.down()
    time.sleep(10)  # the outage itself
    before = run.sim_status()["last_closed_open_ms"]
    run.database.up()
    return wait_seconds(lambda: last_tick_minute(run) >= before, timeout=120, what="a tick after", group=run.group)


FAULTS = {
    "none": None,
    "worker SIGKILL at a tick": worker_killed_at_a_tick,
    "worker SIGKILL mid-send": worker_killed_mid_send,
    "beat SIGKILL": beat_killed,
    "Redis emptied": redis_emptied,
    "collector SIGKILL": collector_killed,
    "PostgreSQL down 10 s": database_down,
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
