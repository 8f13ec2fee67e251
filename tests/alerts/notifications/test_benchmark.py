"""Cost of handing a minute's alerts to notifications (prints figures; asserts only what was created)."""

from __future__ import annotations

import time

from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.alerts.models import UserSettings
from apps.alerts.notifications.models import Delivery
from apps.alerts.notifications.services import notifications_enqueue
from apps.alerts.notifications.tasks import dispatch_notifications


def test_enqueue_cost_for_a_busy_minute(make_alert, make_destination, broker, django_capture_on_commit_callbacks):
    for i in range(5):
        make_destination(name=f"ops{i}")
    UserSettings.objects.bulk_create(
        UserSettings(
            user_id=f"u{i}",
            selected_alerts=["big_bull_60m"] if i % 2 else [],
            webhook_url=f"https://hooks.example.com/{i}",
        )
        for i in range(200)
    )
    alerts = [make_alert(symbol=f"B{i}USDT", triggered_at=None) for i in range(40)]
    notifications_enqueue(alerts=alerts[:1])  # creates the users' destination rows once
    Delivery.objects.all().delete()

    started = time.perf_counter()
    with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks(execute=True):
        notifications_enqueue(alerts=alerts)
    elapsed = time.perf_counter() - started

    assert Delivery.objects.count() == 40 * (5 + 200)
    print(
        f"\nenqueue: 40 alerts x 205 destinations -> {Delivery.objects.count()} deliveries in {elapsed * 1000:.1f} ms,"
        f" {len(queries)} queries, {len(broker.queued('notifications'))} task(s) queued"
    )
    # Past a few destinations the engine publishes one dispatch task; the worker fans out one task per destination.
    (dispatch,) = broker.queued("notifications")
    assert dispatch["headers"]["task"] == "notifications.dispatch"
    broker.delete(broker.queued.prefix + "notifications")
    dispatch_notifications.apply(args=[sorted(set(Delivery.objects.values_list("destination_id", flat=True)))])
    assert len(broker.queued("notifications")) == 205


def test_enqueue_cost_for_a_typical_minute(make_alert, make_destination, broker, django_capture_on_commit_callbacks):
    for i in range(5):
        make_destination(name=f"ops{i}")
    alerts = [make_alert(symbol=f"T{i}USDT") for i in range(40)]

    started = time.perf_counter()
    with django_capture_on_commit_callbacks(execute=True):
        notifications_enqueue(alerts=alerts)
    elapsed = time.perf_counter() - started

    assert Delivery.objects.count() == 200
    assert len(broker.queued("notifications")) == 5
    print(f"\nenqueue: 40 alerts x 5 destinations -> 200 deliveries and 5 tasks in {elapsed * 1000:.1f} ms")
