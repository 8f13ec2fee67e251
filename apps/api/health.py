"""/api/health from real signals: the collector's heartbeat, the last tick, the database and Redis.

Signals in Redis (written by their services):
- `P:collector:heartbeat`: hash slice -> JSON {"ts_ms", "last_event_ms", "symbols", "state", "connections"}
- `P:tick:last`: JSON {"minute_ms", "finished_ms"} of the alert engine's newest finished tick
- `P:indicators:last`: JSON {"minute_ms", "finished_ms"} of the metrics calculator's newest pass
- `P:beat:heartbeat`: JSON {"ts_ms", "sent_ms"} written by Celery beat at every tick it schedules (details.beat)
A missing signal means "down", an old one "stale". The API cannot serve without the database or Redis, so either
being down makes the whole "unhealthy" (503); any other service not up makes it "degraded".
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections import Counter

import redis as redis_lib
from django.conf import settings
from django.db import connection
from django.utils import timezone

from apps.alerts.notifications.selectors import destinations_paused, destinations_paused_count
from screener_project.kernel.redis_keys import (
    beat_heartbeat_key,
    collector_heartbeat_key,
    indicators_last_key,
    tick_last_key,
)

logger = logging.getLogger(__name__)

UP, DOWN, STALE = "up", "down", "stale"
HEALTHY, DEGRADED, UNHEALTHY = "healthy", "degraded", "unhealthy"
SERVICES = ("data_collector", "metrics_calculator", "alert_engine", "database", "redis")
CRITICAL_SERVICES = ("database", "redis")


@functools.cache
def _probe_client(url: str) -> redis_lib.Redis:
    # Short timeouts: a health probe must answer even when Redis hangs.
    return redis_lib.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)


def _json(raw: bytes | None) -> dict | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _age_seconds(ms: object, now_ms: float) -> float | None:
    return (now_ms - float(ms)) / 1000.0 if isinstance(ms, int | float) else None


def _finished_state(signal: dict | None, *, now_ms: float, stale_after: float) -> tuple[str, dict]:
    if signal is None:
        return DOWN, {}
    age = _age_seconds(signal.get("finished_ms"), now_ms)
    detail = {"age_seconds": None if age is None else round(age, 3), "minute_ms": signal.get("minute_ms")}
    return (STALE if age is None or age > stale_after else UP), detail


def _collector_state(heartbeats: dict[bytes, bytes], *, now_ms: float) -> tuple[str, dict]:
    """Down without a running slice; stale when any slice's heartbeat is old or it is not yet (or no longer) live.

    The slices report their own stream health in `state`; their `last_event_ms` is the exchange's clock, which a
    replay on the simulator runs at any speed, so it is shown but never compared with the wall clock.
    """
    slices = {field.decode(): _json(raw) or {} for field, raw in heartbeats.items()}
    running = {name: beat for name, beat in slices.items() if beat.get("state") != "stopped"}
    if not running:
        return DOWN, {"slices": len(slices)}
    beat_ages = [_age_seconds(beat.get("ts_ms"), now_ms) for beat in running.values()]
    oldest_beat = max((age for age in beat_ages if age is not None), default=None)
    stale = (
        len(running) < len(slices)
        or None in beat_ages
        or oldest_beat > settings.HEALTH_COLLECTOR_STALE_SECONDS
        or any(beat.get("state", "live") != "live" for beat in running.values())
    )
    detail = {
        "slices": len(slices),
        "running": len(running),
        "heartbeat_age_seconds": None if oldest_beat is None else round(oldest_beat, 3),
        "states": {name: beat.get("state") for name, beat in slices.items()},
        "symbols": sum(int(beat.get("symbols") or 0) for beat in running.values()),
        "last_event_ms": max((beat.get("last_event_ms") or 0 for beat in running.values()), default=None) or None,
        # The exchange connections by state: any not "open" is reconnecting (with backoff, or its circuit open after
        # repeated failures), and says so here while the slice keeps serving its other connections.
        "connections": dict(
            Counter(
                str(connection.get("state", "open"))
                for beat in running.values()
                if isinstance(beat.get("connections"), list)
                for connection in beat["connections"]
                if isinstance(connection, dict)
            )
        ),
    }
    return (STALE if stale else UP), detail


def beat_detail(raw: bytes | None, *, now_ms: float) -> dict:
    """Beat's age: seconds since it last ran its schedule (and since it last sent a task); stale past the limit.

    Every periodic task (the grace-deadline ticks, the webhook sweep, retention) depends on beat, and a process
    that runs without scheduling is as bad as none: only the heartbeat it writes while scheduling counts.
    """
    beat = _json(raw)
    if beat is None:
        return {"state": DOWN, "age_seconds": None, "sent_age_seconds": None}
    age = _age_seconds(beat.get("ts_ms"), now_ms)
    sent_age = _age_seconds(beat.get("sent_ms"), now_ms)
    state = STALE if age is None or age > settings.HEALTH_BEAT_STALE_SECONDS else UP
    return {
        "state": state,
        "age_seconds": None if age is None else round(age, 3),
        "sent_age_seconds": None if sent_age is None else round(sent_age, 3),
    }


def _database_state() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return UP
    except Exception as exc:  # any failure to run a query means the API cannot serve
        logger.warning("Health: database unreachable: %s", exc)
        return DOWN


def _notifications_detail(*, full: bool) -> dict:
    """How many webhook destinations are paused after failing; with `full`, which ones and why (names, user ids and
    hosts: for operators only)."""
    try:
        if not full:
            return {"paused_count": destinations_paused_count()}
        paused = destinations_paused()
    except Exception as exc:  # health must answer even if this detail cannot be read
        logger.warning("Health: paused destinations unreadable: %s", exc)
        return {"paused_count": None}
    return {"paused_count": len(paused), "paused_destinations": paused}


def health_details_allowed(request) -> bool:
    """Staff signed in to the admin, or a caller presenting the metrics token, see the operators' details."""
    from screener_project.metrics_view import metrics_token_presented

    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff) or metrics_token_presented(request)


def health_report(*, full: bool = False) -> dict:
    """The health body of docs/api.md, with per-service details; `full` adds what only operators may see."""
    now_ms = time.time() * 1000.0
    services: dict[str, str] = {}
    details: dict[str, dict] = {}
    try:
        client = _probe_client(settings.REDIS_URL)
        with client.pipeline(transaction=False) as pipe:
            pipe.ping()
            pipe.hgetall(collector_heartbeat_key())
            pipe.get(tick_last_key())
            pipe.get(indicators_last_key())
            pipe.get(beat_heartbeat_key())
            _, heartbeats, tick, indicators, beat = pipe.execute()
    except redis_lib.RedisError as exc:
        logger.warning("Health: Redis unreachable: %s", exc)
        # Without Redis nothing can be said of the pipeline: report it down with Redis.
        services.update(data_collector=DOWN, metrics_calculator=DOWN, alert_engine=DOWN, redis=DOWN)
    else:
        services["data_collector"], details["data_collector"] = _collector_state(heartbeats, now_ms=now_ms)
        services["metrics_calculator"], details["metrics_calculator"] = _finished_state(
            _json(indicators), now_ms=now_ms, stale_after=settings.HEALTH_INDICATORS_STALE_SECONDS
        )
        services["alert_engine"], details["alert_engine"] = _finished_state(
            _json(tick), now_ms=now_ms, stale_after=settings.HEALTH_TICK_STALE_SECONDS
        )
        services["redis"] = UP
        details["beat"] = beat_detail(beat, now_ms=now_ms)
    services["database"] = _database_state()
    if services["database"] == UP:
        details["notifications"] = _notifications_detail(full=full)
    if any(services[name] == DOWN for name in CRITICAL_SERVICES):
        status = UNHEALTHY
    elif all(state == UP for state in services.values()) and details.get("beat", {}).get("state") == UP:
        status = HEALTHY
    else:
        status = DEGRADED
    ordered = {name: services[name] for name in SERVICES}
    return {"status": status, "services": ordered, "timestamp": timezone.now().isoformat(), "details": details}
