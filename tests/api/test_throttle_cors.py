"""Anonymous rate limit through the shared Redis cache; CORS for configured origins."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from .conftest import make_token

pytestmark = pytest.mark.django_db


def test_anonymous_limit_per_ip_gives_429_with_retry_after(settings, redis_client):
    settings.ANON_RATE_LIMIT = "5/minute"
    api = APIClient(REMOTE_ADDR="10.0.0.1")
    codes = [api.get("/api/symbols").status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    blocked = api.get("/api/symbols")
    assert blocked.status_code == 429 and 0 < int(blocked["Retry-After"]) <= 60
    # The counter lives in the shared Redis cache, so every web process sees it.
    assert list(redis_client.scan_iter(match=settings.REDIS_KEY_PREFIX + ":cache:*throttle_anon*"))
    # Another address has its own budget; a spoofed X-Forwarded-For does not buy a new one.
    assert APIClient(REMOTE_ADDR="10.0.0.2").get("/api/symbols").status_code == 200
    assert api.get("/api/symbols", HTTP_X_FORWARDED_FOR="1.2.3.4").status_code == 429


def test_health_is_never_throttled(settings):
    settings.ANON_RATE_LIMIT = "2/minute"
    api = APIClient(REMOTE_ADDR="10.0.0.3")
    assert [api.get("/api/health").status_code in (200, 503) for _ in range(5)] == [True] * 5


def test_signed_in_user_is_limited_per_user_not_per_ip(settings):
    settings.ANON_RATE_LIMIT = "2/minute"
    settings.USER_RATE_LIMIT = "4/minute"
    api = APIClient(REMOTE_ADDR="10.0.0.4")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(sub='heavy-user')}")
    codes = [api.get("/api/settings").status_code for _ in range(5)]
    assert codes == [200] * 4 + [429]


def test_cors_preflight_allows_configured_origin(settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    response = APIClient().options(
        "/api/alerts",
        HTTP_ORIGIN="https://app.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "authorization" in response["Access-Control-Allow-Headers"]
    simple = APIClient().get("/api/symbols", HTTP_ORIGIN="https://app.example.com")
    assert simple["Access-Control-Allow-Origin"] == "https://app.example.com"


def test_cors_ignores_other_origins(settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    response = APIClient().get("/api/symbols", HTTP_ORIGIN="https://evil.example.org")
    assert "Access-Control-Allow-Origin" not in response
