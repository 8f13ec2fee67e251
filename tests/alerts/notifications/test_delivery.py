"""Delivery against a real HTTP server on 127.0.0.1 (receiver.py beside this file), services called directly."""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter

from apps.alerts.models import AlertHistory
from apps.alerts.notifications.delivery import destination_deliver
from apps.alerts.notifications.models import Delivery, DeliveryAttempt, Destination
from apps.alerts.notifications.selectors import destinations_paused
from apps.alerts.notifications.services import destination_resume, notifications_enqueue

from .receiver import Reply


def alert_ids_received(receiver) -> Counter:
    """How many times each alert id was acknowledged: in a request the receiver answered with a 2xx."""
    return Counter(
        a["id"] for r in receiver.requests if r.answered and 200 <= r.status < 300 for a in r.json()["alerts"]
    )


def test_success_delivers_once_signed_and_marks_the_alert_sent(
    fast_notifications, receiver, make_alert, make_destination, drain
):
    destination = make_destination(url=receiver.url + "/hook", secret="s3cret")
    alert = make_alert()
    notifications_enqueue(alerts=[alert])

    drain(destination.id)

    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    assert request.path == "/hook"
    timestamp = request.headers["X-Screener-Timestamp"]
    expected = hmac.new(b"s3cret", timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Screener-Signature"] == "sha256=" + expected
    payload = request.json()["alerts"][0]
    assert (payload["id"], payload["symbol"], payload["alert_type"]) == (str(alert.id), "BTCUSDT", "big_bull_60m")
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("sent", 1, "")
    alert_row = AlertHistory.objects.get(
        triggered_at=alert.triggered_at, symbol=alert.symbol, alert_type=alert.alert_type
    )
    assert alert_row.webhook_sent and alert_row.webhook_sent_at == delivery.sent_at


def test_429_waits_for_retry_after_then_delivers_once(
    fast_notifications, receiver, make_alert, make_destination, drain
):
    destination = make_destination(url=receiver.url)
    receiver.replies = [Reply(429, headers={"Retry-After": "1"}, body=b'{"message": "slow down"}')]
    alert = make_alert()
    notifications_enqueue(alerts=[alert])

    drain(destination.id)

    assert [r.status for r in receiver.requests] == [429, 200]
    assert receiver.requests[1].at - receiver.requests[0].at >= 1.0
    assert alert_ids_received(receiver) == {str(alert.id): 1}
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("sent", 2)
    log = list(DeliveryAttempt.objects.filter(delivery=delivery).values_list("number", "ok", "status_code"))
    assert log == [(1, False, 429), (2, True, 200)]
    destination.refresh_from_db()
    assert destination.paused_at is None and destination.consecutive_failures == 0


def test_500_then_success_retries_with_backoff_and_records_both_attempts(
    fast_notifications, receiver, make_alert, make_destination, drain
):
    destination = make_destination(url=receiver.url)
    receiver.replies = [Reply(500, body=b"oops")]
    alert = make_alert()
    notifications_enqueue(alerts=[alert])

    drain(destination.id)

    assert [r.status for r in receiver.requests] == [500, 200]
    assert receiver.requests[1].at - receiver.requests[0].at >= 0.1  # NOTIFICATIONS_BACKOFF_BASE
    assert alert_ids_received(receiver) == {str(alert.id): 1}
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("sent", 2)
    assert list(delivery.attempt_log.values_list("ok", "status_code", "error")) == [
        (False, 500, "HTTP 500: oops"),
        (True, 200, ""),
    ]


def test_three_failures_past_the_retry_window_give_up_after_the_third_attempt(
    fast_notifications, receiver, make_alert, make_destination, drain
):
    fast_notifications.NOTIFICATIONS_RETRY_SECONDS = 0  # no retry window beyond the attempts
    destination = make_destination(url=receiver.url)
    receiver.replies = [Reply(503), Reply(502), Reply(500), Reply(500)]
    alert = make_alert()
    notifications_enqueue(alerts=[alert])

    drain(destination.id)

    assert [r.status for r in receiver.requests] == [503, 502, 500]
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("failed", 3)
    assert delivery.last_error.startswith("HTTP 500")
    alert_row = AlertHistory.objects.get(
        triggered_at=alert.triggered_at, symbol=alert.symbol, alert_type=alert.alert_type
    )
    assert not alert_row.webhook_sent


def test_permanent_404_is_not_retried_and_pauses_the_destination_until_resumed(
    fast_notifications, receiver, make_alert, make_destination, drain
):
    destination = make_destination(url=receiver.url, name="gone")
    receiver.replies = [Reply(404, body=b'{"message": "Unknown Webhook"}')]
    first = make_alert()
    notifications_enqueue(alerts=[first])

    drain(destination.id)

    assert [r.status for r in receiver.requests] == [404]
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    paused = destinations_paused()
    assert [(p["name"], p["pending"]) for p in paused] == [("gone", 0)]
    assert "HTTP 404" in paused[0]["reason"]

    # While paused, new alerts cost the destination nothing (no delivery, no task) and are not dropped: resuming
    # creates and sends what it missed, once.
    later = make_alert(symbol="ETHUSDT")
    notifications_enqueue(alerts=[later])
    assert drain(destination.id) == 0 and len(receiver.requests) == 1
    assert destinations_paused()[0]["pending"] == 0
    assert Delivery.objects.filter(destination=destination).count() == 1
    assert destination_resume(destination=destination) == 1
    drain(destination.id)

    assert alert_ids_received(receiver) == {str(later.id): 1}
    assert destinations_paused() == []


def test_timeout_is_retried_and_the_alert_is_acknowledged_once(
    fast_notifications, receiver, make_alert, make_destination, drain
):
    destination = make_destination(url=receiver.url)
    receiver.replies = [Reply(200, stall=1.5)]  # read timeout is 0.5 s
    alert = make_alert()
    notifications_enqueue(alerts=[alert])

    drain(destination.id)

    assert len(receiver.requests) == 2
    # The stalled request carried the same alert id, so a receiver can tell the resend from a new alert.
    assert [r.json()["alerts"][0]["id"] for r in receiver.requests] == [str(alert.id)] * 2
    assert alert_ids_received(receiver) == {str(alert.id): 1}
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("sent", 2)
    assert delivery.attempt_log.first().error.startswith("timeout")


def test_repeated_failures_pause_a_destination(fast_notifications, receiver, make_alert, make_destination, drain):
    fast_notifications.NOTIFICATIONS_PAUSE_AFTER_FAILURES = 4
    fast_notifications.NOTIFICATIONS_RETRY_SECONDS = 0  # failing past the retry window at once
    destination = make_destination(url=receiver.url, name="flaky")
    receiver.replies = [Reply(500)] * 10
    alerts = [make_alert(symbol=f"S{i}USDT") for i in range(2)]
    notifications_enqueue(alerts=alerts[:1])
    drain(destination.id)  # three failed attempts: failed, not yet paused
    notifications_enqueue(alerts=alerts[1:])

    drain(destination.id)

    assert len(receiver.requests) == 4
    assert [p["name"] for p in destinations_paused()] == ["flaky"]
    waiting = Delivery.objects.get(alert_symbol="S1USDT")
    assert (waiting.status, waiting.attempts) == ("pending", 1)  # kept for when the destination is resumed


def test_redirects_are_not_followed(fast_notifications, receiver, make_alert, make_destination, drain):
    destination = make_destination(url=receiver.url + "/a")
    receiver.replies = [Reply(302, headers={"Location": receiver.url + "/b"})]
    notifications_enqueue(alerts=[make_alert()])

    drain(destination.id)

    assert [r.path for r in receiver.requests] == ["/a"]
    assert Delivery.objects.get().status == "failed"
    assert "redirect" in Destination.objects.get(pk=destination.pk).paused_reason


def test_ssrf_to_loopback_is_refused_without_any_request(
    settings, receiver, make_alert, make_destination, drain, redis_client
):
    settings.NOTIFICATIONS_ALLOW_LOOPBACK = False
    destination = make_destination(url=receiver.url + "/internal")
    user_like = make_destination(url=f"http://localhost:{receiver.port}/x", name="named")
    notifications_enqueue(alerts=[make_alert()])

    drain(destination.id)
    drain(user_like.id)

    assert receiver.requests == []
    for delivery in Delivery.objects.all():
        assert delivery.status == "failed" and "non-public address" in delivery.last_error
    assert sorted(p["name"] for p in destinations_paused()) == ["named", "ops"]


def test_discord_embed_format(fast_notifications, receiver, rules, make_alert, make_destination, drain):
    destination = make_destination(kind="discord", url=receiver.url + "/api/webhooks/1/t")
    bull = make_alert(alert_type="big_bull_60m", price=101.5, change_pct=1.9, volume=2_500_000.0)
    bear = make_alert(alert_type="big_bear_60m", change_pct=-2.0)
    notifications_enqueue(alerts=[bull, bear])

    drain(destination.id)

    assert len(receiver.requests) == 1  # two alerts, one message with two embeds
    first, second = receiver.requests[0].json()["embeds"]
    assert first["title"] == "Big Bull 60m Signal" and second["title"] == "Big Bear 60m Signal"
    assert first["color"] == 0x2ECC71 and second["color"] == 0xE74C3C
    assert [f["name"] for f in first["fields"]] == ["Price", "Change", "Volume", "VCP", "Timeframe"]
    values = {f["name"]: f["value"] for f in first["fields"]}
    assert values == {"Price": "101.5", "Change": "+1.90%", "Volume": "2.50M USDT", "VCP": "0.420", "Timeframe": "1h"}
    assert first["timestamp"].startswith(bull.triggered_at.strftime("%Y-%m-%dT%H:%M"))
    assert "BTCUSDT" in first["description"]
    assert Delivery.objects.filter(status="sent").count() == 2


def test_discord_empty_bucket_delays_the_next_message(
    fast_notifications, receiver, rules, make_alert, make_destination, drain
):
    destination = make_destination(kind="discord", url=receiver.url + "/api/webhooks/1/t")
    receiver.replies = [Reply(204, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "1.2"}, body=b"")]
    notifications_enqueue(alerts=[make_alert()])
    drain(destination.id)
    notifications_enqueue(alerts=[make_alert(symbol="ETHUSDT")])

    drain(destination.id)

    assert len(receiver.requests) == 2
    assert receiver.requests[1].at - receiver.requests[0].at >= 1.2


def test_a_destination_down_for_a_while_gets_everything_once_in_order(
    fast_notifications, receiver, make_alert, make_destination, drain
):
    """Refused for more than the attempts (within the retry window), alerts keep coming meanwhile: once back, the
    destination gets each alert once, oldest minute first, the waiting ones never overtaken by newer ones."""
    fast_notifications.NOTIFICATIONS_MAX_BACKOFF = 0.2
    destination = make_destination(url=receiver.url)
    receiver.replies = [Reply(503)] * 8
    alerts = [make_alert(symbol=f"S{i}USDT") for i in range(6)]  # a minute apart, oldest first
    for alert in alerts:
        notifications_enqueue(alerts=[alert])
        destination_deliver(destination_id=destination.id)

    drain(destination.id)

    assert [r.status for r in receiver.requests][:8] == [503] * 8
    delivered = [a["id"] for r in receiver.requests if r.status == 200 for a in r.json()["alerts"]]
    assert delivered == [str(a.id) for a in alerts]
    assert set(Delivery.objects.values_list("status", flat=True)) == {"sent"}
    assert Destination.objects.get(pk=destination.pk).paused_at is None
