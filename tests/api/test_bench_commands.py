"""The benchmark commands run end to end against a real daphne and print one JSON object last."""

from __future__ import annotations

import io
import json

import httpx
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from apps.api.bench import daphne_running
from apps.collector.models import Symbol
from tests.e2e.processes import free_port

# The commands start daphne: not in `./screener test --fast`.
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def child_uses_test_database(monkeypatch):
    """The daphne the command starts must read this test's database, not the configured one."""
    name = connection.settings_dict["NAME"]
    monkeypatch.setenv("DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{name}")


def last_json_line(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_bench_ws_delivers_every_alert_to_every_client(child_uses_test_database):
    out = io.StringIO()
    port = str(free_port())
    call_command("bench_ws", "--clients", "20", "--alerts", "5", "--interval", "0.05", "--port", port, stdout=out)
    figures = last_json_line(out.getvalue())
    assert figures["connected"] == 20 and figures["alerts"] == 5
    assert figures["missing_receipts"] == 0 and figures["alerts_reaching_every_client"] == 5
    assert figures["every_client_p99_ms"] >= figures["every_client_p50_ms"] > 0


def test_bench_ws_can_serve_the_stock_fanout_for_comparison(child_uses_test_database):
    out = io.StringIO()
    call_command("bench_ws", "--stock", "--clients", "5", "--alerts", "3", "--port", str(free_port()), stdout=out)
    figures = last_json_line(out.getvalue())
    assert figures["fanout"] == "stock_group_per_consumer" and figures["missing_receipts"] == 0


def test_bench_api_reports_percentiles_without_errors(child_uses_test_database):
    Symbol.objects.create(symbol="BTCUSDT")
    out = io.StringIO()
    call_command("bench_api", "--rate", "600", "--duration", "2", "--port", str(free_port()), stdout=out)
    figures = last_json_line(out.getvalue())
    assert figures["requests"] == 20
    assert figures["statuses"] == {"200": 20}
    assert figures["p95_ms"] >= figures["p50_ms"] > 0
    assert {"alerts", "metrics", "candles_1m", "candles_1h"} <= set(figures["by_endpoint"])


def test_the_daphne_a_benchmark_starts_keeps_serving_however_much_it_logs(child_uses_test_database):
    """Every 404 logs two lines; a minute of them once filled an unread stderr pipe and hung every request."""
    with (
        daphne_running(port=free_port(), env={"ANON_RATE_LIMIT": "1000000/minute"}) as address,
        httpx.Client(base_url=f"http://{address}", timeout=5) as client,
    ):
        statuses = {client.get(f"/api/metrics/NOSUCH{n}USDT").status_code for n in range(400)}
    assert statuses == {404}


def test_bench_api_seed_keeps_its_synthetic_snapshots_out_of_the_hot_store(child_uses_test_database, redis_client):
    out = io.StringIO()
    call_command(
        "bench_api",
        "--seed",
        "--seed-alerts",
        "50",
        "--rate",
        "600",
        "--duration",
        "2",
        "--port",
        str(free_port()),
        stdout=out,
    )
    figures = last_json_line(out.getvalue())
    assert figures["statuses"] == {"200": 20}  # the metrics of the seeded symbols were served
    assert Symbol.objects.count() == 16
    assert list(redis_client.scan_iter(match=f"{settings.REDIS_KEY_PREFIX}:*")) == []
