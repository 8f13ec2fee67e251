"""The /ws/alerts protocol on the real Redis channel layer (channels_redis pub/sub)."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from rest_framework.test import APIClient

from apps.alerts.models import UserSettings
from apps.alerts.services import rules_builtin_seed
from apps.api.consumers import CLOSE_AUTH_FAILED, CLOSE_PING_TIMEOUT, CLOSE_TOO_SLOW, WS_EVENTS
from apps.api.fanout import alert_hub
from apps.api.routing import websocket_urlpatterns
from screener_project.kernel.channels import ALERTS_GROUP, alert_batch_message

from .conftest import make_token

application = URLRouter(websocket_urlpatterns)
# Channels closes stale database connections around each consumer message, so every test needs the database.
pytestmark = pytest.mark.django_db(transaction=True)


def alert(symbol: str = "BTCUSDT", alert_type: str = "pioneer_bull", **extra) -> dict:
    return {
        "id": "6f1c1d5e-8a0b-4a53-9d1e-3f1d6c2b9a10",
        "triggered_at": "2026-11-23T10:28:00+00:00",
        "symbol": symbol,
        "alert_type": alert_type,
        "timeframe": "5m",
        "price": 97000.5,
        "volume": 1234567.0,
        "change_pct": 1.25,
        "metadata": {"minute": "2026-11-23T10:27:00+00:00", **extra},
    }


async def publish(data: dict) -> None:
    await get_channel_layer().group_send(ALERTS_GROUP, {"type": "alert.message", "data": data})


async def hub_subscribed() -> None:
    """Waits until Redis has this process's subscription to the alerts group (SUBSCRIBE is not acknowledged)."""
    layer = get_channel_layer()
    name = layer._get_layer()._get_group_channel_name(ALERTS_GROUP)
    client = aioredis.Redis.from_url(settings.REDIS_URL)
    try:
        for _ in range(200):
            counts = dict(await client.pubsub_numsub(name))
            if counts.get(name.encode(), 0) > 0:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the alerts hub never subscribed")
    finally:
        await client.aclose()


async def connect(path: str = "/ws/alerts", headers: list | None = None) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path, headers=headers or [])
    connected, _ = await communicator.connect()
    assert connected
    await hub_subscribed()
    return communicator


async def expect_alert(communicator: WebsocketCommunicator, symbol: str, alert_type: str) -> dict:
    frame = await communicator.receive_json_from(timeout=3)
    assert frame["type"] == "alert"
    assert (frame["data"]["symbol"], frame["data"]["alert_type"]) == (symbol, alert_type)
    return frame["data"]


async def test_alert_reaches_client_in_spec_shape():
    client = await connect()
    sent = alert()
    await publish(sent)
    assert await expect_alert(client, "BTCUSDT", "pioneer_bull") == sent
    await client.disconnect()


async def test_path_with_trailing_slash_is_served():
    client = await connect("/ws/alerts/")
    await publish(alert(symbol="ETHUSDT"))
    await expect_alert(client, "ETHUSDT", "pioneer_bull")
    await client.disconnect()


async def test_every_client_of_the_process_gets_one_copy():
    clients = [await connect() for _ in range(5)]
    await publish(alert())
    for client in clients:
        await expect_alert(client, "BTCUSDT", "pioneer_bull")
        assert await client.receive_nothing(timeout=0.2)
    for client in clients:
        await client.disconnect()


async def test_subscribe_filters_symbols_and_alert_types():
    client = await connect()
    await client.send_json_to(
        {"type": "subscribe", "channels": ["alerts"], "symbols": ["ethusdt"], "alert_types": ["top_hunter"]}
    )
    reply = await client.receive_json_from(timeout=3)
    assert reply == {
        "type": "subscribed",
        "channels": ["alerts"],
        "symbols": ["ETHUSDT"],
        "alert_types": ["top_hunter"],
    }
    await publish(alert(symbol="BTCUSDT", alert_type="top_hunter"))
    await publish(alert(symbol="ETHUSDT", alert_type="pioneer_bull"))
    await publish(alert(symbol="ETHUSDT", alert_type="top_hunter"))
    await expect_alert(client, "ETHUSDT", "top_hunter")
    assert await client.receive_nothing(timeout=0.3)
    await client.disconnect()


async def test_unsubscribe_pauses_and_subscribe_resumes():
    client = await connect()
    await client.send_json_to({"type": "unsubscribe"})
    assert (await client.receive_json_from(timeout=3))["type"] == "unsubscribed"
    await publish(alert(symbol="SOLUSDT"))
    assert await client.receive_nothing(timeout=0.3)
    await client.send_json_to({"type": "subscribe", "channels": ["alerts"]})
    assert (await client.receive_json_from(timeout=3))["type"] == "subscribed"
    await publish(alert(symbol="SOLUSDT"))
    await expect_alert(client, "SOLUSDT", "pioneer_bull")
    await client.disconnect()


@pytest.mark.parametrize(
    "frame, fragment",
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"type": "dance"}', "Unknown message type"),
        ('{"type": "subscribe", "channels": ["news"]}', "'channels'"),
        ('{"type": "subscribe", "symbols": "BTCUSDT"}', "'symbols'"),
        ('{"type": "subscribe", "alert_types": ["a b"]}', "'alert_types'"),
        ('{"type": "auth"}', "'token'"),
    ],
)
async def test_bad_frames_get_an_error_and_the_socket_stays_open(frame, fragment):
    counted = WS_EVENTS.labels("bad_frame")._value.get()
    client = await connect()
    await client.send_to(text_data=frame)
    reply = await client.receive_json_from(timeout=3)
    assert reply["type"] == "error" and fragment in reply["message"]
    assert WS_EVENTS.labels("bad_frame")._value.get() == counted + 1
    await publish(alert())
    await expect_alert(client, "BTCUSDT", "pioneer_bull")
    await client.disconnect()


async def test_client_ping_gets_pong():
    client = await connect()
    await client.send_json_to({"type": "ping"})
    assert await client.receive_json_from(timeout=3) == {"type": "pong"}
    await client.disconnect()


async def test_authenticated_client_gets_only_selected_alerts():
    await UserSettings.objects.acreate(user_id="user-7", selected_alerts=["bull_whale"])
    client = await connect()
    await client.send_json_to({"type": "auth", "token": make_token(sub="user-7")})
    reply = await client.receive_json_from(timeout=3)
    assert reply == {"type": "auth", "success": True, "user_id": "user-7", "selected_alerts": ["bull_whale"]}
    await publish(alert(alert_type="pioneer_bull"))
    await publish(alert(alert_type="bull_whale"))
    await expect_alert(client, "BTCUSDT", "bull_whale")
    assert await client.receive_nothing(timeout=0.3)
    # An explicit subscription overrides the saved selection.
    await client.send_json_to({"type": "subscribe", "channels": ["alerts"], "alert_types": ["pioneer_bull"]})
    assert (await client.receive_json_from(timeout=3))["alert_types"] == ["pioneer_bull"]
    await publish(alert(alert_type="bull_whale"))
    await publish(alert(alert_type="pioneer_bull"))
    await expect_alert(client, "BTCUSDT", "pioneer_bull")
    await client.disconnect()


async def test_a_saved_selection_applies_to_open_sockets_of_that_user_only():
    await sync_to_async(rules_builtin_seed)()  # transactional tests start from empty tables
    await UserSettings.objects.acreate(user_id="user-8", selected_alerts=["bull_whale"])
    mine, theirs = await connect(), await connect()
    for client, user in ((mine, "user-8"), (theirs, "user-9")):
        await client.send_json_to({"type": "auth", "token": make_token(sub=user)})
        assert (await client.receive_json_from(timeout=3))["success"] is True

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(sub='user-8')}")
    response = await sync_to_async(api.post)("/api/settings", {"selected_alerts": ["pioneer_bull"]}, format="json")
    assert response.status_code == 200

    # Frames of one socket arrive in publish order: once the last alert is in, the earlier one was dropped.
    for _ in range(100):
        await publish(alert(alert_type="bull_whale", probe=True))
        await publish(alert(alert_type="pioneer_bull"))
        frame = await mine.receive_json_from(timeout=3)
        if frame["data"]["alert_type"] == "pioneer_bull":
            break
        await mine.receive_json_from(timeout=3)  # the selection is not applied yet: the pioneer_bull follows
    else:
        raise AssertionError("the new selection never reached the open socket")
    assert await mine.receive_nothing(timeout=0.3)
    # The other user's socket keeps its own selection (none saved: everything).
    await publish(alert(alert_type="flat_8h"))
    while (frame := await theirs.receive_json_from(timeout=3))["data"]["alert_type"] != "flat_8h":
        pass
    await mine.disconnect()
    await theirs.disconnect()


async def test_token_in_the_url_authenticates_at_connect():
    await UserSettings.objects.acreate(user_id="user-10", selected_alerts=["flat_1m"])
    client = await connect(f"/ws/alerts?token={make_token(sub='user-10')}")
    reply = await client.receive_json_from(timeout=3)
    assert reply == {"type": "auth", "success": True, "user_id": "user-10", "selected_alerts": ["flat_1m"]}
    await publish(alert(alert_type="pioneer_bull"))
    await publish(alert(alert_type="flat_1m"))
    await expect_alert(client, "BTCUSDT", "flat_1m")
    await client.disconnect()


async def test_bad_token_in_the_url_is_refused():
    communicator = WebsocketCommunicator(application, f"/ws/alerts?token={make_token(expires_in=-120)}")
    connected, _ = await communicator.connect()
    assert connected
    reply = await communicator.receive_json_from(timeout=3)
    assert reply["type"] == "error" and "expired" in reply["message"]
    assert (await communicator.receive_output(timeout=3)) == {"type": "websocket.close", "code": CLOSE_AUTH_FAILED}


async def test_authenticated_client_without_saved_selection_gets_everything():
    client = await connect()
    await client.send_json_to({"type": "auth", "token": make_token(sub="nobody-yet")})
    assert (await client.receive_json_from(timeout=3))["selected_alerts"] == []
    await publish(alert(alert_type="flat_8h"))
    await expect_alert(client, "BTCUSDT", "flat_8h")
    await client.disconnect()


@pytest.mark.parametrize(
    "token, fragment",
    [
        (make_token(expires_in=-120), "expired"),
        (make_token(key="another-secret-that-is-long-enough-32b"), "signature"),
        (make_token(audience="anon"), "audience"),
        (make_token(key="", algorithm="none"), "'none'"),
        ("garbage", "malformed"),
    ],
)
async def test_bad_token_gets_error_then_close(token, fragment):
    client = await connect()
    await client.send_json_to({"type": "auth", "token": token})
    reply = await client.receive_json_from(timeout=3)
    assert reply["type"] == "error" and reply["error"] == "auth_failed" and fragment in reply["message"]
    closed = await client.receive_output(timeout=3)
    assert closed == {"type": "websocket.close", "code": CLOSE_AUTH_FAILED}
    await client.disconnect()


async def test_server_pings_and_pong_keeps_client_open(settings):
    settings.WS_PING_INTERVAL_SECONDS = 0.2
    client = await connect()
    for _ in range(4):
        assert await client.receive_json_from(timeout=3) == {"type": "ping"}
        await client.send_json_to({"type": "pong"})
    await publish(alert())
    frame = await client.receive_json_from(timeout=3)
    while frame["type"] == "ping":
        frame = await client.receive_json_from(timeout=3)
    assert frame["type"] == "alert"
    await client.disconnect()


async def test_client_missing_two_pongs_is_closed(settings):
    settings.WS_PING_INTERVAL_SECONDS = 0.2
    client = await connect()
    assert await client.receive_json_from(timeout=3) == {"type": "ping"}
    assert await client.receive_json_from(timeout=3) == {"type": "ping"}
    closed = await client.receive_output(timeout=3)
    assert closed == {"type": "websocket.close", "code": CLOSE_PING_TIMEOUT}
    await client.disconnect()


async def test_slow_client_never_delays_others_and_is_closed(settings):
    settings.WS_SEND_QUEUE_SIZE = 3
    fast = await connect()
    hub = alert_hub()
    before = set(hub.clients)
    slow = await connect()
    (slow_consumer,) = set(hub.clients) - before
    stalled = asyncio.Event()
    original_send = slow_consumer.base_send

    async def hang(message):
        if message["type"] == "websocket.send":
            stalled.set()
            await asyncio.Event().wait()
        await original_send(message)

    slow_consumer.base_send = hang
    for n in range(6):
        await publish(alert(symbol=f"COIN{n}USDT"))
        await expect_alert(fast, f"COIN{n}USDT", "pioneer_bull")
    assert stalled.is_set()
    closed = await slow.receive_output(timeout=3)
    assert closed == {"type": "websocket.close", "code": CLOSE_TOO_SLOW}
    await slow.disconnect()
    await fast.disconnect()


async def test_foreign_origin_is_refused_and_allowed_origin_accepted(settings):
    settings.WS_ALLOWED_ORIGINS = ["https://app.example.com"]
    refused = WebsocketCommunicator(application, "/ws/alerts", headers=[(b"origin", b"https://evil.example.org")])
    connected, _ = await refused.connect()
    assert not connected
    allowed = WebsocketCommunicator(application, "/ws/alerts", headers=[(b"origin", b"https://app.example.com")])
    connected, _ = await allowed.connect()
    assert connected
    await allowed.disconnect()
    same_site = WebsocketCommunicator(application, "/ws/alerts", headers=[(b"origin", b"http://localhost:8000")])
    connected, _ = await same_site.connect()
    assert connected
    await same_site.disconnect()


async def test_malformed_group_message_is_ignored_and_delivery_continues():
    client = await connect()
    await get_channel_layer().group_send(ALERTS_GROUP, {"type": "alert.message", "data": "not an alert"})
    await get_channel_layer().group_send(ALERTS_GROUP, {"type": "something.else"})
    await publish(alert(symbol="XRPUSDT"))
    await expect_alert(client, "XRPUSDT", "pioneer_bull")
    await client.disconnect()


async def test_alert_message_sent_to_a_consumer_directly_is_delivered():
    client = await connect()
    (consumer,) = alert_hub().clients
    await consumer.alert_message({"type": "alert.message", "data": alert(symbol="ADAUSDT")})
    await expect_alert(client, "ADAUSDT", "pioneer_bull")
    await client.disconnect()


async def test_a_batch_reaches_each_client_in_order_filtered_by_its_subscription():
    everything, btc_only = await connect(), await connect()
    await btc_only.send_json_to({"type": "subscribe", "channels": ["alerts"], "symbols": ["BTCUSDT"]})
    assert (await btc_only.receive_json_from(timeout=3))["type"] == "subscribed"
    batch = [alert(symbol="ETHUSDT"), alert(symbol="BTCUSDT", alert_type="top_hunter"), alert(symbol="SOLUSDT")]
    await get_channel_layer().group_send(ALERTS_GROUP, alert_batch_message(batch))
    for sent in batch:
        assert await expect_alert(everything, sent["symbol"], sent["alert_type"]) == sent
    await expect_alert(btc_only, "BTCUSDT", "top_hunter")
    assert await btc_only.receive_nothing(timeout=0.2)
    await everything.disconnect()
    await btc_only.disconnect()


async def test_a_bad_item_in_a_batch_is_skipped_and_the_rest_delivered():
    client = await connect()
    batch = ["not an alert", alert(symbol="ADAUSDT"), 17, alert(symbol="XRPUSDT")]
    await get_channel_layer().group_send(ALERTS_GROUP, alert_batch_message(batch))
    await expect_alert(client, "ADAUSDT", "pioneer_bull")
    await expect_alert(client, "XRPUSDT", "pioneer_bull")
    assert await client.receive_nothing(timeout=0.2)
    await client.disconnect()


async def test_the_engine_broadcast_splits_a_market_wide_move_and_keeps_its_order(monkeypatch):
    from apps.alerts import services

    monkeypatch.setattr(services, "BROADCAST_BATCH_SIZE", 2)
    layer, messages = get_channel_layer(), []
    group_send = layer.group_send

    async def recorded(group, message):
        messages.append(message)
        await group_send(group, message)

    monkeypatch.setattr(layer, "group_send", recorded)
    client = await connect()
    sent = [alert(symbol=f"SYM{n}USDT") for n in range(5)]
    await sync_to_async(services.alerts_broadcast)(sent)
    assert [len(message["data"]) for message in messages] == [2, 2, 1]
    for item in sent:
        await expect_alert(client, item["symbol"], "pioneer_bull")
    assert await client.receive_nothing(timeout=0.2)
    await client.disconnect()
