"""bench_e2e's figures from receipts, close-frame times and the alert rows (the run itself is a heavy benchmark)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from apps.alerts.management.commands import bench_e2e
from apps.alerts.management.commands.bench_e2e import Command
from apps.collector.candles import MINUTE_MS

T = 1_800_000_000_000 // MINUTE_MS * MINUTE_MS


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def test_latencies_are_measured_from_the_close_frame_and_the_boundary_with_missing_and_silent_apart():
    boundary = T + MINUTE_MS
    stamps = {"received_ms": boundary + 110, "evaluated_ms": boundary + 120, "pushed_ms": boundary + 130}
    alerts = {("AUSDT", "r", T): stamps, ("XUSDT", "r", T): {}}
    closes = {T: {"AUSDT": boundary + 100}}  # XUSDT was silent: no closing frame
    receipts = [
        ("AUSDT", "r", iso(boundary), 0, (boundary + 150) * 1_000_000),
        ("AUSDT", "r", iso(boundary), 0, (boundary + 151) * 1_000_000),  # a duplicate
        ("AUSDT", "r", iso(boundary), 1, (boundary + 180) * 1_000_000),
        ("XUSDT", "r", iso(boundary), 0, (boundary + 7000) * 1_000_000),
        ("BUSDT", "r", iso(boundary - MINUTE_MS), 0, boundary * 1_000_000),  # outside the measured minutes
    ]
    options = {"symbols": 3, "clients": 2, "minutes": 1, "shards": 1, "concurrency": 1, "batch_ms": 100}
    figures = Command._figures(
        {**options, "close_profile": "binance"}, alerts, receipts, closes, 2, first_minute=T, last_minute=T
    )
    assert figures["alerts"] == 2 and figures["receipts"] == 3
    assert figures["missing_receipts"] == 1 and figures["duplicate_receipts"] == 1
    assert figures["close_to_receipt_max_ms"] == 80.0 and figures["close_to_receipt_p50_ms"] == 65.0
    assert figures["boundary_to_receipt_max_ms"] == 180.0
    assert figures["silent_symbol_receipts"] == 1 and figures["silent_symbol_boundary_to_receipt_p50_ms"] == 7000.0
    assert figures["close_arrival_p99_ms"] == 100.0
    assert figures["close_to_sent_p50_ms"] == 10.0 and figures["sent_to_evaluated_p50_ms"] == 10.0
    assert figures["evaluated_to_pushed_p99_ms"] == 10.0 and figures["pushed_to_receipt_p50_ms"] == 35.0


def test_the_websocket_frame_counts_are_read_from_daphnes_metrics(monkeypatch):
    """The counters as the web process exposes them (prometheus_client's own exposition), read back by path."""
    from prometheus_client import CollectorRegistry, Counter, generate_latest

    registry = CollectorRegistry()
    frames = Counter("screener_websocket_alert_frames_total", "frames", ["path"], registry=registry)
    events = Counter("screener_websocket_events_total", "events", ["event"], registry=registry)
    frames.labels("direct").inc(1500)
    frames.labels("queued").inc(12)
    events.labels("closed_slow").inc()
    events.labels("auth_ok").inc(3)
    exposition = generate_latest(registry).decode()
    asked: list[str] = []

    def get(url: str, **kwargs):
        asked.append(url)
        return httpx.Response(200, text=exposition)

    monkeypatch.setattr(bench_e2e.httpx, "get", get)
    assert bench_e2e._websocket_frames(18000) == {"direct": 1500.0, "queued": 12.0, "closed_slow": 1.0}
    assert asked == ["http://127.0.0.1:18000/metrics"]
