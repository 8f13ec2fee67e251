"""A fault run: the whole screener on real processes, one fault injected mid-replay, and what it cost.

Simulator (replaying the bundled data), collector, Celery worker and beat, daphne, with a WebSocket client and a
webhook receiver listening, on a redis-server of the run's own and this test's database. After the replay the run
counts, against the data file and the project's own backtest over the same minutes: candles lost or duplicated,
alerts missing, extra or duplicated, WebSocket frames and webhook deliveries missing or duplicated, and the fault's
own time to recover.

The WebSocket client reconnects and resumes like a browser (tests.e2e.test_pipeline.AlertListener), so ws_missing is
what a reconnecting browser would miss. Webhook deliveries are also checked for order (by triggered_at) and batch
size. `sim_args` pass fault options to the exchange simulator (`manage.py run_exchange_sim --help`).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pandas as pd
from django.conf import settings
from django.db import connection

from apps.alerts.backtest import backtest_run
from apps.alerts.builtin_rules import BUILTIN_RULES
from apps.alerts.engine import rules_load
from apps.alerts.models import AlertHistory, AlertRule
from apps.alerts.notifications.models import Delivery, Destination
from apps.collector.candles import MINUTE_MS
from screener_project.kernel.redis_keys import key
from tests.alerts.notifications.receiver import Receiver
from tests.collector.processes import TcpProxy
from tests.e2e.processes import BIN, ProcessGroup, free_port, http_ok, wait_for
from tests.e2e.test_pipeline import AlertListener

from .conftest import OwnRedis, beat_start, process_env, worker_start

# A day of history for the 1d window, then the bundled data's busiest stretch: with 5-minute cooldowns, alerts fire in
# each of its first 16 minutes, so a fault that comes late on a slow machine still has alerts on both sides of it.
# (Two hours earlier, none fire in minutes 6 to 9.)
REPLAY_START_HOURS = 30
SHARDS = 2


@dataclass
class FaultReport:
    fault: str
    minutes: int = 0
    candles: int = 0
    candles_lost: int = 0
    candles_duplicated: int = 0
    alerts_expected: int = 0
    alerts_missing: int = 0
    alerts_extra: int = 0
    alerts_duplicated: int = 0
    ws_missing: int = 0
    ws_duplicated: int = 0
    webhooks_missing: int = 0
    webhooks_duplicated: int = 0
    webhooks_out_of_order: int = 0
    recovery_seconds: float | None = None
    detail: dict = field(default_factory=dict)

    def line(self) -> str:
        return json.dumps({k: v for k, v in self.__dict__.items() if k != "detail"} | {"detail": self.detail})


# Minutes the replay goes on after a fault has been recovered from, and how far past its planned length a replay may
# run for that: the replay ends on a condition, not at a fixed time, so a slow machine's late fault still has minutes
# closing after it.
AFTER_FAULT_MINUTES = 3
MOST_EXTRA_MINUTES = 120


class FaultRun:
    """One replay with one fault. `fault(run)` is called once `fault_after` replayed minutes were ticked; it returns
    the seconds the screener took to recover (or None when that fault has no such measure). The replay lasts
    `minutes`, or longer: until AFTER_FAULT_MINUTES more minutes have closed after the fault returned."""

    def __init__(
        self,
        *,
        tmp_path: Path,
        frames: dict[str, pd.DataFrame],
        minutes: int,
        speed: float,
        sim_args: tuple[str, ...] = (),
        grace_seconds: float = 5.0,
    ) -> None:
        self.tmp_path = tmp_path
        self.sim_args = sim_args
        self.grace_seconds = grace_seconds
        self.listener: AlertListener | None = None
        self.report: FaultReport | None = None
        self.frames = frames
        self.minutes = minutes
        self.speed = speed
        self.redis = OwnRedis(tmp_path)
        self.sim_port, self.web_port = free_port(), free_port()
        self.group: ProcessGroup | None = None
        self.receiver: Receiver | None = None
        # Every process reaches PostgreSQL through this proxy, so that a fault can take the database away.
        self.database = TcpProxy(
            free_port(), connection.settings_dict.get("PORT") and int(connection.settings_dict["PORT"]) or 5432
        )
        self.started: dict[str, int] = {}

    # ------------------------------------------------------------------------------------------- processes
    @property
    def hot(self):
        return self.redis.client(0)

    def start(self, name: str) -> None:
        """Start (or start again) one of the screener's processes; a restart gets a log of its own."""
        assert self.group is not None
        self.started[name] = self.started.get(name, 0) + 1
        label = name if self.started[name] == 1 else f"{name}-{self.started[name]}"
        if name == "worker":
            worker_start(self.group, label, queues="ticks,shards,indicators,notifications,default")
        elif name == "beat":
            beat_start(self.group, label, self.tmp_path)
        elif name == "collector":
            self.group.manage(label, "run_collector")
        elif name == "daphne":
            self.group.start(
                label,
                str(BIN / "daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(self.web_port),
                "screener_project.asgi:application",
            )

    def kill(self, name: str) -> None:
        """SIGKILL the newest process of that name, as the OOM killer would."""
        import os
        import signal

        assert self.group is not None
        count = self.started[name]
        label = name if count == 1 else f"{name}-{count}"
        process = self.group.processes.pop(label)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def claimed_minutes(self) -> list[int]:
        return sorted(int(k.decode().rsplit(":", 1)[1]) for k in self.hot.scan_iter(key("tick", "claimed", "*")))

    def shards_at(self, minute_ms: int) -> bool:
        values = [self.hot.get(key("shard", shard, "last_minute")) for shard in range(SHARDS)]
        return all(v is not None and int(v) >= minute_ms for v in values)

    def sim_status(self) -> dict:
        return httpx.get(f"http://127.0.0.1:{self.sim_port}/sim/status", timeout=5).json()

    # ------------------------------------------------------------------------------------------- the run
    def run(self, name: str, fault: Callable[[FaultRun], float | None] | None, *, fault_after: int = 3) -> FaultReport:
        for rule in BUILTIN_RULES:
            AlertRule.objects.update_or_create(
                rule_type=rule["rule_type"], defaults={**rule, "is_builtin": True, "cooldown_minutes": 5}
            )
        receiver = self.receiver = Receiver()
        Destination.objects.create(name="fault-run", kind=Destination.Kind.WEBHOOK, url=receiver.url, secret="s")
        self.redis.start()
        self.database.up()
        env = process_env(
            DATABASE_URL=f"postgres://postgres@127.0.0.1:{self.database.listen_port}/{connection.settings_dict['NAME']}",
            TEST_REDIS_URL=self.redis.url(0),
            TEST_CELERY_BROKER_URL=self.redis.url(1),
            BINANCE_WS_BASE_URL=f"ws://127.0.0.1:{self.sim_port}",
            BINANCE_REST_BASE_URL=f"http://127.0.0.1:{self.sim_port}",
            SHARD_COUNT=str(SHARDS),
            # The grace deadline runs on the exchange's clock: grace_seconds (5 s, as live) of wall time at any speed.
            TICK_GRACE_SECONDS=str(self.grace_seconds * self.speed),
            # The replayed minutes are from the data set's past: the wall-clock retention purge (at :03, :13, ...)
            # must not delete them in the middle of a run.
            RETENTION_HOURS="1000000",
            NOTIFICATIONS_ALLOW_LOOPBACK="true",
            NOTIFICATIONS_INTERVAL_WEBHOOK="0",
        )
        self.group = ProcessGroup(env, self.tmp_path)
        listener = self.listener = AlertListener(f"ws://127.0.0.1:{self.web_port}/ws/alerts")
        report = self.report = FaultReport(fault=name)
        first_open = int(min(frame["open_time"].iloc[0] for frame in self.frames.values()))
        start_ms = first_open + REPLAY_START_HOURS * 60 * MINUTE_MS
        try:
            for process in ("daphne", "worker", "beat"):
                self.start(process)
            wait_for(lambda: http_ok(f"http://127.0.0.1:{self.web_port}/api/health"), timeout=90, what="daphne")
            listener.start()
            assert listener.connected.wait(15) and listener.error is None, listener.error
            self.group.manage(
                "simulator",
                "run_exchange_sim",
                "--port",
                str(self.sim_port),
                "--speed",
                str(self.speed),
                "--start",
                datetime.fromtimestamp(start_ms / 1000, UTC).isoformat(),
                "--minutes",
                str(self.minutes + MOST_EXTRA_MINUTES),  # the upper bound; the run ends the replay below
                "--hold-until-connect",
                *self.sim_args,
            )
            wait_for(lambda: http_ok(f"http://127.0.0.1:{self.sim_port}/sim/status"), timeout=60, what="the simulator")
            self.start("collector")
            wait_for(
                lambda: len(self.claimed_minutes()) >= fault_after,
                timeout=180 + fault_after * 60 / self.speed,
                what="ticks",
                group=self.group,
            )
            first_tick = self.claimed_minutes()[0]
            report.detail["fault_at_ms"] = int(self.sim_status()["now_ms"])
            if fault is not None:
                report.recovery_seconds = fault(self)
            newest = int(self.sim_status()["last_closed_open_ms"])
            end = max(start_ms + (self.minutes - 1) * MINUTE_MS, newest + AFTER_FAULT_MINUTES * MINUTE_MS)
            ending = httpx.get(f"http://127.0.0.1:{self.sim_port}/sim/end", params={"minute_ms": end}, timeout=5)
            ending.raise_for_status()
            to_go = (ending.json()["end_ms"] - ending.json()["now_ms"]) / 1000 / self.speed
            wait_for(lambda: self.sim_status().get("done"), timeout=max(0, to_go) + 240, what="the replay")
            sim = self.sim_status()
            last = int(sim["last_closed_open_ms"])
            report.minutes = (last - start_ms) // MINUTE_MS + 1
            report.detail["simulator"] = {k: v for k, v in sim.get("stats", {}).items() if v}
            wait_for(lambda: self.shards_at(last), timeout=180, what="the shards to reach the last minute")
            wait_for(
                lambda: not Delivery.objects.filter(status=Delivery.Status.PENDING).exists(),
                timeout=120,
                what="every webhook delivery",
            )
            # Candles wait in Redis while the database is away; the collector writes them once it is back.
            wait_for(lambda: self.hot.xlen(key("persist")) == 0, timeout=90, what="the candles to reach candles_1m")
            fired = AlertHistory.objects.count()
            wait_for(
                lambda: len({json.dumps(f["data"]["id"]) for f in listener.frames}) >= fired, timeout=20, what="ws"
            )
        finally:
            listener.stopping.set()
            self.group.stop_all()
            receiver.close()
            self.redis.stop()
            self.database.close()
        listener.join(5)
        self._logs(report)
        self._count(report, first_tick=first_tick, last=last, listener=listener, receiver=receiver)
        print(f"\nfault run: {report.line()}")
        return report

    # ------------------------------------------------------------------------------------------- counting
    def _logs(self, report: FaultReport) -> None:
        """What the processes' logs tell of the recovery paths taken: late candles evaluated again, REST repairs."""

        def count(prefix: str, pattern: str) -> int:
            return sum(
                len(re.findall(pattern, log.read_text(errors="replace")))
                for log in self.tmp_path.glob(f"{prefix}*.log")
            )

        report.detail["late_minutes_evaluated_again"] = count("worker", r"evaluated again for late")
        report.detail["gaps_repaired_from_rest"] = count("collector", r"repaired from REST")
        report.detail["ws_reconnects"] = self.listener.reconnects if self.listener else 0
        report.detail["ws_resumes"] = [
            {k: v for k, v in r.items() if k in ("type", "error", "replayed", "truncated")}
            for r in (self.listener.resumes if self.listener else [])
        ]

    def _count(self, report: FaultReport, *, first_tick: int, last: int, listener, receiver) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT symbol, (extract(epoch FROM time) * 1000)::bigint, count(*) FROM candles_1m"
                " WHERE time >= to_timestamp(%s / 1000.0) AND time <= to_timestamp(%s / 1000.0) GROUP BY 1, 2",
                [first_tick, last],
            )
            stored = {(s, int(t)): n for s, t, n in cursor.fetchall()}
        expected = {
            (symbol, int(t))
            for symbol, frame in self.frames.items()
            for t in frame["open_time"][(frame["open_time"] >= first_tick) & (frame["open_time"] <= last)]
        }
        report.candles = len(expected)
        report.candles_lost = len(expected - set(stored))
        report.candles_duplicated = sum(n - 1 for n in stored.values())

        rows = list(AlertHistory.objects.values_list("id", "symbol", "alert_type", "triggered_at"))
        fired = Counter((s, a, int(t.timestamp() * 1000) - MINUTE_MS) for _, s, a, t in rows)
        backtest = set(backtest_run(frames=self.frames, rules=rules_load(), start_ms=first_tick, end_ms=last).keys())
        in_range = {k for k in fired if first_tick <= k[2] <= last}
        report.alerts_expected = len(backtest)
        report.alerts_missing = len(backtest - in_range)
        report.alerts_extra = len(in_range - backtest)
        report.alerts_duplicated = sum(n - 1 for n in fired.values())
        fault_at = report.detail.pop("fault_at_ms", first_tick)
        report.detail["alerts_before_fault"] = sum(1 for k in in_range if k[2] + MINUTE_MS <= fault_at)
        report.detail["alerts_after_fault"] = sum(1 for k in in_range if k[2] + MINUTE_MS > fault_at)
        report.detail["missing"] = sorted(backtest - in_range)[:10]
        report.detail["extra"] = sorted(in_range - backtest)[:10]

        created = dict(AlertHistory.objects.values_list("id", "created_at"))
        created = {str(i): moment.timestamp() for i, moment in created.items()}
        ids = {str(i) for i, *_ in rows}
        frames = Counter(f["data"]["id"] for f in listener.frames)
        report.ws_missing = len(ids - set(frames))
        report.ws_duplicated = sum(n - 1 for n in frames.values())
        # Counted as a receiver that honours Idempotency-Key sees them: a request repeated under the same key (its
        # sender died before recording the answer) is one delivery; an alert under two keys is a duplicate.
        accepted_requests = sorted(
            (r for r in receiver.requests if r.answered and 200 <= r.status < 300), key=lambda r: r.at
        )
        accepted = {r.headers["Idempotency-Key"]: r.json()["alerts"] for r in accepted_requests}
        hooks = Counter(a["id"] for alerts in accepted.values() for a in alerts)
        report.webhooks_missing = len(ids - set(hooks))
        report.webhooks_duplicated = sum(n - 1 for n in hooks.values())
        report.webhooks_out_of_order = _overtaken(accepted_requests, created=created)
        sizes = [len(r.json()["alerts"]) for r in receiver.requests]
        report.detail["webhook_requests"] = len(receiver.requests)
        report.detail["webhook_batch_max"] = max(sizes, default=0)
        assert report.detail["webhook_batch_max"] <= settings.NOTIFICATIONS_BATCH_WEBHOOK, "a batch over the limit"
        # Alerts requested more than once (retries, a batch repeated after its sender died): at least once, by design.
        requested = Counter(a["id"] for r in receiver.requests for a in r.json()["alerts"])
        report.detail["webhook_alerts_requested_twice"] = sum(n - 1 for n in requested.values())


def wait_seconds(condition: Callable[[], object], *, timeout: float, what: str, group=None) -> float:
    """Seconds until `condition` holds: the measure of a recovery."""
    started = time.monotonic()
    wait_for(condition, timeout=timeout, what=what, group=group, interval=0.1)
    return round(time.monotonic() - started, 2)


def _overtaken(accepted: list, *, created: dict[str, float]) -> int:
    """Alerts a destination received after an alert of a later minute although they were waiting already: in order
    of their minute means that no alert overtakes an older one that exists. (An older minute's alert created after a
    newer one went out, by a late candle or a minute evaluated again, cannot be sent before it.)"""
    wall = time.time() - time.monotonic()  # the receiver stamps requests with this process's monotonic clock
    sent: list[tuple[str, float]] = []  # (triggered_at, the moment it was accepted) of every alert before
    overtaken = 0
    for request in accepted:
        at = request.at + wall
        for alert in request.json()["alerts"]:
            existed = created.get(alert["id"], at)
            if any(minute > alert["triggered_at"] and existed < moment for minute, moment in sent):
                overtaken += 1
            sent.append((alert["triggered_at"], at))
    return overtaken
