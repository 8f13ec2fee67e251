"""Prometheus instruments shared by web, workers and collectors, their exposition, and structured logging.

Set PROMETHEUS_MULTIPROC_DIR in every process of a host (or pod) so daphne, Celery worker children and collectors
all report through one registry (prometheus_client's multiprocess mode); it must be set before this module is
imported, and emptied when the pod starts (the start scripts do it).

Logs: stdlib logging and structlog both render through one formatter, JSON by default (LOG_FORMAT=console for
humans). `tick_context(tick_id)` binds the tick id to a context variable so every line logged inside a tick, by
structlog or by a plain `logging.getLogger`, carries `tick_id`.
"""

from __future__ import annotations

import contextlib
import logging
import logging.config
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess

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
RETENTION_ROWS_DELETED = Counter(
    "screener_retention_rows_deleted_total", "Rows deleted by the retention purge", ["table"]
)

# --- Prometheus exposition -------------------------------------------------------------------------------------


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir") or None


def metrics_registry() -> CollectorRegistry:
    """The registry to expose: every process's files in multiprocess mode, this process's instruments otherwise."""
    directory = multiprocess_dir()
    if directory is None:
        return REGISTRY
    registry = CollectorRegistry()
    prometheus_multiprocess.MultiProcessCollector(registry, path=directory)
    return registry


def metrics_exposition() -> tuple[bytes, str]:
    """The text exposition format of `metrics_registry()` and its content type."""
    return generate_latest(metrics_registry()), CONTENT_TYPE_LATEST


def metrics_process_dead(*, pid: int) -> None:
    """Drop a finished process's live gauges (WebSocket connections) from the multiprocess files."""
    if multiprocess_dir() is not None:
        prometheus_multiprocess.mark_process_dead(pid)


_http_server_lock = threading.Lock()
_http_server_port: int | None = None


def metrics_http_server_start(*, port: int, addr: str = "0.0.0.0") -> bool:  # noqa: S104 - scraped from the pod
    """Serve /metrics on `port` from a daemon thread (workers and collectors, which have no web server).

    Idempotent per process; returns whether a server was started by this call. port 0 disables it.
    """
    global _http_server_port
    if port <= 0:
        return False
    from prometheus_client import start_http_server

    with _http_server_lock:
        if _http_server_port is not None:
            return False
        start_http_server(port, addr=addr, registry=metrics_registry())
        _http_server_port = port
        return True


def celery_metrics_connect() -> None:
    """Wire a Celery worker: /metrics on METRICS_PORT in the parent, dead pool children removed from live gauges."""
    from celery.signals import worker_process_shutdown, worker_ready

    def on_ready(**_: Any) -> None:
        metrics_http_server_start(port=int(os.environ.get("METRICS_PORT", "0") or 0))

    def on_child_shutdown(pid: int | None = None, **_: Any) -> None:
        metrics_process_dead(pid=pid or os.getpid())

    worker_ready.connect(on_ready, weak=False)
    worker_process_shutdown.connect(on_child_shutdown, weak=False)


# --- Structured logging --------------------------------------------------------------------------------------


def tick_id_for(minute_ms: int) -> str:
    """The tick id of minute t: its open time, e.g. "2026-11-20T10:27Z"."""
    return datetime.fromtimestamp(minute_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%MZ")


@contextlib.contextmanager
def tick_context(tick_id: str, **extra: Any) -> Iterator[None]:
    """Every log line emitted inside the block (this thread or task) carries `tick_id` (and `extra`)."""
    with structlog.contextvars.bound_contextvars(tick_id=tick_id, **extra):
        yield


def celery_tick_context_connect() -> None:
    """Bind the tick id (and shard) around every Celery task called with a `minute_ms` keyword, so each line the
    tick, shard and indicator tasks log carries it without the task code doing anything."""
    from celery.signals import task_postrun, task_prerun

    tokens: dict[str, dict[str, Any]] = {}

    def on_prerun(task_id: str | None = None, task: Any = None, kwargs: dict | None = None, **_: Any) -> None:
        minute_ms = (kwargs or {}).get("minute_ms")
        if not isinstance(minute_ms, int) or task_id is None:
            return
        bound: dict[str, Any] = {"tick_id": tick_id_for(minute_ms), "task": getattr(task, "name", None)}
        if isinstance((kwargs or {}).get("shard"), int):
            bound["shard"] = kwargs["shard"]
        tokens[task_id] = structlog.contextvars.bind_contextvars(**bound)

    def on_postrun(task_id: str | None = None, **_: Any) -> None:
        token = tokens.pop(task_id, None) if task_id is not None else None
        if token is not None:
            structlog.contextvars.reset_contextvars(**token)

    task_prerun.connect(on_prerun, weak=False)
    task_postrun.connect(on_postrun, weak=False)


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
    ]


def logging_dict(
    *, log_format: str = "json", level: str = "INFO", celery_tasks_level: str = "WARNING", access_level: str = "INFO"
) -> dict[str, Any]:
    """A `logging.dictConfig` rendering every record (stdlib or structlog) as one JSON object or a console line."""
    if log_format not in ("json", "console"):
        raise ValueError(f"LOG_FORMAT must be 'json' or 'console', not {log_format!r}")
    renderer = (
        structlog.processors.JSONRenderer() if log_format == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    renderer,
                ],
                "foreign_pre_chain": _shared_processors(),
            }
        },
        "filters": {"answered_5xx": {"()": "screener_project.observability.Answered5xxFilter"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            "django.request": {"filters": ["answered_5xx"]},
            # Celery's "Task ... received" and "Task ... succeeded" lines, one each per task (most of a busy log);
            # failures are logged at ERROR by celery.app.trace whatever this says.
            "celery.worker.strategy": {"level": celery_tasks_level},
            "celery.app.trace": {"level": celery_tasks_level},
            "screener.access": {"level": access_level},
        },
    }


class Answered5xxFilter(logging.Filter):
    """A 502/503/504 a view chose to answer (a user's webhook test that failed, an unhealthy probe) is a warning: the
    server did its job. Unhandled exceptions (with a traceback) stay errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) in (502, 503, 504) and not record.exc_info:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def logging_setup(config: dict[str, Any]) -> None:
    """Django's LOGGING_CONFIG callable: configure structlog to hand its events to stdlib, then apply `config`."""
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    logging.config.dictConfig(config)
