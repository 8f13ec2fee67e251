"""Sign-in of the compatibility surface (its README): login, refresh, me, and what makes the client log out (401)."""

# Fixtures come from account_fixtures by import (this package keeps no conftest of its own), hence F401/F811.
# ruff: noqa: F401, F811
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.api.compat.models import AccountProfile
from apps.api.compat.tokens import compat_token_issue, compat_token_user

from .account_fixtures import PASSWORD, anon, client_of, make_user, prefix, signed_in, user

pytestmark = pytest.mark.django_db

USER_FIELDS = {
    "id",
    "email",
    "role",
    "status",
    "trial_ends_at",
    "plan",
    "plan_activated_at",
    "plan_expires_at",
    "tv_addon_active",
    "created_at",
    "last_login_at",
}


def login(client: APIClient, **body):
    return client.post(prefix() + "/auth/login", body, format="json")


def test_login_returns_the_user_and_a_token_naming_them_and_records_the_login(anon, user):
    assert user.last_login is None

    response = login(anon, email="trader@example.com", password=PASSWORD)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"user", "token"}
    assert set(body["user"]) == USER_FIELDS
    assert compat_token_user(body["token"]) == user
    user.refresh_from_db()
    assert user.last_login is not None
    assert body["user"]["last_login_at"] == user.last_login.astimezone(UTC).isoformat().replace("+00:00", "Z")
    assert body["user"]["id"] == user.pk and body["user"]["email"] == "trader@example.com"
    assert (body["user"]["role"], body["user"]["status"], body["user"]["plan"]) == ("user", "active", None)
    assert body["user"]["tv_addon_active"] is False and body["user"]["trial_ends_at"] is None


def test_login_email_is_case_insensitive(anon, user):
    assert login(anon, email="  Trader@Example.COM", password=PASSWORD).status_code == 200


def test_wrong_password_is_401_with_a_clear_message(anon, user):
    response = login(anon, email="trader@example.com", password="wrong")
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid email or password.", "detail": "Invalid email or password."}
    user.refresh_from_db()
    assert user.last_login is None


def test_unknown_email_is_the_same_401(anon):
    response = login(anon, email="nobody@example.com", password="whatever")
    assert (response.status_code, response.json()) == (
        401,
        {"error": "Invalid email or password.", "detail": "Invalid email or password."},
    )


@pytest.mark.parametrize("missing", ["email", "password"])
def test_a_missing_field_is_400_naming_it(anon, missing):
    body = {"email": "trader@example.com", "password": PASSWORD}
    del body[missing]
    response = login(anon, **body)
    assert response.status_code == 400
    assert [k for k in response.json() if k != "error"] == [missing]


def test_malformed_json_is_400_not_500(anon):
    response = anon.post(prefix() + "/auth/login", "{not json", content_type="application/json")
    assert response.status_code == 400


def test_an_inactive_user_cannot_sign_in(anon, make_user):
    make_user("gone@example.com", is_active=False)
    response = login(anon, email="gone@example.com", password=PASSWORD)
    assert (response.status_code, response.json()) == (
        401,
        {"error": "This account is disabled.", "detail": "This account is disabled."},
    )
    # Whoever does not know the password learns nothing about the account.
    response = login(anon, email="gone@example.com", password="guess")
    assert response.json() == {"error": "Invalid email or password.", "detail": "Invalid email or password."}


def test_login_attempts_are_limited_per_ip(anon, user, settings):
    settings.COMPAT_LOGIN_RATE_LIMIT = "3/minute"
    codes = [login(anon, email=f"x{i}@example.com", password="no").status_code for i in range(3)]
    assert codes == [401, 401, 401]
    blocked = login(anon, email="trader@example.com", password=PASSWORD)
    assert blocked.status_code == 429 and "Retry-After" in blocked
    # Another address is not affected.
    assert login(APIClient(REMOTE_ADDR="10.9.9.9"), email="trader@example.com", password=PASSWORD).status_code == 200


def test_login_attempts_are_limited_per_email_across_addresses(user, settings):
    settings.COMPAT_LOGIN_RATE_LIMIT = "3/minute"
    for i in range(3):
        assert login(APIClient(REMOTE_ADDR=f"10.0.0.{i}"), email="Trader@example.com", password="no").status_code == 401
    assert login(APIClient(REMOTE_ADDR="10.0.1.1"), email="trader@example.com", password=PASSWORD).status_code == 429
    assert login(APIClient(REMOTE_ADDR="10.0.1.2"), email="other@example.com", password="no").status_code == 401


def test_refresh_gives_a_fresh_token_and_the_user(client_of, user):
    response = client_of.post(prefix() + "/api/refresh")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"user", "token"} and set(body["user"]) == USER_FIELDS
    assert compat_token_user(body["token"]) == user


def test_me_returns_the_user_with_the_profile_fields(client_of, user):
    ends = timezone.now() + timedelta(days=3)
    AccountProfile.objects.update_or_create(
        user=user,
        defaults={"status": "trial", "trial_ends_at": ends, "plan": "pro", "tv_addon_active": True},
    )
    user.is_staff = True
    user.save()

    body = client_of.get(prefix() + "/api/me").json()

    assert set(body) == USER_FIELDS
    assert (body["role"], body["status"], body["plan"], body["tv_addon_active"]) == ("admin", "trial", "pro", True)
    assert datetime.fromisoformat(body["trial_ends_at"]) == ends.replace(microsecond=ends.microsecond)
    assert body["created_at"] is not None and body["last_login_at"] is None


def test_a_trial_past_its_end_reads_as_expired(client_of, user):
    AccountProfile.objects.create(user=user, status="trial", trial_ends_at=timezone.now() - timedelta(minutes=1))
    assert client_of.get(prefix() + "/api/me").json()["status"] == "expired"


def test_the_profile_is_created_for_a_user_who_had_none(client_of, user):
    assert not AccountProfile.objects.filter(user=user).exists()
    assert client_of.get(prefix() + "/api/me").status_code == 200
    assert AccountProfile.objects.filter(user=user).exists()


@pytest.mark.parametrize("path", ["/api/me", "/api/refresh"])
def test_no_token_is_401(anon, path):
    response = anon.get(prefix() + path) if path == "/api/me" else anon.post(prefix() + path)
    assert response.status_code == 401


@pytest.mark.parametrize("header", ["Bearer not-a-jwt", "Bearer a b", "Basic dXNlcjpwdw=="])
def test_a_bad_token_is_401(anon, header):
    anon.credentials(HTTP_AUTHORIZATION=header)
    assert anon.get(prefix() + "/api/me").status_code == 401


def test_an_expired_token_is_401_saying_so(anon, user, settings):
    settings.COMPAT_TOKEN_TTL_SECONDS = -5
    anon.credentials(HTTP_AUTHORIZATION=f"Bearer {compat_token_issue(user)}")
    response = anon.get(prefix() + "/api/me")
    assert response.status_code == 401 and "expired" in response.json()["detail"]


def test_a_token_of_a_deactivated_user_is_401(client_of, user):
    user.is_active = False
    user.save()
    assert client_of.get(prefix() + "/api/me").status_code == 401


def test_cors_preflight_allows_the_clients_headers_and_methods(anon, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    response = anon.options(
        prefix() + "/api/webhooks/1/toggle",
        HTTP_ORIGIN="https://app.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="PATCH",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization,content-type",
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert {"PATCH", "PUT", "DELETE"} <= {m.strip() for m in response["Access-Control-Allow-Methods"].split(",")}
    allowed = {h.strip().lower() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
