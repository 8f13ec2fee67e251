"""Operators manage the client's accounts in the admin: the profile inline on the user, webhooks checked as the API
checks them, and saves that change what the user's webhooks receive."""

# Fixtures come from account_fixtures by import (this package keeps no conftest of its own), hence F401/F811.
# ruff: noqa: F401, F811
from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.alerts.notifications.models import Destination
from apps.api.compat.account_services import webhook_create
from apps.api.compat.models import AccountProfile, UserWebhook

from .account_fixtures import make_user, user

pytestmark = pytest.mark.django_db


def change_form(user, **changes) -> dict:
    """The admin's change form of a user as a browser would post it back, with `changes` applied."""
    profile = AccountProfile.objects.get_or_create(user=user)[0]
    data = {
        "username": user.username,
        "email": user.email,
        "first_name": "",
        "last_name": "",
        "is_active": "on",
        "last_login_0": "",
        "last_login_1": "",
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        "compat_profile-TOTAL_FORMS": "1",
        "compat_profile-INITIAL_FORMS": "1",
        "compat_profile-MIN_NUM_FORMS": "0",
        "compat_profile-MAX_NUM_FORMS": "1",
        "compat_profile-0-id": str(profile.pk),
        "compat_profile-0-user": str(user.pk),
        "compat_profile-0-status": profile.status,
        "compat_profile-0-plan": profile.plan,
        "compat_profile-0-disabled_rule_types": "[]",
        "compat_profile-0-watchlist": "[]",
        "compat_webhooks-TOTAL_FORMS": "0",
        "compat_webhooks-INITIAL_FORMS": "0",
        "compat_webhooks-MIN_NUM_FORMS": "0",
        "compat_webhooks-MAX_NUM_FORMS": "1000",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_the_user_change_page_shows_the_profile_inline(admin_client, user):
    response = admin_client.get(f"/admin/auth/user/{user.pk}/change/")
    assert response.status_code == 200
    assert b"web client profile" in response.content and b"tv_addon_active" in response.content


def test_editing_the_watchlist_in_the_admin_rescopes_the_users_webhooks(admin_client, user):
    webhook = webhook_create(
        user=user, data={"webhook_type": "http", "webhook_url": "https://hooks.example.com/in", "scope": "watchlist"}
    )
    assert not Destination.objects.get(pk=webhook.destination_id).enabled  # empty watchlist: nothing wanted

    response = admin_client.post(
        f"/admin/auth/user/{user.pk}/change/",
        change_form(user, **{"compat_profile-0-watchlist": '["BTCUSDT"]', "compat_profile-0-status": "trial"}),
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    profile = AccountProfile.objects.get(user=user)
    assert (profile.watchlist, profile.status) == (["BTCUSDT"], "trial")
    destination = Destination.objects.get(pk=webhook.destination_id)
    assert destination.enabled and destination.symbols == ["BTCUSDT"]


def test_deactivating_a_user_in_the_admin_stops_their_webhooks(admin_client, user):
    webhook = webhook_create(user=user, data={"webhook_type": "http", "webhook_url": "https://hooks.example.com/in"})
    assert Destination.objects.get(pk=webhook.destination_id).enabled

    response = admin_client.post(f"/admin/auth/user/{user.pk}/change/", change_form(user, is_active=None))

    assert response.status_code == 302
    assert not Destination.objects.get(pk=webhook.destination_id).enabled


def test_a_webhook_deleted_in_the_user_inline_loses_its_destination(admin_client, user):
    webhook = webhook_create(user=user, data={"webhook_type": "http", "webhook_url": "https://hooks.example.com/in"})
    form = change_form(
        user,
        **{
            "compat_webhooks-TOTAL_FORMS": "1",
            "compat_webhooks-INITIAL_FORMS": "1",
            "compat_webhooks-0-id": str(webhook.pk),
            "compat_webhooks-0-user": str(user.pk),
            "compat_webhooks-0-name": webhook.name,
            "compat_webhooks-0-webhook_type": "http",
            "compat_webhooks-0-webhook_url": webhook.webhook_url,
            "compat_webhooks-0-scope": "all",
            "compat_webhooks-0-is_enabled": "on",
            "compat_webhooks-0-max_alerts_per_minute": "10",
            "compat_webhooks-0-DELETE": "on",
        },
    )

    response = admin_client.post(f"/admin/auth/user/{user.pk}/change/", form)

    assert response.status_code == 302, response.content.decode()[:2000]
    assert not UserWebhook.objects.exists()
    assert not Destination.objects.filter(owner=user).exists()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"webhook_type": "discord", "webhook_url": "http://192.168.1.10/hook"}, "webhook_url"),
        ({"webhook_type": "slack", "webhook_url": ""}, "webhook_url"),
        ({"webhook_type": "telegram", "config": {"chat_id": "1"}}, "config"),
        (
            {"webhook_type": "http", "webhook_url": "https://a.example.com", "max_alerts_per_minute": 0},
            "max_alerts_per_minute",
        ),
    ],
)
def test_a_webhook_edited_in_the_admin_is_checked_like_the_api_does(user, fields, field):
    with pytest.raises(ValidationError) as raised:
        UserWebhook(user=user, name="x", **fields).full_clean()
    assert field in raised.value.message_dict
