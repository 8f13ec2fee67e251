"""At least once, de-duplicable: every message names its alert ids; a retried batch keeps its Idempotency-Key."""

from __future__ import annotations

import pytest

from apps.alerts.notifications.models import Delivery
from apps.alerts.notifications.services import notifications_enqueue

from .receiver import Reply


def test_a_retried_batch_carries_the_same_idempotency_key_and_alert_ids(
    fast_notifications, receiver, make_alert, make_destination, drain
):
    destination = make_destination(url=receiver.url, secret="s")
    alerts = [make_alert(), make_alert()]
    receiver.replies = [Reply(500)]
    notifications_enqueue(alerts=alerts)
    drain(destination.id)
    first, retry = receiver.requests
    assert [first.status, retry.status] == [500, 200]
    key = first.headers["Idempotency-Key"]
    assert len(key) == 32 and retry.headers["Idempotency-Key"] == key
    assert [a["id"] for a in retry.json()["alerts"]] == [str(a.id) for a in alerts]

    notifications_enqueue(alerts=[make_alert()])
    drain(destination.id)
    assert receiver.requests[-1].headers["Idempotency-Key"] != key  # another batch, another key


def test_every_http_destination_gets_an_idempotency_key(
    fast_notifications, receiver, make_alert, make_destination, drain
):
    slack = make_destination(kind="slack", url=receiver.url + "/slack")
    telegram = make_destination(kind="telegram", url="", telegram_bot_token="123:abc", telegram_chat_id="42")
    discord = make_destination(kind="discord", url=receiver.url + "/discord")
    alert = make_alert()
    notifications_enqueue(alerts=[alert])
    for destination in (slack, telegram, discord):
        drain(destination.id)
    assert len(receiver.requests) == 3
    assert {r.headers["Idempotency-Key"] for r in receiver.requests} == {
        receiver.requests[0].headers["Idempotency-Key"]
    }
    discord_request = next(r for r in receiver.requests if r.path == "/discord")
    assert discord_request.json()["embeds"][0]["footer"]["text"].endswith(str(alert.id))


def test_chat_messages_name_each_alert_id(fast_notifications, receiver, make_alert, make_destination, drain):
    slack = make_destination(kind="slack", url=receiver.url + "/slack")
    telegram = make_destination(kind="telegram", url="", telegram_bot_token="123:abc", telegram_chat_id="42")
    alerts = [make_alert(), make_alert()]
    notifications_enqueue(alerts=alerts)
    for destination in (slack, telegram):
        drain(destination.id)
    assert len(receiver.requests) == 2
    for request in receiver.requests:
        text = request.json()["text"]
        for alert in alerts:
            assert text.count(str(alert.id)) == 1, (request.path, text)


class SenderKilled(BaseException):
    """Stands in for SIGKILL: nothing after the request runs (no except clause catches it)."""


def test_a_batch_whose_sender_died_is_sent_again_as_it_was_before_newer_alerts(
    fast_notifications, receiver, make_alert, make_destination, drain, monkeypatch
):
    from apps.alerts.notifications import delivery

    destination = make_destination(url=receiver.url, secret="s")
    first_alerts = [make_alert(), make_alert()]
    notifications_enqueue(alerts=first_alerts)

    def killed(**outcome):
        raise SenderKilled

    monkeypatch.setattr(delivery, "_record_surely", killed)
    with pytest.raises(SenderKilled):
        delivery.destination_deliver(destination_id=destination.id)
    assert len(receiver.requests) == 1 and receiver.requests[0].status == 200  # arrived, never recorded

    later = make_alert()
    notifications_enqueue(alerts=[later])  # waiting too: it must not join the repeated batch
    monkeypatch.undo()
    drain(destination.id)
    first, again, after = receiver.requests
    assert again.headers["Idempotency-Key"] == first.headers["Idempotency-Key"]
    assert [a["id"] for a in again.json()["alerts"]] == [str(a.id) for a in first_alerts]
    assert [a["id"] for a in after.json()["alerts"]] == [str(later.id)]
    assert after.headers["Idempotency-Key"] != first.headers["Idempotency-Key"]
    assert set(Delivery.objects.values_list("status", "batch_key")) == {(Delivery.Status.SENT, "")}


def test_a_batch_waiting_for_its_retry_stays_in_front_and_keeps_its_key(
    fast_notifications, receiver, make_alert, make_destination, drain
):
    from apps.alerts.notifications import delivery

    destination = make_destination(url=receiver.url, secret="s")
    first = make_alert()
    receiver.replies = [Reply(503)]
    notifications_enqueue(alerts=[first])
    assert delivery.destination_deliver(destination_id=destination.id) > 0  # 503: a retry after the backoff
    notifications_enqueue(alerts=[make_alert()])  # due at once, but queued behind the batch waiting out its backoff
    calls = drain(destination.id)
    keys = [r.headers["Idempotency-Key"] for r in receiver.requests]
    ids = [[a["id"] for a in r.json()["alerts"]] for r in receiver.requests]
    assert [r.status for r in receiver.requests] == [503, 200, 200]
    assert ids[0] == ids[1] == [str(first.id)] and keys[0] == keys[1] != keys[2]
    assert calls < 20, "the wait for the retry is one scheduled run, not a busy loop"
