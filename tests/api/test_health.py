"""/api/health from the real Redis signals and database."""

from __future__ import annotations

import json
import time

import pytest
from django.db import OperationalError
from rest_framework.test import APIClient

from apps.api import health
from screener_project.kernel.redis_keys import (
    beat_heartbeat_key,
    collector_heartbeat_key,
    indicators_last_key,
    tick_last_key,
)

pytestmark = pytest.mark.django_db


def now_ms() -> int:
    return int(time.time() * 1000)


def beat(redis_client, slice_id: str, *, age: float = 1.0, state: str = "live") -> None:
    redis_client.hset(
        collector_heartbeat_key(),
        slice_id,
        json.dumps(
            {
                "ts_ms": now_ms() - int(age * 1000),
                # The exchange clock: in a fast replay it is far from the wall clock, and that must not matter.
                "last_event_ms": 1_700_000_000_000,
                "state": state,
                "symbols": 8,
                "connections": [{"streams": 8}],
            }
        ),
    )


def finished(redis_client, last_key: str, age: float = 1.0) -> None:
    stamp = now_ms() - int(age * 1000)
    redis_client.set(last_key, json.dumps({"minute_ms": stamp - stamp % 60000 - 60000, "finished_ms": stamp}))


def beat_scheduled(redis_client, *, age: float = 1.0) -> None:
    stamp = now_ms() - int(age * 1000)
    redis_client.set(beat_heartbeat_key(), json.dumps({"ts_ms": stamp, "sent_ms": stamp - 500}))


def get_health() -> tuple[int, dict]:
    response = APIClient().get("/api/health")
    return response.status_code, response.json()


def test_all_signals_fresh_is_healthy(redis_client):
    beat(redis_client, "0")
    beat(redis_client, "1")
    finished(redis_client, tick_last_key())
    finished(redis_client, indicators_last_key())
    beat_scheduled(redis_client)
    code, body = get_health()
    assert code == 200 and body["status"] == "healthy"
    assert body["services"] == {
        "data_collector": "up",
        "metrics_calculator": "up",
        "alert_engine": "up",
        "database": "up",
        "redis": "up",
    }
    assert body["details"]["data_collector"]["slices"] == 2 and body["details"]["data_collector"]["symbols"] == 16
    assert body["timestamp"].endswith("+00:00")


def test_no_pipeline_signals_is_degraded_with_services_down(redis_client):
    code, body = get_health()
    assert code == 200 and body["status"] == "degraded"
    assert body["services"]["data_collector"] == "down"
    assert body["services"]["alert_engine"] == "down" and body["services"]["metrics_calculator"] == "down"
    assert body["services"]["database"] == "up" and body["services"]["redis"] == "up"


def test_old_heartbeat_of_one_slice_is_stale(redis_client, settings):
    settings.HEALTH_COLLECTOR_STALE_SECONDS = 30
    beat(redis_client, "0")
    beat(redis_client, "1", age=45)
    finished(redis_client, tick_last_key())
    finished(redis_client, indicators_last_key())
    code, body = get_health()
    assert code == 200 and body["status"] == "degraded"
    assert body["services"]["data_collector"] == "stale"


def test_warming_up_slice_is_stale_and_stopped_slices_are_down(redis_client):
    beat(redis_client, "0", state="warming_up")
    assert get_health()[1]["services"]["data_collector"] == "stale"
    beat(redis_client, "0", state="stopped")
    assert get_health()[1]["services"]["data_collector"] == "down"
    beat(redis_client, "1")
    # One slice of two stopped: part of the universe is not collected.
    assert get_health()[1]["services"]["data_collector"] == "stale"


def test_old_tick_and_indicators_are_stale(redis_client, settings):
    settings.HEALTH_TICK_STALE_SECONDS = 150
    settings.HEALTH_INDICATORS_STALE_SECONDS = 300
    beat(redis_client, "0")
    finished(redis_client, tick_last_key(), age=200)
    finished(redis_client, indicators_last_key(), age=100)
    code, body = get_health()
    assert body["services"]["alert_engine"] == "stale" and body["services"]["metrics_calculator"] == "up"
    finished(redis_client, indicators_last_key(), age=400)
    assert get_health()[1]["services"]["metrics_calculator"] == "stale"


def test_unreadable_signal_is_not_a_crash(redis_client):
    redis_client.set(tick_last_key(), b"\xff not json")
    redis_client.hset(collector_heartbeat_key(), "0", b"[]")
    code, body = get_health()
    assert code == 200
    assert body["services"]["alert_engine"] == "down" and body["services"]["data_collector"] == "stale"


def test_redis_unreachable_is_unhealthy_503(settings):
    settings.REDIS_URL = "redis://127.0.0.1:18499/0"  # nothing listens there
    code, body = get_health()
    assert code == 503 and body["status"] == "unhealthy"
    assert body["services"]["redis"] == "down" and body["services"]["database"] == "up"


def test_database_unreachable_is_unhealthy_503(redis_client, monkeypatch):
    class Unreachable:
        def cursor(self):
            raise OperationalError("connection refused")

    monkeypatch.setattr(health, "connection", Unreachable())
    beat(redis_client, "0")
    code, body = get_health()
    assert code == 503 and body["status"] == "unhealthy" and body["services"]["database"] == "down"


def test_paused_webhook_destinations_are_counted_for_anyone_and_listed_for_operators(redis_client, settings):
    from django.contrib.auth import get_user_model
    from django.utils import timezone
    from rest_framework.test import APIClient

    from apps.alerts.notifications.models import Destination

    Destination.objects.create(name="ops discord", kind="discord", url="https://discord.example/api/webhooks/1/x")
    Destination.objects.create(
        name="user 5f0c@example.com",
        kind="webhook",
        url="https://hooks.example/a",
        user_id="5f0c-supabase-id",
        paused_at=timezone.now(),
        paused_reason="HTTP 404 from 203.0.113.9",
    )
    _, body = get_health()
    assert body["details"]["notifications"] == {"paused_count": 1}
    raw = APIClient().get("/api/health").content.decode()
    assert "5f0c" not in raw and "203.0.113.9" not in raw and "hooks.example" not in raw

    staff = APIClient()
    staff.force_login(get_user_model().objects.create_user("ops", password="pw-long-enough-1", is_staff=True))
    notifications = staff.get("/api/health").json()["details"]["notifications"]
    assert notifications["paused_count"] == 1
    assert [(d["name"], d["reason"]) for d in notifications["paused_destinations"]] == [
        ("user 5f0c@example.com", "HTTP 404 from 203.0.113.9")
    ]

    settings.METRICS_TOKEN = "scrape-token-of-this-test"
    wrong = APIClient().get("/api/health", HTTP_AUTHORIZATION="Bearer nope").json()
    assert "paused_destinations" not in wrong["details"]["notifications"]
    scraper = APIClient().get("/api/health", HTTP_AUTHORIZATION="Bearer scrape-token-of-this-test").json()
    assert len(scraper["details"]["notifications"]["paused_destinations"]) == 1


def fresh_pipeline(redis_client) -> None:
    beat(redis_client, "0")
    finished(redis_client, tick_last_key())
    finished(redis_client, indicators_last_key())


def test_beat_age_is_shown_and_a_stale_beat_degrades(redis_client, settings):
    settings.HEALTH_BEAT_STALE_SECONDS = 30
    fresh_pipeline(redis_client)
    beat_scheduled(redis_client, age=2)
    code, body = get_health()
    assert body["status"] == "healthy" and body["details"]["beat"]["state"] == "up"
    assert 1.5 < body["details"]["beat"]["age_seconds"] < 10
    assert 2 < body["details"]["beat"]["sent_age_seconds"] < 10
    beat_scheduled(redis_client, age=45)
    code, body = get_health()
    assert code == 200 and body["status"] == "degraded"
    assert body["details"]["beat"]["state"] == "stale" and body["details"]["beat"]["age_seconds"] >= 45
    # Every service of the health body is still up: only beat's age says why.
    assert set(body["services"].values()) == {"up"}


def test_no_beat_heartbeat_degrades(redis_client):
    fresh_pipeline(redis_client)
    code, body = get_health()
    assert code == 200 and body["status"] == "degraded"
    assert body["details"]["beat"] == {"state": "down", "age_seconds": None, "sent_age_seconds": None}


def test_collector_connections_reconnecting_are_shown_by_state(redis_client):
    beat(redis_client, "0")
    redis_client.hset(
        collector_heartbeat_key(),
        "1",
        json.dumps(
            {
                "ts_ms": now_ms(),
                "state": "live",
                "symbols": 8,
                "connections": [{"state": "open"}, {"state": "backoff"}, {"state": "circuit_open"}],
            }
        ),
    )
    _, body = get_health()
    assert body["details"]["data_collector"]["connections"] == {"open": 2, "backoff": 1, "circuit_open": 1}


@pytest.mark.parametrize("connections", [1, "open", {"state": "open"}, [1, None, "x"]])
def test_a_heartbeat_with_connections_of_another_shape_is_still_answered(redis_client, connections):
    redis_client.hset(
        collector_heartbeat_key(),
        "0",
        json.dumps({"ts_ms": now_ms(), "state": "live", "symbols": 8, "connections": connections}),
    )
    code, body = get_health()
    assert code == 200 and body["details"]["data_collector"]["connections"] == {}
