"""A paused destination costs nothing while alerts fire (no delivery rows, no tasks), and lifting the pause, by any
path, creates and schedules exactly what it missed."""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.alerts.models import UserSettings
from apps.alerts.notifications.models import Delivery, Destination
from apps.alerts.notifications.services import destination_resume, notifications_enqueue

pytestmark = pytest.mark.django_db


def deliver_tasks(broker) -> list[int]:
    """Destination ids of the send tasks queued (directly or through one dispatch task)."""
    ids: list[int] = []
    for message in broker.queued("notifications"):
        args = __import__("json").loads(__import__("base64").b64decode(message["body"]))[0]
        task = message["headers"]["task"]
        ids += args[0] if task == "notifications.dispatch" else [args[0]]
    return ids


def test_a_paused_destination_gets_no_rows_and_no_tasks(
    make_alert, make_destination, broker, django_capture_on_commit_callbacks
):
    live = make_destination(name="live")
    paused = make_destination(name="paused", paused_at=timezone.now(), paused_reason="HTTP 404")
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            notifications_enqueue(alerts=[make_alert()])
    assert Delivery.objects.filter(destination=paused).count() == 0
    assert Delivery.objects.filter(destination=live).count() == 3
    assert paused.pk not in deliver_tasks(broker) and live.pk in deliver_tasks(broker)


def test_resume_creates_what_was_missed_once_and_schedules_it(
    make_alert, make_destination, broker, django_capture_on_commit_callbacks
):
    destination = make_destination()
    before = make_alert()
    notifications_enqueue(alerts=[before])
    Delivery.objects.filter(destination=destination).update(status="sent")
    Destination.objects.filter(pk=destination.pk).update(paused_at=timezone.now(), paused_reason="x")
    missed = [make_alert(symbol=s) for s in ("ETHUSDT", "SOLUSDT")]
    notifications_enqueue(alerts=missed)
    assert Delivery.objects.filter(destination=destination).count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert destination_resume(destination=destination) == 2
    rows = Delivery.objects.filter(destination=destination)
    assert sorted(rows.filter(status="pending").values_list("alert_symbol", flat=True)) == ["ETHUSDT", "SOLUSDT"]
    assert rows.filter(status="sent").count() == 1  # the alert sent before the pause is not sent again
    assert deliver_tasks(broker) == [destination.pk]
    assert destination_resume(destination=destination) == 2  # a second resume adds nothing


def test_missed_alerts_follow_the_destination_filters(make_alert, make_destination, broker):
    destination = make_destination(symbols=["BTCUSDT"], paused_at=timezone.now(), paused_reason="x")
    make_alert(symbol="BTCUSDT")
    make_alert(symbol="ETHUSDT")
    destination_resume(destination=destination)
    assert list(Delivery.objects.values_list("alert_symbol", flat=True)) == ["BTCUSDT"]


def test_a_save_that_lifts_the_pause_creates_what_was_missed(make_alert, make_destination, broker):
    destination = make_destination(paused_at=timezone.now(), paused_reason="x")
    notifications_enqueue(alerts=[make_alert()])
    assert not Delivery.objects.exists()
    destination.paused_at, destination.paused_reason = None, ""
    destination.save()  # the admin's change form
    assert Delivery.objects.filter(destination=destination, status="pending").count() == 1


def test_a_user_fixing_their_url_gets_what_was_missed(make_alert, broker):
    row = UserSettings.objects.create(user_id="u-fix", webhook_url="https://example.com/old")
    notifications_enqueue(alerts=[make_alert()])
    Destination.objects.filter(user_id="u-fix").update(paused_at=timezone.now(), paused_reason="404")
    missed = make_alert(symbol="ETHUSDT")
    notifications_enqueue(alerts=[missed])
    destination = Destination.objects.get(user_id="u-fix")
    assert destination.deliveries.count() == 1
    row.webhook_url = "https://example.com/new"
    row.save()
    notifications_enqueue(alerts=[make_alert(symbol="SOLUSDT")])  # the next alert syncs the URL, lifting the pause
    symbols = sorted(destination.deliveries.values_list("alert_symbol", flat=True))
    assert symbols == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
