from __future__ import annotations

import base64

from apps.alerts.models import UserSettings
from apps.alerts.notifications.models import Delivery, Destination
from apps.alerts.notifications.services import notifications_enqueue


def test_enqueue_creates_one_delivery_per_alert_and_destination_even_when_repeated(
    make_alert, make_destination, broker
):
    first, second = make_destination(name="a"), make_destination(name="b")
    alerts = [make_alert(symbol="BTCUSDT"), make_alert(symbol="ETHUSDT")]

    notifications_enqueue(alerts=alerts)
    notifications_enqueue(alerts=alerts)
    notifications_enqueue(alerts=alerts[:1])

    pairs = sorted(Delivery.objects.values_list("destination_id", "alert_symbol"))
    assert pairs == sorted([(d.id, a.symbol) for d in (first, second) for a in alerts])
    assert set(Delivery.objects.values_list("status", flat=True)) == {"pending"}


def test_enqueue_queues_one_send_task_per_destination_on_the_notifications_queue(
    make_alert, make_destination, broker, django_capture_on_commit_callbacks
):
    destination = make_destination()
    with django_capture_on_commit_callbacks(execute=True):
        notifications_enqueue(alerts=[make_alert(symbol=f"S{i}USDT") for i in range(5)])

    messages = broker.queued("notifications")
    assert len(messages) == 1
    assert messages[0]["headers"]["task"] == "notifications.deliver"
    body = base64.b64decode(messages[0]["body"])
    assert f"[{destination.id}]".encode() in body


def test_enqueue_respects_rule_type_and_symbol_filters_and_skips_disabled(make_alert, make_destination, broker):
    by_rule = make_destination(name="rule", rule_types=["big_bear_60m"])
    by_symbol = make_destination(name="symbol", symbols=["ETHUSDT"])
    make_destination(name="off", enabled=False)
    alerts = [
        make_alert(symbol="BTCUSDT", alert_type="big_bull_60m"),
        make_alert(symbol="ETHUSDT", alert_type="big_bear_60m"),
        make_alert(symbol="SOLUSDT", alert_type="big_bear_60m"),
    ]

    notifications_enqueue(alerts=alerts)

    got = sorted(Delivery.objects.values_list("destination__name", "alert_symbol"))
    assert got == [("rule", "ETHUSDT"), ("rule", "SOLUSDT"), ("symbol", "ETHUSDT")]
    assert by_rule.deliveries.count() == 2 and by_symbol.deliveries.count() == 1


def test_user_webhooks_follow_selected_alerts_and_notification_enabled(make_alert, broker):
    UserSettings.objects.create(
        user_id="u-bull", selected_alerts=["big_bull_60m"], webhook_url="https://discord.com/api/webhooks/1/abc"
    )
    UserSettings.objects.create(user_id="u-all", selected_alerts=[], webhook_url="https://example.com/hook")
    UserSettings.objects.create(
        user_id="u-off", selected_alerts=[], webhook_url="https://example.com/off", notification_enabled=False
    )
    UserSettings.objects.create(user_id="u-nourl", selected_alerts=[])

    notifications_enqueue(alerts=[make_alert(alert_type="big_bull_60m"), make_alert(alert_type="big_bear_60m")])

    got = sorted(Delivery.objects.values_list("destination__user_id", "alert_type"))
    assert got == [("u-all", "big_bear_60m"), ("u-all", "big_bull_60m"), ("u-bull", "big_bull_60m")]
    assert Destination.objects.get(user_id="u-bull").kind == "discord"
    assert Destination.objects.get(user_id="u-all").kind == "webhook"


def test_user_changing_webhook_url_updates_the_destination_and_lifts_its_pause(make_alert, broker):
    from django.utils import timezone

    settings_row = UserSettings.objects.create(user_id="u1", webhook_url="https://example.com/old")
    notifications_enqueue(alerts=[make_alert()])
    Destination.objects.filter(user_id="u1").update(paused_at=timezone.now(), paused_reason="404")
    settings_row.webhook_url = "https://example.com/new"
    settings_row.save()

    notifications_enqueue(alerts=[make_alert()])

    destination = Destination.objects.get(user_id="u1")
    assert destination.url == "https://example.com/new" and destination.paused_at is None
    assert destination.deliveries.count() == 2


def test_enqueue_never_raises_into_the_caller(make_destination, broker, caplog):
    make_destination()

    class Broken:
        alert_type = "big_bull_60m"
        symbol = "BTCUSDT"
        triggered_at = "not a time"
        id = "not a uuid"

    notifications_enqueue(alerts=[Broken()])

    assert Delivery.objects.count() == 0
    assert "could not create deliveries" in caplog.text


def test_purge_removes_old_deliveries_and_their_attempts_only(make_alert, make_destination, broker):
    from datetime import timedelta

    from django.utils import timezone

    from apps.alerts.notifications.models import DeliveryAttempt
    from apps.alerts.notifications.services import deliveries_purge

    make_destination()
    notifications_enqueue(alerts=[make_alert(), make_alert()])
    old, new = Delivery.objects.order_by("id")
    old.attempt_log.create(number=1, at=timezone.now(), ok=True)
    Delivery.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=49))

    assert deliveries_purge(before=timezone.now() - timedelta(hours=48)) == 1
    assert list(Delivery.objects.values_list("pk", flat=True)) == [new.pk]
    assert not DeliveryAttempt.objects.exists()
