"""Notifications through a real Celery worker (queue "notifications") to real HTTP receivers on 127.0.0.1."""

from __future__ import annotations

import os
import re
from collections import Counter

import pytest
from django.conf import settings
from django.db import connection

from apps.alerts.models import AlertHistory
from apps.alerts.notifications.models import Delivery
from apps.alerts.notifications.services import notifications_enqueue
from tests.e2e.processes import BIN, ProcessGroup, wait_for

from .receiver import Receiver, Reply

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def receivers():
    servers = [Receiver() for _ in range(3)]
    yield servers
    for server in servers:
        server.close()


def test_worker_delivers_every_alert_once_through_failures_and_rate_limits(
    receivers, rules, make_alert, make_destination, broker, tmp_path
):
    webhook_rx, telegram_rx, discord_rx = receivers
    webhook_rx.replies = [Reply(500), Reply(503)]
    discord_rx.replies = [Reply(429, headers={"Retry-After": "1"})]
    make_destination(name="json", url=webhook_rx.url + "/hook")
    make_destination(name="tg", kind="telegram", url="", telegram_bot_token="1:abc", telegram_chat_id="77")
    make_destination(name="dc", kind="discord", url=discord_rx.url + "/api/webhooks/9/x")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "screener_project.settings.test",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}",
        "TEST_REDIS_URL": settings.REDIS_URL,
        "TEST_CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "TEST_REDIS_KEY_PREFIX": settings.REDIS_KEY_PREFIX,
        "NOTIFICATIONS_ALLOW_LOOPBACK": "true",
        "NOTIFICATIONS_TELEGRAM_API_URL": telegram_rx.url,
        "NOTIFICATIONS_BACKOFF_BASE": "0.2",
        "NOTIFICATIONS_INTERVAL_DISCORD": "0.5",
        "PYTHONUNBUFFERED": "1",
    }
    group = ProcessGroup(env, tmp_path)
    alerts = [make_alert(symbol=f"W{i}USDT") for i in range(50)]
    try:
        group.start(
            "worker",
            str(BIN / "celery"),
            "-A",
            "screener_project",
            "worker",
            "-Q",
            "notifications",
            "--concurrency",
            "2",
            "--loglevel",
            "INFO",
        )
        notifications_enqueue(alerts=alerts)  # autocommit here: the send tasks are queued at once
        wait_for(
            lambda: not Delivery.objects.filter(status="pending").exists(),
            timeout=90,
            interval=0.5,
            what="every delivery to finish",
            group=group,
        )
    finally:
        group.stop_all()

    assert Delivery.objects.filter(status="sent").count() == 150
    assert AlertHistory.objects.filter(webhook_sent=True).count() == 50
    ids = {str(a.id) for a in alerts}
    json_ids = Counter(a["id"] for r in webhook_rx.requests if r.status == 200 for a in r.json()["alerts"])
    assert json_ids == Counter({i: 1 for i in ids})
    assert [r.status for r in webhook_rx.requests][:2] == [500, 503]
    tg_symbols = Counter(
        s for r in telegram_rx.requests for s in re.findall(r"Signal · ([A-Z0-9]+)\n", r.json()["text"])
    )
    assert tg_symbols == Counter({a.symbol: 1 for a in alerts})
    assert len(telegram_rx.requests) < 50  # batched
    discord_ids = Counter(
        e["footer"]["text"].rsplit(" ", 1)[1]
        for r in discord_rx.requests
        if r.status == 200
        for e in r.json()["embeds"]
    )
    assert discord_ids == Counter({i: 1 for i in ids})
    print(
        f"\nworker: 50 alerts -> json {len(webhook_rx.requests)} requests, telegram {len(telegram_rx.requests)}"
        f" messages, discord {len(discord_rx.requests)} messages"
    )
