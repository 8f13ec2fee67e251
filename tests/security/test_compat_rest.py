"""Bad input on the compatibility surface's REST API: each answered with the exact 4xx naming the problem, nothing
changed, and the surface still serving other clients afterwards."""

from __future__ import annotations

import time

import jwt
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from apps.alerts.services import rules_builtin_seed
from apps.api.compat.models import AccountProfile
from apps.api.compat.tokens import compat_token_issue

pytestmark = pytest.mark.django_db
DEEP = "[" * 1000 + "]" * 1000
PASSWORD = "correct horse battery staple"


def prefix() -> str:
    return "/" + settings.COMPAT_PREFIX


@pytest.fixture(autouse=True)
def rules():
    rules_builtin_seed()


@pytest.fixture
def user():
    return get_user_model().objects.create_user("trader@example.com", "trader@example.com", PASSWORD)


@pytest.fixture
def api(user) -> APIClient:
    client = APIClient(REMOTE_ADDR="10.9.9.9")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {compat_token_issue(user)}")
    return client


def still_serves(user) -> None:
    other = APIClient(REMOTE_ADDR="10.8.8.8")
    login = other.post(prefix() + "/auth/login", {"email": user.email, "password": PASSWORD}, format="json")
    assert login.status_code == 200
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {login.json()['token']}")
    assert other.get(prefix() + "/api/me").status_code == 200


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ('{"email": "\\ud800", "password": "x"}', "surrogate"),
        ('{"email": "a@b.c\\u0000", "password": "x"}', "NUL"),
        (DEEP, "nested"),
        ('{"email": "a@b.c", "password": "x"', "JSON parse error"),
    ],
)
def test_login_refuses_unacceptable_json_with_400(user, body, fragment):
    response = APIClient().post(prefix() + "/auth/login", data=body, content_type="application/json")
    assert response.status_code == 400
    assert fragment in str(response.json())
    still_serves(user)


def test_login_with_a_long_odd_email_is_401_and_throttled_per_email(user, settings):
    settings.COMPAT_LOGIN_RATE_LIMIT = "2/minute"
    email = "é" * 200 + "@example.com"
    codes = [
        APIClient(REMOTE_ADDR=f"10.0.0.{n}")
        .post(prefix() + "/auth/login", {"email": email, "password": "x"}, format="json")
        .status_code
        for n in range(3)
    ]
    assert codes == [401, 401, 429]
    still_serves(user)


@pytest.mark.parametrize(
    ("path", "method"),
    [("/api/watchlist", "put"), ("/api/watchlist", "post"), ("/api/webhooks", "post")],
)
def test_deep_json_on_account_endpoints_is_400(api, user, path, method):
    response = getattr(api, method)(prefix() + path, data=DEEP, content_type="application/json")
    assert response.status_code == 400
    assert "nested" in response.json()["detail"]
    still_serves(user)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data; boundary=x", "--x--\r\n"),
        ("application/x-www-form-urlencoded", "enabled=false"),
    ],
)
def test_rule_switch_accepts_json_only_and_changes_nothing(api, user, content_type, body):
    response = api.put(prefix() + "/api/alert-rules/futures_big_bear_60", data=body, content_type=content_type)
    assert response.status_code == 415
    assert not AccountProfile.objects.filter(user=user).exclude(disabled_rule_types=[]).exists()
    rules = {r["rule_type"]: r["enabled"] for r in api.get(prefix() + "/api/alert-rules").json()["rules"]}
    assert rules["futures_big_bear_60"] is True
    still_serves(user)


def test_rule_switch_with_an_empty_json_object_is_400_naming_enabled(api, user):
    response = api.put(prefix() + "/api/alert-rules/futures_big_bear_60", {}, format="json")
    assert response.status_code == 400
    assert "enabled" in response.json()


def _token(sub: object, key: str | None = None, **extra) -> str:
    now = int(time.time())
    # A `pwh` claim, so that the subject's checks are what refuses the token.
    claims = {
        "sub": sub,
        "iss": "screener-compat",
        "aud": "pulsaryx",
        "iat": now,
        "exp": now + 600,
        "pwh": "x",
        **extra,
    }
    return jwt.encode(claims, key or settings.COMPAT_JWT_SECRET, algorithm="HS256")


@pytest.mark.parametrize(
    ("sub", "key"),
    [
        ("abc", None),
        ("1" * 40, None),
        ("-1", None),
        ("١", None),
        ("1\x00", None),
        ("1", "insecure-development-key-change-me"),
    ],
)
@pytest.mark.parametrize("path", ["/api/me", "/api/watchlist", "/api/alert-rules"])
def test_compat_token_with_a_bad_subject_or_key_is_401(user, sub, key, path):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {_token(sub, key)}")
    response = client.get(prefix() + path)
    assert response.status_code == 401
    still_serves(user)


def test_body_over_the_upload_limit_is_413(api, user, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    response = api.put(prefix() + "/api/watchlist", {"symbols": ["BTCUSDT"] * 2000}, format="json")
    assert response.status_code == 413
    assert not AccountProfile.objects.filter(user=user).exclude(watchlist=[]).exists()
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
    still_serves(user)


@pytest.mark.parametrize("email", ["\ud800@example.com", "é" * 300, "a\x00b", " Trader@Example.com "])
def test_login_email_throttle_key_is_a_valid_cache_key_for_any_text(email):
    from django.core.cache import cache

    from apps.api.compat.account_views import LoginEmailThrottle

    class Request:
        data = {"email": email}

    key = LoginEmailThrottle().get_cache_key(Request(), None)
    assert key.startswith("throttle_compat_login_email_") and len(key) < 100
    cache.set(key, [1], 5)  # the cache accepts it
    assert cache.get(key) == [1]
    cache.delete(key)


def test_login_email_throttle_counts_an_address_whatever_its_case():
    from apps.api.compat.account_views import LoginEmailThrottle

    class Upper:
        data = {"email": " Trader@Example.com "}

    class Lower:
        data = {"email": "trader@example.com"}

    assert LoginEmailThrottle().get_cache_key(Upper(), None) == LoginEmailThrottle().get_cache_key(Lower(), None)
