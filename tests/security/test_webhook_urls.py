"""One destination URL check for every entry point (POST /api/settings, the admin, the compatibility surface's
webhooks), at save time and again at send time. Name resolution goes through `safety.resolve_host`, replaced here so
no test needs DNS beyond what the test itself says a name resolves to."""

from __future__ import annotations

import ipaddress
import logging

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from apps.alerts.models import UserSettings
from apps.alerts.notifications import safety
from apps.alerts.notifications.delivery import destination_deliver
from apps.alerts.notifications.models import Delivery, Destination
from apps.alerts.notifications.safety import UnsafeDestination, url_check, url_resolve_safe
from apps.alerts.notifications.services import notifications_enqueue
from apps.alerts.services import rules_builtin_seed
from apps.api.compat.tokens import compat_token_issue
from tests.alerts.notifications.conftest import make_alert  # noqa: F401 (fixture)
from tests.api.conftest import make_token

# Names these tests resolve (anything else "does not resolve").
FAKE_DNS = {
    "internal.example.com": ["10.0.0.5"],
    "metadata.example.com": ["169.254.169.254"],
    "mixed.example.com": ["93.184.216.34", "192.168.0.9"],
    "public.example.com": ["93.184.216.34"],
    "localhost": ["127.0.0.1", "::1"],
}
LONG_HOST = "a" * 60 + "." + "b" * 60 + "." + "c" * 60 + "." + "d" * 60 + "." + "e" * 60 + ".com"  # 309 chars

REFUSED = [
    "ftp://public.example.com/x",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_FLUSHALL",
    "http://127.0.0.1/",
    "http://127.0.0.1:6379/",
    "http://localhost:8000/admin/",
    "http://0.0.0.0:8000/",
    "http://10.0.0.8/hook",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://[::1]/",
    "http://[::]/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[ff02::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[2002:7f00:1::]/",
    "http://[64:ff9b::a00:1]/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0177.0.0.1/",
    "http://127.1/",
    "http://10.1/",
    "http://user:pass@public.example.com/",
    "http://user@public.example.com/",
    "http://public.example.com:99999/",
    "http://public.example.com:0/",
    "http://public.example.com:abc/",
    "http://internal.example.com/",
    "http://metadata.example.com/",
    "http://mixed.example.com/",
    f"https://{LONG_HOST}/x",
    "https://" + "a" * 64 + ".example.com/x",
    "http:///nohost",
]
ACCEPTED = ["https://public.example.com/hook", "https://93.184.216.34:8443/x", "https://unresolvable.example.org/in"]


@pytest.fixture(autouse=True)
def fake_dns(monkeypatch, settings):
    settings.NOTIFICATIONS_ALLOW_LOOPBACK = False

    def resolve(host: str, port: int):
        if host not in FAKE_DNS:
            raise OSError(f"[Errno -2] Name or service not known: {host}")
        return [ipaddress.ip_address(a) for a in FAKE_DNS[host]]

    monkeypatch.setattr(safety, "resolve_host", resolve)


@pytest.mark.parametrize("url", REFUSED)
def test_save_time_check_refuses(url):
    with pytest.raises(UnsafeDestination):
        url_check(url)


@pytest.mark.parametrize("url", REFUSED + ["https://unresolvable.example.org/in"])
def test_send_time_check_refuses(url):
    with pytest.raises(UnsafeDestination):
        url_resolve_safe(url)


@pytest.mark.parametrize("url", ACCEPTED)
def test_public_destinations_are_saved(url):
    url_check(url)


def test_a_name_that_turns_internal_after_saving_is_refused_at_send_time():
    url_check("https://rebind.example.com/x")  # not resolvable yet: saved, checked again when sent
    FAKE_DNS["rebind.example.com"] = ["127.0.0.1"]
    try:
        with pytest.raises(UnsafeDestination, match="non-public"):
            url_resolve_safe("https://rebind.example.com/x")
    finally:
        del FAKE_DNS["rebind.example.com"]


def test_loopback_allowed_only_by_its_setting(settings):
    settings.NOTIFICATIONS_ALLOW_LOOPBACK = True
    url_check("http://127.0.0.1:18555/x")
    url_check("http://localhost:18555/x")
    with pytest.raises(UnsafeDestination):
        url_check("http://10.1.2.3/")


# --- every entry point -----------------------------------------------------------------------------------

ENTRY_POINT_URLS = [
    "http://127.0.0.1:6379/",
    "http://localhost/",
    "http://169.254.169.254/",
    "http://[::1]/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://127.1/",
    "http://user:pass@public.example.com/",
    "http://internal.example.com/",
    "http://public.example.com:99999/",
]


@pytest.mark.django_db
@pytest.mark.parametrize("url", ENTRY_POINT_URLS)
def test_post_api_settings_refuses_naming_webhook_url(url):
    rules_builtin_seed()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(sub='ssrf-user')}")
    response = api.post("/api/settings", {"webhook_url": url}, format="json")
    assert response.status_code == 400
    assert "webhook_url" in response.json()
    assert not UserSettings.objects.filter(user_id="ssrf-user").exists()
    ok = api.post("/api/settings", {"webhook_url": "https://public.example.com/h"}, format="json")
    assert ok.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("url", ENTRY_POINT_URLS)
def test_compat_webhooks_refuse_naming_webhook_url(url):
    user = get_user_model().objects.create_user("w@example.com", "w@example.com", "pw-long-enough-1")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {compat_token_issue(user)}")
    path = f"/{settings.COMPAT_PREFIX}/api/webhooks"
    response = api.post(path, {"name": "x", "webhook_type": "http", "webhook_url": url}, format="json")
    assert response.status_code == 400
    assert "webhook_url" in str(response.json())
    assert not Destination.objects.filter(owner=user).exists()
    ok = api.post(
        path, {"name": "x", "webhook_type": "http", "webhook_url": "https://public.example.com/h"}, format="json"
    )
    assert ok.status_code == 201


@pytest.fixture
def admin_client(db):
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-long-enough-123")
    client = APIClient()
    client.force_login(admin)
    return client


@pytest.mark.parametrize("url", ENTRY_POINT_URLS)
def test_admin_destination_and_user_settings_refuse(admin_client, url):
    response = admin_client.post(
        "/admin/notifications/destination/add/",
        {
            "name": "ops",
            "kind": "webhook",
            "url": url,
            "secret": "s" * 32,
            "rule_types": "[]",
            "symbols": "[]",
            "excluded_rule_types": "[]",
            "enabled": "on",
            "consecutive_failures": "0",
        },
    )
    assert response.status_code == 200  # the form again, with the error
    assert not Destination.objects.exists()
    assert response.context["adminform"].form.errors.get("url")
    response = admin_client.post(
        "/admin/alerts/usersettings/add/",
        {"user_id": "u-admin", "selected_alerts": "[]", "webhook_url": url, "notification_enabled": "on"},
    )
    assert response.status_code == 200
    assert not UserSettings.objects.exists()
    assert response.context["adminform"].form.errors.get("webhook_url")


# --- legacy rows saved before the check: refused at send, one line, no traceback ------------------------


@pytest.mark.django_db
def test_a_stored_300_character_host_is_paused_with_one_warning_and_no_traceback(make_alert, redis_client, caplog):  # noqa: F811
    destination = Destination.objects.create(name="legacy", kind="webhook", url=f"https://{LONG_HOST}/x")
    notifications_enqueue(alerts=[make_alert()])
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert destination_deliver(destination_id=destination.pk) is None
    destination.refresh_from_db()
    assert destination.is_paused and "valid DNS name" in destination.paused_reason
    assert [d.status for d in Delivery.objects.filter(destination=destination)] == ["failed"]
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert problems and all(r.levelno == logging.WARNING and r.exc_info is None for r in problems)


@pytest.mark.django_db
def test_compat_webhook_test_of_a_stored_300_character_host_answers_502_naming_it(redis_client, caplog):
    from apps.api.compat.models import UserWebhook

    user = get_user_model().objects.create_user("t@example.com", "t@example.com", "pw-long-enough-1")
    webhook = UserWebhook.objects.create(user=user, name="old", webhook_type="http", webhook_url="https://x.com/")
    UserWebhook.objects.filter(pk=webhook.pk).update(webhook_url=f"https://{LONG_HOST}/x")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {compat_token_issue(user)}")
    with caplog.at_level(logging.INFO):
        response = api.post(f"/{settings.COMPAT_PREFIX}/api/webhooks/{webhook.pk}/test")
    assert response.status_code == 502
    assert "valid DNS name" in response.json()["message"]
    # A user's failed test is their problem, not the server's: one warning, no error.
    assert [r.levelname for r in caplog.records if r.levelno >= logging.WARNING] == ["WARNING"]
    assert api.get(f"/{settings.COMPAT_PREFIX}/api/me").status_code == 200
