from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.alerts.notifications.models import Delivery, Destination


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


def test_paused_destinations_are_listed_with_their_reason_and_filterable(staff_client, make_destination):
    make_destination(name="healthy-one")
    make_destination(name="broken-one", paused_at=timezone.now(), paused_reason="HTTP 404: Unknown Webhook")

    page = staff_client.get(reverse("admin:notifications_destination_changelist") + "?state=paused")

    assert page.status_code == 200
    text = page.content.decode()
    assert "broken-one" in text and "HTTP 404: Unknown Webhook" in text and "healthy-one" not in text


def test_adding_a_telegram_destination_without_chat_id_names_the_field(staff_client):
    page = staff_client.post(
        reverse("admin:notifications_destination_add"),
        {
            "name": "tg",
            "kind": "telegram",
            "enabled": "on",
            "telegram_bot_token": "1:abc",
            "secret": "s",
            "rule_types": "[]",
            "symbols": "[]",
        },
    )

    assert page.status_code == 200  # the form again, with the error
    assert "A Telegram destination needs the chat id." in page.content.decode()
    assert not Destination.objects.exists()


def test_resume_action_lifts_the_pause(staff_client, make_destination, broker):
    destination = make_destination(paused_at=timezone.now(), paused_reason="x", consecutive_failures=6)

    staff_client.post(
        reverse("admin:notifications_destination_changelist"),
        {"action": "resume", "_selected_action": [destination.pk]},
    )

    destination.refresh_from_db()
    assert destination.paused_at is None and destination.consecutive_failures == 0


def test_deliveries_changelist_and_detail_show_attempts(staff_client, make_alert, make_destination):
    destination = make_destination()
    alert = make_alert()
    delivery = Delivery.objects.create(
        destination=destination,
        alert_triggered_at=alert.triggered_at,
        alert_symbol=alert.symbol,
        alert_type=alert.alert_type,
        alert_id=alert.id,
        next_attempt_at=timezone.now(),
        attempts=1,
        last_error="HTTP 500: boom",
    )
    delivery.attempt_log.create(number=1, at=timezone.now(), ok=False, status_code=500, error="HTTP 500: boom")

    listing = staff_client.get(reverse("admin:notifications_delivery_changelist"))
    detail = staff_client.get(reverse("admin:notifications_delivery_change", args=[delivery.pk]))

    assert listing.status_code == 200 and "HTTP 500: boom" in listing.content.decode()
    assert detail.status_code == 200 and "HTTP 500: boom" in detail.content.decode()
