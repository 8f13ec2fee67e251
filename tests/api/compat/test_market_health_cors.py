"""GET {p}/api/health (apps/api/compat/README.md) and CORS for the browser client on the compatibility surface."""

from __future__ import annotations

import json
import time

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from screener_project.kernel.redis_keys import (
    beat_heartbeat_key,
    collector_heartbeat_key,
    indicators_last_key,
    tick_last_key,
)

pytestmark = pytest.mark.django_db

P = f"/{settings.COMPAT_PREFIX}"


def signals(redis_client) -> None:
    now = int(time.time() * 1000)
    beat = {"ts_ms": now, "last_event_ms": now, "state": "live", "symbols": 4, "connections": []}
    redis_client.hset(collector_heartbeat_key(), "0", json.dumps(beat))
    for last_key in (tick_last_key(), indicators_last_key()):
        redis_client.set(last_key, json.dumps({"minute_ms": now - now % 60000, "finished_ms": now}))
    redis_client.set(beat_heartbeat_key(), json.dumps({"ts_ms": now, "sent_ms": now}))


def test_healthy_is_ok_with_the_services(redis_client):
    signals(redis_client)
    response = APIClient().get(f"{P}/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    services = ("data_collector", "metrics_calculator", "alert_engine", "database", "redis")
    assert body["services"] == {name: "up" for name in services}
    assert "timestamp" in body


def test_degraded_says_so_with_200(redis_client):
    body = APIClient().get(f"{P}/api/health/").json()
    assert body["status"] == "degraded" and body["services"]["data_collector"] == "down"


def test_unhealthy_is_503(settings):
    settings.REDIS_URL = "redis://127.0.0.1:18749/0"  # nothing listens there
    response = APIClient().get(f"{P}/api/health")
    assert response.status_code == 503 and response.json()["status"] == "unhealthy"


def test_health_ignores_a_stale_token(redis_client):
    response = APIClient().get(f"{P}/api/health", HTTP_AUTHORIZATION="Bearer expired.or.garbage")
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/api/metrics/", "/api/alerts", "/api/klines", "/api/webhooks/7/toggle"])
def test_preflight_allows_the_clients_headers_and_methods(settings, path):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    response = APIClient().options(
        f"{P}{path}",
        HTTP_ORIGIN="https://app.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="PATCH",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "https://app.example.com"
    allowed_headers = {h.strip() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed_headers
    allowed_methods = {m.strip() for m in response["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST", "PUT", "PATCH", "DELETE"} <= allowed_methods


def test_other_origins_get_no_cors_headers(settings, redis_client):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    response = APIClient().get(f"{P}/api/metrics/", HTTP_ORIGIN="https://evil.example.org")
    assert response.status_code == 200 and "Access-Control-Allow-Origin" not in response
    allowed = APIClient().get(f"{P}/api/metrics/", HTTP_ORIGIN="https://app.example.com")
    assert allowed["Access-Control-Allow-Origin"] == "https://app.example.com"
