from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.alerts.notifications.models import Destination
from apps.alerts.notifications.safety import UnsafeDestination, url_resolve_safe


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_FLUSHALL",
        "http://10.0.0.8/hook",
        "http://192.168.1.1/",
        "http://172.16.5.4/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://0.0.0.0:8000/",
        "http://100.64.0.1/",
        "http://127.0.0.1:6379/",
        "http://localhost:8000/admin/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://2130706433/",
        "http://user:pw@93.184.216.34/",
    ],
)
def test_unsafe_urls_are_refused(settings, url):
    settings.NOTIFICATIONS_ALLOW_LOOPBACK = False
    with pytest.raises(UnsafeDestination):
        url_resolve_safe(url)


def test_loopback_setting_allows_loopback_only(settings):
    settings.NOTIFICATIONS_ALLOW_LOOPBACK = True
    assert url_resolve_safe("http://127.0.0.1:18555/x?a=1").url == "http://127.0.0.1:18555/x?a=1"
    with pytest.raises(UnsafeDestination):
        url_resolve_safe("http://10.1.2.3/")


def test_public_address_is_pinned_with_the_original_host_kept():
    target = url_resolve_safe("https://93.184.216.34:8443/path?q=1")
    assert target.url == "https://93.184.216.34:8443/path?q=1"
    assert target.host_header == "93.184.216.34:8443" and target.server_name == "93.184.216.34"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "bad_fields"),
    [
        ({"kind": "webhook", "url": ""}, {"url"}),
        ({"kind": "discord", "url": "ftp://example.com/"}, {"url"}),
        ({"kind": "telegram"}, {"telegram_bot_token", "telegram_chat_id"}),
        ({"kind": "telegram", "telegram_bot_token": "nocolon", "telegram_chat_id": "1"}, {"telegram_bot_token"}),
        ({"kind": "webhook", "url": "https://example.com/", "symbols": "BTCUSDT"}, {"symbols"}),
    ],
)
def test_destination_validation_names_the_field(fields, bad_fields):
    with pytest.raises(ValidationError) as caught:
        Destination(name="x", **fields).full_clean()
    assert bad_fields <= set(caught.value.message_dict)


def test_retry_after_is_read_from_seconds_http_dates_and_json_bodies():
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    import httpx

    from apps.alerts.notifications.transports import retry_after_of

    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert retry_after_of(httpx.Response(429, headers={"Retry-After": "7"})) == 7.0
    assert 28 <= retry_after_of(httpx.Response(429, headers={"Retry-After": later})) <= 30
    assert retry_after_of(httpx.Response(429, json={"retry_after": 0.75, "global": False})) == 0.75
    assert retry_after_of(httpx.Response(429, json={"ok": False, "parameters": {"retry_after": 3}})) == 3.0
    assert retry_after_of(httpx.Response(429, text="busy")) is None
    assert retry_after_of(httpx.Response(429, headers={"Retry-After": "soon"})) is None
