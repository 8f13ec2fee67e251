"""Prometheus instruments of the collector (the shared ones live in screener_project.observability)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FRAMES = Counter("collector_frames_total", "WebSocket frames received", ["kind"])
CANDLES_STORED = Counter("collector_closed_candles_total", "Closed candles stored, by source", ["source"])
DUPLICATES = Counter("collector_duplicate_candles_total", "Closed candles already stored (ignored)")
REJECTIONS = Counter("collector_rejections_total", "Frames or rows rejected, by reason", ["reason"])
RECONNECTS = Counter("collector_reconnects_total", "WebSocket reconnects, by cause", ["cause"])
GAPS_REPAIRED = Counter("collector_gap_candles_repaired_total", "Missing candles filled from REST")
REST_REQUESTS = Counter(
    "collector_rest_requests_total", "REST requests, by endpoint and status", ["endpoint", "status"]
)
REST_WEIGHT = Gauge(
    "collector_rest_weight_used_1m", "REST weight used in the current minute (exchange header)", multiprocess_mode="max"
)
CLOSE_LAG = Histogram(
    "collector_close_to_event_seconds",
    "From a candle's close to the exchange event time of its closed kline",
    buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60),
)
PERSIST_BACKLOG = Gauge(
    "collector_persist_backlog", "Candles waiting in Redis for the database", multiprocess_mode="max"
)
PERSISTED = Counter("collector_persisted_candles_total", "Candles written to candles_1m (attempted inserts)")
CONNECTIONS = Gauge("collector_connections", "WebSocket connections by state", ["state"], multiprocess_mode="livesum")
HOT_STATE_REBUILDS = Counter("collector_hot_state_rebuilds_total", "Rebuilds of the rings after Redis lost them")
LATE_CANDLES = Counter(
    "collector_late_candles_total", "Candles stored after their minute was started, sent to be evaluated again"
)
TICKS_SENT = Counter("collector_ticks_sent_total", "alerts.tick tasks sent for completed minutes")
BATCHES_SENT = Counter(
    "collector_batches_sent_total", "alerts.shard_closed tasks sent for the symbols of a shard that closed a minute"
)
RECEIPT_LAG = Histogram(
    "collector_close_to_receipt_seconds",
    "From a candle's close (exchange time) to its closed kline reaching the collector (wall time); recorded only "
    "when the exchange clock is within an hour of the wall clock, so replays do not pollute it",
    buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60),
)
