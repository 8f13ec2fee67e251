"""At least once, de-duplicable: every message names its alert ids; a retried batch keeps its Idempotency-Key."""

from __future__ import annotations

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
