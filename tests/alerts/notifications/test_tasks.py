"""The Celery task wiring (run in-process with Task.apply) and concurrent senders."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection

from apps.alerts.notifications.delivery import destination_deliver
from apps.alerts.notifications.models import Delivery
from apps.alerts.notifications.services import deliveries_sweep, notifications_enqueue
from apps.alerts.notifications.tasks import deliver_notification

from .receiver import Reply


def test_task_sends_and_queues_its_own_follow_up_while_deliveries_wait(
    fast_notifications, receiver, make_alert, make_destination, broker
):
    fast_notifications.NOTIFICATIONS_BACKOFF_BASE = 30.0
    destination = make_destination(url=receiver.url)
    receiver.replies = [Reply(500)]
    notifications_enqueue(alerts=[make_alert()])

    deliver_notification.apply(args=[destination.id])

    assert [r.status for r in receiver.requests] == [500]
    follow_ups = broker.queued("notifications")  # the retry, due after the backoff
    assert [m["headers"]["task"] for m in follow_ups] == ["notifications.deliver"]
    assert follow_ups[0]["headers"]["eta"] is not None

    deliver_notification.apply(args=[destination.id])  # too early: nothing is sent before the backoff
    assert len(receiver.requests) == 1


def test_sweep_reschedules_deliveries_whose_task_was_lost(make_alert, make_destination, broker):
    from datetime import timedelta

    from django.utils import timezone

    destination = make_destination()
    notifications_enqueue(alerts=[make_alert()])  # in a test transaction: its on-commit scheduling never runs
    Delivery.objects.update(next_attempt_at=timezone.now() - timedelta(minutes=5))

    assert deliveries_sweep() == 1
    assert [m["headers"]["argsrepr"] for m in broker.queued("notifications")] == [f"[{destination.id}]"]


def test_sweep_takes_never_attempted_deliveries_after_15_seconds_not_fresh_ones(make_alert, make_destination, broker):
    from datetime import timedelta

    from django.utils import timezone

    make_destination()
    notifications_enqueue(alerts=[make_alert()])
    assert deliveries_sweep() == 0  # just created: its own task is on its way
    Delivery.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=16))
    assert Delivery.objects.get().attempts == 0
    assert deliveries_sweep() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_senders_never_send_an_alert_twice(fast_notifications, receiver, make_alert, make_destination):
    fast_notifications.NOTIFICATIONS_BATCH_WEBHOOK = 3
    destination = make_destination(url=receiver.url)
    alerts = [make_alert(symbol=f"C{i}USDT") for i in range(30)]
    notifications_enqueue(alerts=alerts)

    def sender() -> None:
        try:
            for _ in range(200):
                if (
                    destination_deliver(destination_id=destination.id) is None
                    and not Delivery.objects.filter(status="pending").exists()
                ):
                    return
        finally:
            connection.close()

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    received = Counter(a["id"] for r in receiver.requests for a in r.json()["alerts"])
    assert received == Counter({str(a.id): 1 for a in alerts})
    assert Delivery.objects.filter(status="sent").count() == 30
