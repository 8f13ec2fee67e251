"""The whole pipeline as a user runs it: simulator -> collector -> Redis -> Celery tick -> PostgreSQL and WebSocket.

Every process is real (simulator, collector, Celery worker and beat, daphne), against the real PostgreSQL (this
test's database) and Redis (the test databases). Real candles are replayed fast; the test then checks that
candles_1m holds each replayed candle exactly once, and that the alerts an independent pandas reading of the
definitions (docs/) predict are exactly those in alert_history and those a WebSocket client received, none twice.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime

import httpx
import pandas as pd
import pytest
import redis as redis_lib
from django.conf import settings
from django.db import connection
from websockets.sync.client import connect

from apps.alerts.backtest import backtest_run
from apps.alerts.builtin_rules import BUILTIN_RULES
from apps.alerts.engine import rules_load
from apps.alerts.models import AlertHistory, AlertRule
from apps.collector.candles import MINUTE_MS, data_files, read_csv_candles
from apps.collector.models import Candle1m

from .oracle import INDICATOR_RULES, alert_counts, predicted_alerts, predicted_indicator_alerts
from .processes import BIN, ProcessGroup, free_port, http_ok, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

REPLAY_START_HOURS = 28  # hours after the first candle: a day of history for the 1d window, and a busy stretch
REPLAY_MINUTES = 30
SPEED = 120


def prefixed(*parts: object) -> str:
    return ":".join((settings.REDIS_KEY_PREFIX, *map(str, parts)))


class AlertListener(threading.Thread):
    """A WebSocket client of /ws/alerts that records every alert frame it receives.

    Like a browser, it reconnects when its socket drops (a restarted daphne) and resumes from the last alert it
    received (`{"type": "resume", "since": id}`, docs/api.md), so what it misses is what a reconnecting browser
    would miss. Only the first connection must succeed at once; later ones are retried until `stopping`.
    """

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.frames: list[dict] = []
        self.connected = threading.Event()
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self.reconnects = 0
        self.resumes: list[dict] = []  # the server's answers to the resumes: `resumed` or `error` frames

    def run(self) -> None:
        while not self.stopping.is_set():
            again = self.connected.is_set()
            try:
                self._listen(again=again)
            except BaseException as exc:  # noqa: BLE001 - the first connection's failure is reported by the test
                if not again and not self.connected.is_set():
                    self.error = exc
                    self.connected.set()
                    return
                self.stopping.wait(0.2)  # dropped, or the server is not back yet: try again

    def _listen(self, *, again: bool) -> None:
        """One connection: subscribe (and resume when it is a reconnection), then record until it drops."""
        with connect(self.url, open_timeout=10) as ws:
            ws.send(json.dumps({"type": "subscribe", "channels": ["alerts"]}))
            if again:
                self.reconnects += 1
                if self.frames:
                    ws.send(json.dumps({"type": "resume", "since": self.frames[-1]["data"]["id"]}))
            self.connected.set()
            while not self.stopping.is_set():
                try:
                    raw = ws.recv(timeout=0.5)
                except TimeoutError:
                    continue
                frame = json.loads(raw)
                kind = frame.get("type")
                if kind == "ping":
                    ws.send(json.dumps({"type": "pong"}))
                elif kind == "alert":
                    self.frames.append(frame)
                elif kind == "resumed" or (kind == "error" and str(frame.get("error", "")).startswith("resume")):
                    self.resumes.append(frame)


@pytest.fixture
def replay_frames(bundled_data_dir) -> dict[str, pd.DataFrame]:
    return {symbol: read_csv_candles(paths) for symbol, paths in data_files(bundled_data_dir).items()}


@pytest.fixture
def clean_redis():
    clients = [redis_lib.Redis.from_url(settings.REDIS_URL), redis_lib.Redis.from_url(settings.CELERY_BROKER_URL)]

    def clear() -> None:
        for client in clients:
            for found in client.scan_iter(match=settings.REDIS_KEY_PREFIX + ":*", count=1000):
                client.delete(found)

    clear()
    yield clients[0]
    clear()


def test_replayed_candles_reach_the_database_once_and_predicted_alerts_reach_websocket(
    replay_frames, clean_redis, tmp_path
):
    for rule in BUILTIN_RULES:
        AlertRule.objects.update_or_create(
            rule_type=rule["rule_type"], defaults={**rule, "is_builtin": True, "cooldown_minutes": 5, "enabled": True}
        )
    # Custom rules naming indicators: their bars come from the 1m ring and the bar history the collector seeds from
    # the simulator's klines at warm-up.
    for rule_type, conditions in INDICATOR_RULES.items():
        AlertRule.objects.create(
            rule_type=rule_type, name=rule_type, conditions=conditions, parameters={}, cooldown_minutes=5, enabled=True
        )
    first_open = int(min(frame["open_time"].iloc[0] for frame in replay_frames.values()))
    start_ms = first_open + REPLAY_START_HOURS * 60 * MINUTE_MS
    sim_port, web_port = free_port(), free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "screener_project.settings.test",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}",
        "TEST_REDIS_URL": settings.REDIS_URL,
        "TEST_CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "TEST_REDIS_KEY_PREFIX": settings.REDIS_KEY_PREFIX,
        "TEST_DATABASE_NAME": connection.settings_dict["NAME"],
        "BINANCE_WS_BASE_URL": f"ws://127.0.0.1:{sim_port}",
        "BINANCE_REST_BASE_URL": f"http://127.0.0.1:{sim_port}",
        "SHARD_COUNT": "2",
        # The grace deadline runs on the exchange's clock: scale it with the replay so stragglers get ~5 s of wall
        # time, as they would live, rather than the 40 ms that 5 simulated seconds last at this speed.
        "TICK_GRACE_SECONDS": str(5 * SPEED),
        "PYTHONUNBUFFERED": "1",
    }
    group = ProcessGroup(env, tmp_path)
    listener = AlertListener(f"ws://127.0.0.1:{web_port}/ws/alerts")
    try:
        group.start(
            "daphne", str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(web_port), "screener_project.asgi:application"
        )
        group.start(
            "worker",
            str(BIN / "celery"),
            "-A",
            "screener_project",
            "worker",
            "-Q",
            "ticks,shards,indicators,notifications,default",
            "--concurrency",
            "2",
            "--loglevel",
            "INFO",
        )
        group.start(
            "beat",
            str(BIN / "celery"),
            "-A",
            "screener_project",
            "beat",
            "--loglevel",
            "INFO",
            "--schedule",
            str(tmp_path / "beat-schedule"),
        )
        wait_for(lambda: http_ok(f"http://127.0.0.1:{web_port}/api/health"), timeout=60, what="daphne", group=group)
        listener.start()
        assert listener.connected.wait(15) and listener.error is None, listener.error

        start_iso = datetime.fromtimestamp(start_ms / 1000, UTC).isoformat()
        group.manage(
            "simulator",
            "run_exchange_sim",
            "--port",
            str(sim_port),
            "--speed",
            str(SPEED),
            "--start",
            start_iso,
            "--minutes",
            str(REPLAY_MINUTES),
        )
        sim_status = f"http://127.0.0.1:{sim_port}/sim/status"
        wait_for(lambda: http_ok(sim_status), timeout=60, what="the simulator", group=group)
        group.manage("collector", "run_collector")

        status = wait_for(
            lambda: (s := httpx.get(sim_status, timeout=2).json()).get("done") and s,
            timeout=REPLAY_MINUTES * 60 / SPEED + 120,
            interval=0.5,
            what="the replay",
            group=group,
        )
        last_minute = int(status["last_closed_open_ms"])

        def shards_done() -> bool:
            values = [clean_redis.get(prefixed("shard", shard, "last_minute")) for shard in range(2)]
            return all(v is not None and int(v) >= last_minute for v in values)

        wait_for(shards_done, timeout=120, interval=0.5, what="every shard to evaluate the last minute", group=group)
        ticked = sorted(
            int(k.decode().rsplit(":", 1)[1]) for k in clean_redis.scan_iter(prefixed("tick", "claimed", "*"))
        )
        wait_for(lambda: len(listener.frames) >= AlertHistory.objects.count(), timeout=20, what="WebSocket frames")
    finally:
        listener.stopping.set()
        group.stop_all()
    listener.join(5)

    # The ticked minutes are one unbroken run ending at the replay's last minute.
    assert ticked, "no minute was ever ticked"
    assert ticked == list(range(ticked[0], last_minute + 1, MINUTE_MS))
    assert len(ticked) >= REPLAY_MINUTES // 2

    # candles_1m: every replayed candle once, equal to the data file, per symbol one unbroken run up to last_minute.
    stored = pd.DataFrame.from_records(
        Candle1m.objects.values("symbol", "time", "open", "high", "low", "close", "volume", "quote_volume")
    )
    stored["open_time"] = stored["time"].map(lambda t: int(t.timestamp() * 1000))
    assert set(stored["symbol"]) == set(replay_frames)
    for symbol, frame in replay_frames.items():
        mine = stored[stored["symbol"] == symbol].sort_values("open_time")
        assert mine["open_time"].is_unique
        assert mine["open_time"].iloc[-1] == last_minute
        assert mine["open_time"].iloc[0] <= ticked[0] - 1439 * MINUTE_MS  # the 1d window was there from the start
        expected = frame[(frame["open_time"] >= mine["open_time"].iloc[0]) & (frame["open_time"] <= last_minute)]
        assert len(mine) == len(expected), symbol
        for column in ("open", "high", "low", "close", "volume", "quote_volume"):
            assert mine[column].to_list() == expected[column].to_list(), (symbol, column)

    # alert_history holds exactly the predicted alerts, those of the indicator rules with the indicators' values.
    predicted = predicted_alerts(replay_frames, first_minute_ms=ticked[0], last_minute_ms=last_minute)
    by_indicators = predicted_indicator_alerts(
        replay_frames, first_minute_ms=ticked[0], last_minute_ms=last_minute, count=settings.INDICATOR_BARS
    )
    assert by_indicators, "the replayed stretch should produce indicator alerts"
    predicted |= set(by_indicators)
    stored = {
        (a.symbol, a.alert_type, int(a.triggered_at.timestamp() * 1000) - MINUTE_MS): a
        for a in AlertHistory.objects.all()
    }
    fired = set(stored)
    print(f"ticked minutes: {len(ticked)}; alerts: {len(fired)} {alert_counts(fired)}")
    assert predicted, "the replayed stretch should produce alerts"
    # The pandas oracle reads the sixteen original rules and the indicator rules; the catalogue rules (also enabled)
    # are held to the backtest below, and to their own pandas readings in tests/alerts/test_builtin_rules_catalogue.py.
    oracle_rules = {rule["rule_type"] for rule in BUILTIN_RULES[:16]} | set(INDICATOR_RULES)
    known = {alert for alert in fired if alert[1] in oracle_rules}
    assert known == predicted, (sorted(known - predicted), sorted(predicted - known), ticked[0])
    for alert_key, values in by_indicators.items():
        metrics = stored[alert_key].metadata["metrics"]
        for label, value in values.items():
            assert metrics[label] == pytest.approx(value, rel=1e-9), (alert_key, label)

    # The backtest, run over the same data and minutes with the rules as stored, prints the same alert set.
    backtest = backtest_run(frames=replay_frames, rules=rules_load(), start_ms=ticked[0], end_ms=last_minute)
    assert backtest.keys() == fired
    assert fired - known, "the catalogue rules should fire in the replayed stretch too"

    # The WebSocket client received each of them once, in the shape of docs/api.md.
    received = [
        (
            f["data"]["symbol"],
            f["data"]["alert_type"],
            int(datetime.fromisoformat(f["data"]["triggered_at"].replace("Z", "+00:00")).timestamp() * 1000)
            - MINUTE_MS,
        )
        for f in listener.frames
    ]
    assert len(received) == len(set(received)), "an alert arrived twice"
    assert set(received) == fired
    expected_keys = {
        "id",
        "triggered_at",
        "symbol",
        "alert_type",
        "timeframe",
        "price",
        "volume",
        "change_pct",
        "metadata",
    }
    assert all(set(f["data"]) >= expected_keys for f in listener.frames)
