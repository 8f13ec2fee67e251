"""Telegram: rate limit per chat, bursts batched into few messages, nothing lost or repeated."""

from __future__ import annotations

import json
import math
import re
from collections import Counter

from django.conf import settings

from apps.alerts.notifications.delivery import destination_deliver
from apps.alerts.notifications.models import Delivery
from apps.alerts.notifications.services import notifications_enqueue
from apps.alerts.notifications.transports import TelegramTransport

from .receiver import Reply

TOKEN = "123456:ABC-def_ghi"


def symbols_in(receiver) -> Counter:
    """Symbols named in the 2xx-answered messages (each alert block starts with '<mark> <title> · <SYMBOL>')."""
    found: Counter = Counter()
    for request in receiver.requests:
        if request.answered and request.status == 200:
            found.update(re.findall(r"Signal · ([A-Z0-9]+)\n", request.json()["text"]))
    return found


def telegram(make_destination, chat_id: str = "4242"):
    return make_destination(kind="telegram", url="", telegram_bot_token=TOKEN, telegram_chat_id=chat_id)


def test_burst_of_50_alerts_to_one_chat_is_batched_at_one_message_per_chat_interval(
    fast_notifications, receiver, rules, make_alert, make_destination, drain
):
    destination = telegram(make_destination)
    alerts = [make_alert(symbol=f"COIN{i}USDT") for i in range(50)]
    notifications_enqueue(alerts=alerts)

    drain(destination.id)

    batch = settings.NOTIFICATIONS_BATCH_TELEGRAM
    # Batches of NOTIFICATIONS_BATCH_TELEGRAM, or fewer where that many would not fit in Telegram's 4,096 characters.
    assert math.ceil(50 / batch) <= len(receiver.requests) <= 3
    for request in receiver.requests:
        assert request.path == f"/bot{TOKEN}/sendMessage"
        body = request.json()
        assert body["chat_id"] == "4242" and len(body["text"]) <= 4096
    assert symbols_in(receiver) == Counter({a.symbol: 1 for a in alerts})
    gaps = [b.at - a.at for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)]
    assert all(gap >= settings.NOTIFICATIONS_INTERVAL_TELEGRAM_CHAT - 0.01 for gap in gaps)
    assert Delivery.objects.filter(status="sent").count() == 50
    assert set(Delivery.objects.values_list("attempts", flat=True)) == {1}


def test_alerts_arriving_inside_the_interval_wait_and_go_out_together(
    fast_notifications, receiver, rules, make_alert, make_destination, drain
):
    destination = telegram(make_destination)
    notifications_enqueue(alerts=[make_alert(symbol="FIRSTUSDT")])
    assert destination_deliver(destination_id=destination.id) is None  # sent at once, nothing left
    later = [make_alert(symbol=f"LATE{i}USDT") for i in range(10)]
    notifications_enqueue(alerts=later)

    wait = destination_deliver(destination_id=destination.id)

    assert wait is not None and 0 < wait <= settings.NOTIFICATIONS_INTERVAL_TELEGRAM_CHAT
    assert len(receiver.requests) == 1  # held back by the per-chat limit, not dropped
    drain(destination.id)
    assert len(receiver.requests) == 2
    assert receiver.requests[1].json()["text"].startswith("10 alerts")
    assert symbols_in(receiver) == Counter({"FIRSTUSDT": 1, **{a.symbol: 1 for a in later}})


def test_telegram_429_retry_after_in_the_body_is_honoured(
    fast_notifications, receiver, rules, make_alert, make_destination, drain
):
    destination = telegram(make_destination)
    receiver.replies = [
        Reply(429, body=json.dumps({"ok": False, "error_code": 429, "parameters": {"retry_after": 1}}).encode())
    ]
    alerts = [make_alert(symbol=f"R{i}USDT") for i in range(3)]
    notifications_enqueue(alerts=alerts)

    drain(destination.id)

    assert [r.status for r in receiver.requests] == [429, 200]
    # Telegram's wait (1 s), not the chat's interval (a quarter of that here).
    assert receiver.requests[1].at - receiver.requests[0].at >= 1.0 > settings.NOTIFICATIONS_INTERVAL_TELEGRAM_CHAT
    assert symbols_in(receiver) == Counter({a.symbol: 1 for a in alerts})


def test_group_chats_get_the_slower_group_interval(make_destination):
    private = TelegramTransport(telegram(make_destination, chat_id="4242"))
    group = TelegramTransport(telegram(make_destination, chat_id="-1001234"))

    assert private.interval() == settings.NOTIFICATIONS_INTERVAL_TELEGRAM_CHAT >= 1.0  # a message a second
    assert group.interval() == settings.NOTIFICATIONS_INTERVAL_TELEGRAM_GROUP >= 3.0  # 20 messages a minute


def test_bot_token_never_reaches_logs_or_recorded_errors(
    fast_notifications, receiver, rules, make_alert, make_destination, drain, caplog
):
    destination = telegram(make_destination)
    receiver.replies = [Reply(400, body=f'{{"description": "bad request for {TOKEN}"}}'.encode())]
    notifications_enqueue(alerts=[make_alert()])

    drain(destination.id)

    assert TOKEN not in caplog.text
    assert TOKEN not in Delivery.objects.get().last_error
