"""Firing discipline against the real PostgreSQL and the Redis channel layer: claim once, cooldown, push once."""

from __future__ import annotations

import asyncio
import threading
import uuid

import numpy as np
import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection

from apps.alerts.engine import rule_context, rules_evaluate, rules_load
from apps.alerts.models import AlertHistory, AlertRule
from apps.alerts.selectors import alert_payload
from apps.alerts.services import alerts_fire
from apps.collector.candles import MINUTE_MS
from apps.metrics.windows import window_metrics
from screener_project.kernel.channels import ALERTS_GROUP

from .factories import Segment, block_of, candles_from_segments

T = 1_800_000_000_000 // MINUTE_MS * MINUTE_MS
SYMBOLS = ["AAAUSDT", "BBBUSDT", "CCCUSDT"]


@pytest.fixture
def test_broker():
    """The test Celery broker; the send tasks queued here are removed afterwards (no worker consumes them)."""
    import redis

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    yield client
    for found in client.scan_iter(match=settings.REDIS_KEY_PREFIX + ":celery:*"):
        client.delete(found)
    client.close()


def pioneer_context():
    """Rows 0 and 1 fire pioneer_bull, row 2 fires pioneer_bear."""
    up = candles_from_segments([Segment(10, 0.5, 1000), Segment(5, 1.2, 2100)])
    down = candles_from_segments([Segment(10, -0.5, 1000), Segment(5, -1.2, 2100)])
    block = block_of([up, up, down])
    return rule_context(candles=block, metrics=window_metrics(block))


def fire(minute_ms: int, *, context=None, only: dict[str, list[int]] | None = None) -> list[AlertHistory]:
    """Evaluate the stored rules at minute_ms (optionally forcing which rows fired) and fire."""
    rules = rules_load()
    context = context or pioneer_context()
    fired = rules_evaluate(rules, context)
    if only is not None:
        fired = {rule.rule_type: np.isin(np.arange(len(SYMBOLS)), only.get(rule.rule_type, [])) for rule in rules}
    timestamps = {"candle_close_ms": minute_ms + MINUTE_MS, "received_ms": minute_ms + 61000, "evaluated_ms": 1}
    return alerts_fire(
        minute_ms=minute_ms, symbols=SYMBOLS, fired=fired, context=context, rules=rules, timestamps=timestamps
    )


def fire_in_thread(minute_ms: int) -> None:
    try:
        fire(minute_ms)
    finally:
        connection.close()  # the worker thread's own connection, or the test database cannot be dropped


def keys(alerts) -> set[tuple[str, str]]:
    return {(a.symbol, a.alert_type) for a in alerts}


@pytest.mark.django_db(transaction=True)
def test_fired_alert_row_has_spec_fields_and_metadata():
    alerts = fire(T)
    assert keys(alerts) == {("AAAUSDT", "pioneer_bull"), ("BBBUSDT", "pioneer_bull"), ("CCCUSDT", "pioneer_bear")}
    stored = AlertHistory.objects.get(symbol="AAAUSDT", alert_type="pioneer_bull")
    assert stored.triggered_at.timestamp() * 1000 == T + MINUTE_MS
    context = pioneer_context()
    assert stored.price == pytest.approx(context.value("close")[0])
    assert stored.timeframe == "5m"
    assert stored.change_pct == pytest.approx(1.2)
    assert stored.volume == pytest.approx(5 * 2100)
    metrics = stored.metadata["metrics"]
    assert set(metrics) == {"change_5m", "change_15m", "vol_5m", "vol_15m"}
    assert metrics["vol_15m"] == pytest.approx(10 * 1000 + 5 * 2100)
    stamps = stored.metadata["timestamps"]
    assert stamps["candle_close_ms"] == T + MINUTE_MS and stamps["received_ms"] == T + 61000
    assert stamps["pushed_ms"] >= stamps["evaluated_ms"]
    payload = alert_payload(stored)
    assert set(payload) == {
        "id",
        "triggered_at",
        "symbol",
        "alert_type",
        "timeframe",
        "price",
        "volume",
        "change_pct",
        "metadata",
    }
    assert uuid.UUID(payload["id"]) == stored.id
    assert payload["triggered_at"].endswith("Z")


@pytest.mark.django_db(transaction=True)
def test_duplicated_evaluation_of_a_minute_creates_nothing():
    first = fire(T)
    assert len(first) == 3
    assert fire(T) == []
    assert fire(T) == []
    assert AlertHistory.objects.count() == 3


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("later_minute", "allowed"),
    [(1, False), (4, False), (5, True), (6, True)],
)
def test_cooldown_suppresses_inside_the_open_interval(later_minute, allowed):
    only = {"pioneer_bull": [0]}
    assert len(fire(T, only=only)) == 1
    again = fire(T + later_minute * MINUTE_MS, only=only)
    assert len(again) == (1 if allowed else 0)


@pytest.mark.django_db(transaction=True)
def test_suppressed_firings_do_not_extend_the_cooldown():
    only = {"pioneer_bull": [0]}
    emitted = [minute for minute in range(12) if fire(T + minute * MINUTE_MS, only=only)]
    assert emitted == [0, 5, 10]


@pytest.mark.django_db(transaction=True)
def test_cooldown_is_per_symbol_and_rule_and_per_rule_length():
    fire(T, only={"pioneer_bull": [0], "pioneer_bear": [0]})
    later = fire(T + MINUTE_MS, only={"pioneer_bull": [0, 1]})
    assert keys(later) == {("BBBUSDT", "pioneer_bull")}
    AlertRule.objects.filter(rule_type="pioneer_bear").update(cooldown_minutes=1)
    assert keys(fire(T + MINUTE_MS, only={"pioneer_bear": [0]})) == {("AAAUSDT", "pioneer_bear")}


@pytest.mark.django_db(transaction=True)
def test_cooldown_state_comes_from_the_database():
    # An alert recorded by an earlier process (say, before a restart) suppresses the pair just the same.
    fire(T, only={"pioneer_bull": [0]})
    assert fire(T + 2 * MINUTE_MS, only={"pioneer_bull": [0]}) == []
    AlertHistory.objects.filter(symbol="AAAUSDT").delete()
    assert len(fire(T + 3 * MINUTE_MS, only={"pioneer_bull": [0]})) == 1


@pytest.mark.django_db(transaction=True)
def test_new_alerts_go_to_the_channel_group_once(redis_client):
    async def scenario() -> list[dict]:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(ALERTS_GROUP, channel)
        try:
            await sync_to_async(fire_in_thread)(T)
            await sync_to_async(fire_in_thread)(T)  # the duplicate pushes nothing
            received = []
            while True:
                try:
                    received.append(await asyncio.wait_for(layer.receive(channel), timeout=1.0))
                except TimeoutError:
                    return received
        finally:
            await layer.group_discard(ALERTS_GROUP, channel)
            await layer.flush()

    received = asyncio.run(scenario())
    # The minute's alerts travel as one batch message; the repeated evaluation sends none.
    assert [m["type"] for m in received] == ["alert.batch"]
    (batch,) = [m["data"] for m in received]
    stored = {alert_payload(a)["id"]: alert_payload(a) for a in AlertHistory.objects.all()}
    assert len(batch) == 3
    assert {payload["id"] for payload in batch} == set(stored)
    for payload in batch:
        assert payload == stored[payload["id"]]


@pytest.mark.django_db(transaction=True)
def test_concurrent_evaluations_of_a_minute_claim_each_alert_once():
    """Two workers racing on the same minute (a retried task running beside the original) split, never double."""
    barrier = threading.Barrier(2)
    results: list[list[AlertHistory]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            results.append(fire(T))
        except BaseException as error:  # surfaced below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    claimed = [keys(alerts) for alerts in results]
    assert len(claimed[0]) + len(claimed[1]) == 3
    assert claimed[0] | claimed[1] == {
        ("AAAUSDT", "pioneer_bull"),
        ("BBBUSDT", "pioneer_bull"),
        ("CCCUSDT", "pioneer_bear"),
    }
    assert AlertHistory.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_new_alerts_are_handed_to_notifications_once(redis_client, test_broker):
    from apps.alerts.notifications.models import Delivery, Destination

    Destination.objects.create(name="ops", kind="webhook", url="http://127.0.0.1:18301/hook")
    Destination.objects.create(
        name="bears only", kind="webhook", url="http://127.0.0.1:18302/hook", rule_types=["pioneer_bear"]
    )
    first = fire(T)
    fire(T)  # the duplicate hands nothing over
    deliveries = list(Delivery.objects.all())
    assert len(deliveries) == 3 + 1
    assert {d.alert_id for d in deliveries} == {a.id for a in first}
    assert {d.alert_type for d in deliveries if d.destination.name == "bears only"} == {"pioneer_bear"}


@pytest.mark.django_db(transaction=True)
def test_deliveries_commit_with_the_alerts_they_belong_to(monkeypatch):
    """A process killed right after the claim's commit must not leave an alert no destination receives: the
    deliveries are in the same transaction, so a claim rolled back takes its deliveries with it, and one that
    committed has them even when nothing after the commit ran."""
    from django.db import transaction

    from apps.alerts import services
    from apps.alerts.notifications.models import Delivery, Destination

    Destination.objects.create(name="ops", kind="webhook", url="http://127.0.0.1:18301/hook")
    monkeypatch.setattr(services, "alerts_push", lambda **kwargs: None)  # nothing runs after the commit
    with pytest.raises(RuntimeError), transaction.atomic():
        assert len(fire(T)) == 3
        assert Delivery.objects.count() == 3
        raise RuntimeError("the claim's transaction fails")
    assert AlertHistory.objects.count() == 0 and Delivery.objects.count() == 0

    monkeypatch.setattr(transaction, "on_commit", lambda *args, **kwargs: None)  # the process dies at the commit
    assert len(fire(T)) == 3
    assert {d.alert_id for d in Delivery.objects.all()} == set(AlertHistory.objects.values_list("id", flat=True))
    assert Delivery.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_a_failing_delivery_insert_keeps_the_alerts(monkeypatch):
    from apps.alerts.notifications import services as notification_services
    from apps.alerts.notifications.models import Delivery, Destination

    Destination.objects.create(name="ops", kind="webhook", url="http://127.0.0.1:18301/hook")

    def broken(**kwargs):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 / 0")  # an error inside the transaction, not only in Python

    monkeypatch.setattr(notification_services, "deliveries_create", broken)
    assert len(fire(T)) == 3
    assert AlertHistory.objects.count() == 3 and Delivery.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_the_sweep_pushes_alerts_whose_push_never_happened(monkeypatch, redis_client):
    from datetime import timedelta

    from django.utils import timezone

    from apps.alerts import services

    pushed: list[str] = []
    monkeypatch.setattr(services, "alerts_broadcast", lambda payloads: pushed.extend(p["symbol"] for p in payloads))
    real_push = services.alerts_push
    monkeypatch.setattr(services, "alerts_push", lambda **kwargs: None)  # killed between commit and push
    fire(T)
    assert pushed == [] and services.alerts_push_sweep() == 0, "too young: a live push may still be on its way"

    AlertHistory.objects.update(created_at=timezone.now() - timedelta(seconds=30))
    AlertHistory.objects.filter(symbol="CCCUSDT").update(created_at=timezone.now() - timedelta(hours=1))
    monkeypatch.setattr(services, "alerts_push", real_push)
    assert services.alerts_push_sweep() == 2
    assert sorted(pushed) == ["AAAUSDT", "BBBUSDT"], "the hour-old alert is past mattering"
    stored = AlertHistory.objects.get(symbol="AAAUSDT")
    assert stored.metadata["timestamps"]["pushed_ms"] > stored.metadata["timestamps"]["evaluated_ms"]
    assert services.alerts_push_sweep() == 0 and len(pushed) == 2, "pushed once"


@pytest.mark.django_db(transaction=True)
def test_the_sweep_trusts_the_push_marker_when_the_record_failed(monkeypatch, redis_client):
    from datetime import timedelta

    from django.utils import timezone

    from apps.alerts import services

    pushed: list[str] = []
    monkeypatch.setattr(services, "alerts_broadcast", lambda payloads: pushed.extend(p["symbol"] for p in payloads))

    def record_fails(**kwargs):
        from django.db import OperationalError

        raise OperationalError("the database went away after the push")

    monkeypatch.setattr(services, "_pushed_record", record_fails)
    fire(T)
    assert len(pushed) == 3
    AlertHistory.objects.update(created_at=timezone.now() - timedelta(seconds=30))
    assert services.alerts_push_sweep() == 0 and len(pushed) == 3, "the Redis marker says they were pushed"
