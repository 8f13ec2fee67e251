"""Prometheus instruments shared by web, workers and collectors.

Set PROMETHEUS_MULTIPROC_DIR in every process of a host so daphne, Celery worker children and collectors all
report through one /metrics endpoint (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TICK_STAGE_SECONDS = Histogram(
    "screener_tick_stage_seconds",
    "Duration of one stage of a shard's minute tick",
    ["stage"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
TICK_LAG_SECONDS = Histogram(
    "screener_tick_lag_seconds",
    "From the close of minute t (exchange clock) to its alerts being pushed",
    buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60),
)
ALERTS_FIRED = Counter("screener_alerts_fired_total", "Alerts fired", ["rule_type"])
WEBHOOK_DELIVERIES = Counter(
    "screener_webhook_deliveries_total", "Webhook delivery attempts by outcome", ["kind", "outcome"]
)
WS_CONNECTIONS = Gauge("screener_websocket_connections", "Open WebSocket connections", multiprocess_mode="livesum")
