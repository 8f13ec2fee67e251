"""Fixtures of the account tests: users, signed-in clients, and the notifications' receiver on this suite's ports.

Test modules import what they use (`from .account_fixtures import *`), so this file can sit beside another conftest.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from apps.api.compat.tokens import compat_token_issue
from tests.alerts.notifications import receiver as receiver_module
from tests.alerts.notifications.conftest import drain, make_alert  # noqa: F401 (fixtures re-exported)

# Webhook receivers of these tests listen here, apart from the notifications suite's 18500-18599.
RECEIVER_PORTS = range(18750, 18800)
PASSWORD = "correct horse battery staple"


def prefix() -> str:
    return "/" + settings.COMPAT_PREFIX


@pytest.fixture
def make_user(db):
    def make(email: str = "trader@example.com", *, password: str = PASSWORD, **fields):
        return get_user_model().objects.create_user(username=email, email=email, password=password, **fields)

    return make


@pytest.fixture
def user(make_user):
    return make_user()


@pytest.fixture
def anon() -> APIClient:
    return APIClient(REMOTE_ADDR="10.1.2.3")


@pytest.fixture
def signed_in():
    """A client carrying a compat token of the given user (Authorization: Bearer ...)."""

    def make(user) -> APIClient:
        client = APIClient(REMOTE_ADDR="10.1.2.3")
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {compat_token_issue(user)}")
        return client

    return make


@pytest.fixture
def client_of(user, signed_in) -> APIClient:
    return signed_in(user)


@pytest.fixture
def receiver(monkeypatch):
    monkeypatch.setattr(receiver_module, "PORTS", RECEIVER_PORTS)
    server = receiver_module.Receiver()
    yield server
    server.close()


@pytest.fixture
def fast_notifications(settings, receiver, redis_client):
    """Loopback allowed (the receiver), short timeouts, no channel interval so the drain runs at once."""
    settings.NOTIFICATIONS_ALLOW_LOOPBACK = True
    settings.NOTIFICATIONS_CONNECT_TIMEOUT = 0.5
    settings.NOTIFICATIONS_READ_TIMEOUT = 0.5
    settings.NOTIFICATIONS_BACKOFF_BASE = 0.1
    for kind in ("WEBHOOK", "DISCORD", "SLACK"):
        setattr(settings, f"NOTIFICATIONS_INTERVAL_{kind}", 0.0)
    settings.NOTIFICATIONS_TELEGRAM_API_URL = receiver.url
    return settings
