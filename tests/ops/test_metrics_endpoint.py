"""/metrics on a real daphne process, fed by other processes through PROMETHEUS_MULTIPROC_DIR."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO_ROOT
from tests.e2e.processes import free_port

# Starts processes (scripts, workers, daphne): not in `./screener test --fast`.
pytestmark = pytest.mark.e2e

WEB_PORT = free_port()
WORKER_METRICS_PORT = free_port()

# What a shard worker does during a tick, as far as the instruments go.
WORKER_CODE = """
import os, sys
from screener_project.observability import (
    ALERTS_FIRED, TICK_LAG_SECONDS, TICK_STAGE_SECONDS, WEBHOOK_DELIVERIES, WS_CONNECTIONS, metrics_process_dead,
)
for stage, seconds in (("load", 0.004), ("window_metrics", 0.003), ("rules", 0.0007), ("window_metrics", 0.02)):
    TICK_STAGE_SECONDS.labels(stage=stage).observe(seconds)
TICK_LAG_SECONDS.observe(1.7)
ALERTS_FIRED.labels(rule_type="pioneer_bull").inc(3)
ALERTS_FIRED.labels(rule_type="big_bear_60m").inc()
WEBHOOK_DELIVERIES.labels(kind="discord", outcome="sent").inc(2)
WEBHOOK_DELIVERIES.labels(kind="telegram", outcome="retry").inc()
WS_CONNECTIONS.inc(int(sys.argv[1]))
if sys.argv[2] == "dead":
    metrics_process_dead(pid=os.getpid())
"""


def _env(multiproc_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc_dir)
    env["DJANGO_SETTINGS_MODULE"] = "screener_project.settings.test"
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


def _series(text: str) -> dict[tuple[str, frozenset], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def _wait_for(url: str, timeout: float = 20.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, timeout=2.0)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def multiproc_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    return directory


def test_web_metrics_endpoint_exposes_every_process_series(multiproc_dir: Path):
    env = _env(multiproc_dir)
    # Two worker processes: one still running (its WebSocket gauge counts), one that has exited (it must not).
    for connections, state in ((2, "live"), (5, "dead")):
        subprocess.run([sys.executable, "-c", WORKER_CODE, str(connections), state], env=env, check=True, cwd=REPO_ROOT)

    web = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(WEB_PORT), "screener_project.asgi:application"],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        response = _wait_for(f"http://127.0.0.1:{WEB_PORT}/metrics")
    finally:
        web.terminate()
        web.wait(timeout=10)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    series = _series(response.text)
    stage = "screener_tick_stage_seconds"
    assert series[(stage + "_count", frozenset({("stage", "window_metrics")}))] == 4  # 2 per worker run
    assert series[(stage + "_sum", frozenset({("stage", "window_metrics")}))] == pytest.approx(2 * 0.023)
    assert series[(stage + "_bucket", frozenset({("stage", "rules"), ("le", "0.001")}))] == 2
    assert series[("screener_tick_lag_seconds_count", frozenset())] == 2
    assert series[("screener_alerts_fired_total", frozenset({("rule_type", "pioneer_bull")}))] == 6
    assert series[("screener_alerts_fired_total", frozenset({("rule_type", "big_bear_60m")}))] == 2
    deliveries = "screener_webhook_deliveries_total"
    assert series[(deliveries, frozenset({("kind", "discord"), ("outcome", "sent")}))] == 4
    assert series[(deliveries, frozenset({("kind", "telegram"), ("outcome", "retry")}))] == 2
    # livesum: only processes not marked dead count
    assert series[("screener_websocket_connections", frozenset())] == 2


def test_metrics_token_guards_the_endpoint(client, settings):
    settings.METRICS_TOKEN = "scrape-me"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    response = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert response.status_code == 200
    assert b"screener_alerts_fired_total" in response.content


def test_worker_metrics_server_serves_the_multiprocess_registry(multiproc_dir: Path):
    code = textwrap.dedent(
        f"""
        import time
        from screener_project.observability import ALERTS_FIRED, metrics_http_server_start
        ALERTS_FIRED.labels(rule_type="flat_8h").inc(7)
        assert metrics_http_server_start(port={WORKER_METRICS_PORT}, addr="127.0.0.1")
        assert not metrics_http_server_start(port={WORKER_METRICS_PORT}, addr="127.0.0.1")  # once per process
        print("ready", flush=True)
        time.sleep(30)
        """
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", code], env=_env(multiproc_dir), cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert worker.stdout.readline().strip() == "ready"
        response = _wait_for(f"http://127.0.0.1:{WORKER_METRICS_PORT}/metrics")
    finally:
        worker.terminate()
        worker.wait(timeout=10)
    series = _series(response.text)
    assert series[("screener_alerts_fired_total", frozenset({("rule_type", "flat_8h")}))] == 7


@pytest.fixture
def clean_broker():
    import redis as redis_lib
    from django.conf import settings

    def clear() -> None:
        client = redis_lib.Redis.from_url(settings.CELERY_BROKER_URL)
        for found in client.scan_iter(match=settings.REDIS_KEY_PREFIX + ":*", count=1000):
            client.delete(found)
        client.close()

    clear()
    yield
    clear()


@pytest.mark.django_db
def test_metrics_endpoint_shows_every_stage_of_a_real_shard_tick(client, redis_client, clean_broker):
    from apps.alerts.tasks import shard_tick

    minute_ms = 1763634420000
    stages = ("load", "window_metrics", "rules", "alerts")

    def scrape() -> dict[tuple[str, frozenset], float]:
        response = client.get("/metrics")
        assert response.status_code == 200
        return _series(response.content.decode())

    def count(series, stage: str) -> float:
        return series.get(("screener_tick_stage_seconds_count", frozenset({("stage", stage)})), 0.0)

    before = scrape()
    shard_tick.apply(
        kwargs={
            "minute_ms": minute_ms,
            "shard": 0,
            "symbols": ["BTCUSDT", "ETHUSDT"],
            "received_ms": minute_ms + 61_000,
        }
    )
    after = scrape()
    for stage in stages:
        assert count(after, stage) == count(before, stage) + 1, stage
    lag = ("screener_tick_lag_seconds_count", frozenset())
    assert after[lag] == before.get(lag, 0.0) + 1
