"""Self-service accounts of the web client: sign-up and invites, forgot/reset/change password, billing, TV username.

Shapes from the client's authService: register -> {user, token}; invite -> {valid, message?, expires_at?};
errors carry `error`.
"""

# Fixtures come from account_fixtures by import (this package keeps no conftest of its own), hence F401/F811.
# ruff: noqa: F401, F811
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from apps.api.compat.account_services import account_profile_get
from apps.api.compat.models import Invite

from .account_fixtures import PASSWORD, anon, client_of, make_user, prefix, signed_in, user

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "a new and long passphrase"


def register(client, **body):
    return client.post(prefix() + "/auth/register", body, format="json")


@pytest.fixture
def invite(db):
    return Invite.objects.create(code="welcome-1", max_uses=2, trial_days=7)


# --- Sign-up -------------------------------------------------------------------------------------------------


def test_an_invite_signs_up_a_trial_account_and_signs_it_in(anon, invite):
    response = register(anon, email="new@example.com", password=NEW_PASSWORD, invite_code="welcome-1")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"user", "token"}
    assert body["user"]["email"] == "new@example.com" and body["user"]["status"] == "trial"
    assert body["user"]["trial_ends_at"] is not None
    me = anon.get(prefix() + "/api/me", HTTP_AUTHORIZATION=f"Bearer {body['token']}")
    assert me.status_code == 200 and me.json()["email"] == "new@example.com"
    invite.refresh_from_db()
    assert invite.uses == 1
    login = anon.post(prefix() + "/auth/login", {"email": "new@example.com", "password": NEW_PASSWORD}, format="json")
    assert login.status_code == 200


def test_invite_mode_refuses_sign_up_without_a_code(anon, settings):
    settings.COMPAT_REGISTRATION = "invite"
    response = register(anon, email="new@example.com", password=NEW_PASSWORD)
    assert response.status_code == 400 and response.json()["error"].startswith("invite_code:")
    assert not get_user_model().objects.filter(email="new@example.com").exists()


def test_an_invite_is_used_up_after_its_uses(anon, invite):
    for n in range(2):
        assert (
            register(anon, email=f"u{n}@example.com", password=NEW_PASSWORD, invite_code="welcome-1").status_code == 201
        )
    refused = register(anon, email="u3@example.com", password=NEW_PASSWORD, invite_code="welcome-1")
    assert refused.status_code == 400 and "already been used" in refused.json()["error"]


def test_closed_registration_refuses_everyone(anon, invite, settings):
    settings.COMPAT_REGISTRATION = "closed"
    response = register(anon, email="new@example.com", password=NEW_PASSWORD, invite_code="welcome-1")
    assert response.status_code == 403 and "closed" in response.json()["error"]
    check = anon.get(prefix() + "/auth/invite/welcome-1")
    assert check.status_code == 404 and check.json()["valid"] is False


def test_open_registration_needs_no_code(anon, settings):
    settings.COMPAT_REGISTRATION = "open"
    settings.COMPAT_SIGNUP_TRIAL_DAYS = 0
    response = register(anon, email="free@example.com", password=NEW_PASSWORD)
    assert response.status_code == 201 and response.json()["user"]["status"] == "active"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email", "password": NEW_PASSWORD, "invite_code": "welcome-1"}, "email"),
        ({"email": "new@example.com", "password": "short", "invite_code": "welcome-1"}, "password"),
        ({"email": "new@example.com", "password": "password123", "invite_code": "welcome-1"}, "password"),
        ({"email": "new@example.com", "password": NEW_PASSWORD, "invite_code": "nope"}, "invite_code"),
        ({"email": "trader@example.com", "password": NEW_PASSWORD, "invite_code": "welcome-1"}, "email"),
    ],
)
def test_a_bad_sign_up_is_400_naming_the_field(anon, invite, user, body, field):
    response = register(anon, **body)
    assert response.status_code == 400
    assert field in response.json() and response.json()["error"].startswith(f"{field}:")
    invite.refresh_from_db()
    assert invite.uses == 0


def test_the_invite_check_has_the_clients_shape(anon, invite):
    invite.expires_at = timezone.now() + timedelta(days=2)
    invite.save()
    valid = anon.get(prefix() + "/auth/invite/welcome-1")
    assert valid.status_code == 200
    assert valid.json() == {"valid": True, "expires_at": invite.expires_at.isoformat()}
    unknown = anon.get(prefix() + "/auth/invite/unknown")
    assert unknown.status_code == 404
    assert unknown.json()["valid"] is False and unknown.json()["message"] == "This invite code is not valid."
    invite.expires_at = timezone.now() - timedelta(minutes=1)
    invite.save()
    assert anon.get(prefix() + "/auth/invite/welcome-1").json()["message"] == "This invite has expired."


# --- Forgot, reset and change password ------------------------------------------------------------------------


def reset_link(outbox) -> str:
    (mail,) = outbox
    return re.search(r"https?://\S+/reset-password\?token=(\S+)", mail.body).group(0)


def test_forgot_password_mails_a_link_that_resets_it_once(anon, user, signed_in, mailoutbox, settings):
    settings.COMPAT_CLIENT_URL = "http://client.example.com"
    elsewhere = signed_in(user)  # a session on another device, from before the reset
    response = anon.post(prefix() + "/auth/forgot-password", {"email": "Trader@Example.com"}, format="json")
    assert response.status_code == 200 and response.json()["success"] is True
    link = reset_link(mailoutbox)
    assert link.startswith("http://client.example.com/reset-password?token=")
    token = link.split("token=", 1)[1]
    assert mailoutbox[0].to == ["trader@example.com"]

    done = anon.post(prefix() + "/auth/reset-password", {"token": token, "password": NEW_PASSWORD}, format="json")
    assert done.status_code == 200
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    ended = elsewhere.get(prefix() + "/api/me")
    assert ended.status_code == 401 and "password change" in ended.json()["error"]
    again = anon.post(
        prefix() + "/auth/reset-password", {"token": token, "password": "another long one!"}, format="json"
    )
    assert again.status_code == 400 and "invalid or has expired" in again.json()["error"]


def test_forgot_password_answers_alike_for_an_unknown_email(anon, mailoutbox):
    response = anon.post(prefix() + "/auth/forgot-password", {"email": "nobody@example.com"}, format="json")
    assert response.status_code == 200 and response.json()["success"] is True
    assert mailoutbox == []


def test_the_link_goes_to_the_page_origin_when_cors_allows_it(anon, user, mailoutbox, settings):
    settings.COMPAT_CLIENT_URL = ""
    settings.CORS_ALLOWED_ORIGINS = ["http://localhost:4173"]
    anon.post(
        prefix() + "/auth/forgot-password", {"email": user.email}, format="json", HTTP_ORIGIN="http://localhost:4173"
    )
    assert reset_link(mailoutbox).startswith("http://localhost:4173/reset-password?token=")


@pytest.mark.parametrize("token", ["", "garbage", "MQ.abc-def", "x" * 300])
def test_a_bad_reset_token_is_400(anon, user, token):
    response = anon.post(prefix() + "/auth/reset-password", {"token": token, "password": NEW_PASSWORD}, format="json")
    assert response.status_code == 400 and response.json()["error"]
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_password_emails_are_limited(anon, user, settings, mailoutbox):
    settings.COMPAT_ACCOUNT_RATE_LIMIT = "2/minute"
    codes = [
        anon.post(prefix() + "/auth/forgot-password", {"email": user.email}, format="json").status_code
        for _ in range(3)
    ]
    assert codes == [200, 200, 429] and len(mailoutbox) == 2


def test_change_password(client_of, user):
    wrong = client_of.post(
        prefix() + "/api/change-password", {"old_password": "nope", "new_password": NEW_PASSWORD}, format="json"
    )
    assert wrong.status_code == 400 and wrong.json()["error"] == "old_password: The current password is wrong."
    weak = client_of.post(
        prefix() + "/api/change-password", {"old_password": PASSWORD, "new_password": "123"}, format="json"
    )
    assert weak.status_code == 400 and weak.json()["error"].startswith("new_password:")
    done = client_of.post(
        prefix() + "/api/change-password", {"old_password": PASSWORD, "new_password": NEW_PASSWORD}, format="json"
    )
    assert done.status_code == 200
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    # Every token issued before the change is over, the one that changed it included: sign in again.
    ended = client_of.get(prefix() + "/api/me")
    assert ended.status_code == 401 and "password change" in ended.json()["error"]
    login = APIClient().post(prefix() + "/auth/login", {"email": user.email, "password": NEW_PASSWORD}, format="json")
    assert login.status_code == 200


def test_change_password_needs_a_signed_in_user(anon):
    response = anon.post(prefix() + "/api/change-password", {"old_password": "a", "new_password": "b"}, format="json")
    assert response.status_code == 401 and response.json()["error"]


# --- Billing and the TradingView username -----------------------------------------------------------------------


def test_billing_shows_the_plan_the_admin_holds(client_of, user, settings):
    settings.COMPAT_BILLING_MANAGE_URL = "https://billing.example.com"
    profile = account_profile_get(user=user)
    profile.plan = "yearly"
    profile.plan_expires_at = timezone.now() + timedelta(days=30)
    profile.membership_id = "mem_1"
    profile.save()
    body = client_of.get(prefix() + "/api/billing").json()
    assert body == {
        "plan": "yearly",
        "status": "active",
        "plan_expires_at": profile.plan_expires_at.isoformat(),
        "whop_membership_id": "mem_1",
        "tv_addon_active": False,
        "tv_username": None,
        "manage_url": "https://billing.example.com",
    }


def test_checkout_answers_a_clear_error(client_of):
    response = client_of.post(prefix() + "/api/checkout", {"plan": "screener_monthly"}, format="json")
    assert response.status_code == 400 and "not available" in response.json()["error"]


def test_the_tv_username_is_kept_and_shown_in_billing(client_of):
    response = client_of.put(prefix() + "/api/settings/tv-username", {"tv_username": "trader_42"}, format="json")
    assert response.status_code == 200
    assert client_of.get(prefix() + "/api/billing").json()["tv_username"] == "trader_42"
    bad = client_of.put(prefix() + "/api/settings/tv-username", {"tv_username": "no spaces"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"].startswith("tv_username:")


def test_operators_make_invites_in_the_admin(make_user, client):
    admin = make_user("admin@example.com", is_staff=True, is_superuser=True)
    client.force_login(admin)
    page = client.get("/admin/compat/invite/add/")
    assert page.status_code == 200
    code = re.search(r'name="code"[^>]*value="([^"]+)"', page.content.decode()).group(1)
    assert len(code) >= 12
    saved = client.post(
        "/admin/compat/invite/add/", {"code": code, "note": "for Ann", "max_uses": 1, "trial_days": 7, "uses": 0}
    )
    assert saved.status_code == 302
    invite = Invite.objects.get(code=code)
    assert invite.created_by == admin and invite.uses == 0
