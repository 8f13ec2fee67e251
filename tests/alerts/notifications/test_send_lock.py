"""The per-destination send lock: short and renewed while a batch is out, so a killed sender blocks for seconds."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from apps.alerts.notifications import delivery
from apps.alerts.notifications.delivery import destination_deliver
from apps.alerts.notifications.models import Delivery
from apps.alerts.notifications.services import notifications_enqueue
from screener_project.kernel.redis_keys import notif_lock_key
from tests.e2e.processes import wait_for

from .receiver import Reply


def test_a_send_lock_left_by_a_killed_worker_delays_the_destination_only_until_it_expires(
    fast_notifications, receiver, make_alert, make_destination, redis_client, monkeypatch
):
    monkeypatch.setattr(delivery, "LOCK_SECONDS", 1)
    destination = make_destination(url=receiver.url)
    notifications_enqueue(alerts=[make_alert(), make_alert()])
    # What a worker SIGKILLed in the middle of a send leaves behind: its lock, never renewed nor released.
    redis_client.set(notif_lock_key(destination.id), "token-of-a-dead-worker", px=1000)

    retry_in = destination_deliver(destination_id=destination.id)
    assert retry_in == 1.0 and receiver.requests == []  # busy: run again once the lock can have expired
    time.sleep(retry_in)  # what the task's own follow-up does
    assert destination_deliver(destination_id=destination.id) is None
    assert len(receiver.requests) == 1 and len(receiver.requests[0].json()["alerts"]) == 2
    assert Delivery.objects.filter(status="sent", attempts=1).count() == 2


@pytest.mark.django_db(transaction=True)  # the sender runs in a thread of its own, on its own connection
def test_the_lock_outlasts_its_timeout_while_a_slow_send_is_out(
    fast_notifications, receiver, make_alert, make_destination, redis_client, monkeypatch
):
    monkeypatch.setattr(delivery, "LOCK_SECONDS", 1)
    fast_notifications.NOTIFICATIONS_READ_TIMEOUT = 5.0
    destination = make_destination(url=receiver.url)
    receiver.replies = [Reply(200, stall=2.5)]  # two and a half lock timeouts
    notifications_enqueue(alerts=[make_alert()])

    def send() -> None:
        try:
            destination_deliver(destination_id=destination.id)
        finally:
            connection.close()

    sender = threading.Thread(target=send)
    sender.start()
    try:
        wait_for(lambda: redis_client.exists(notif_lock_key(destination.id)), timeout=5, what="the send to start")
        time.sleep(1.5)  # past the lock's timeout, the request still out (it is answered after 2.5 s)
        assert redis_client.exists(notif_lock_key(destination.id))
        assert destination_deliver(destination_id=destination.id) == 1.0  # a second sender keeps off
    finally:
        sender.join(10)
    assert len(receiver.requests) == 1
    assert not redis_client.exists(notif_lock_key(destination.id))


@pytest.mark.django_db(transaction=True)  # the retry reconnects to the database
def test_a_sent_batch_waits_for_the_database_to_record_it_instead_of_sending_it_again(
    fast_notifications, receiver, make_alert, make_destination, monkeypatch
):
    from django.db import OperationalError

    destination = make_destination(url=receiver.url)
    notifications_enqueue(alerts=[make_alert()])
    record, failures = delivery._record, []

    def record_after_an_outage(**outcome):
        if len(failures) < 2:  # the database is away right after the destination accepted the batch
            failures.append(1)
            raise OperationalError("server closed the connection unexpectedly")
        return record(**outcome)

    monkeypatch.setattr(delivery, "_record", record_after_an_outage)
    assert destination_deliver(destination_id=destination.id) is None
    assert destination_deliver(destination_id=destination.id) is None
    assert len(receiver.requests) == 1  # recorded on the third try: never sent again
    assert Delivery.objects.get().status == "sent"
