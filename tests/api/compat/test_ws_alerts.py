"""{p}/ws/alerts?token=... (compat README) on the real Redis channel layer: bare alert frames, nothing else."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from apps.alerts.models import AlertRule
from apps.alerts.services import rules_builtin_seed
from apps.api.compat import consumers
from apps.api.compat.account_services import rule_switch_set
from apps.api.compat.routing import websocket_urlpatterns
from apps.api.compat.tokens import compat_token_issue, compat_token_user
from apps.api.consumers import CLOSE_AUTH_FAILED, CLOSE_TOO_SLOW
from apps.api.fanout import alert_hub

from ..conftest import make_token
from ..test_consumers import alert, hub_subscribed, publish

application = URLRouter(websocket_urlpatterns)
pytestmark = pytest.mark.django_db(transaction=True)
PATH = f"/{settings.COMPAT_PREFIX}/ws/alerts"


@pytest.fixture(autouse=True)
def fresh_descriptions():
    """Rule descriptions are cached per process for a minute; each test reads its own."""
    consumers.descriptions.loaded_at = float("-inf")
    yield
    consumers.descriptions.loaded_at = float("-inf")


@pytest.fixture
def token(db) -> str:
    rules_builtin_seed()
    user = get_user_model().objects.create_user(username="trader", email="trader@example.com", password="x" * 12)
    return compat_token_issue(user)


async def connect(token: str, *, path: str = PATH, headers: list | None = None) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, f"{path}?token={token}", headers=headers or [])
    connected, _ = await communicator.connect()
    assert connected
    await hub_subscribed()
    return communicator


async def expected_frame(data: dict) -> dict:
    rule = await sync_to_async(AlertRule.objects.get)(rule_type=data["alert_type"])
    return {
        "id": data["id"],
        "symbol": data["symbol"],
        "rule_type": {"pioneer_bull": "futures_pioneer_bull", "big_bear_5m": "futures_5_big_bear"}.get(
            data["alert_type"], f"futures_{data['alert_type']}"
        ),
        "description": rule.description or rule.name,
        "timestamp": data["triggered_at"],
        "price": data["price"],
        "metadata": data["metadata"],
    }


async def test_a_signed_in_client_receives_each_alert_as_one_bare_object(token):
    client = await connect(token)
    first, second = (
        alert(symbol="BTCUSDT", alert_type="pioneer_bull"),
        alert(symbol="ETHUSDT", alert_type="big_bear_5m"),
    )
    await publish(first)
    await publish(second)
    assert await client.receive_json_from(timeout=3) == await expected_frame(first)
    received = await client.receive_json_from(timeout=3)
    assert received == await expected_frame(second) and received["rule_type"] == "futures_5_big_bear"
    assert await client.receive_nothing(timeout=0.2)
    await client.disconnect()


async def test_trailing_slash_path_is_served(token):
    client = await connect(token, path=PATH + "/")
    await publish(alert(symbol="XRPUSDT"))
    assert (await client.receive_json_from(timeout=3))["symbol"] == "XRPUSDT"
    await client.disconnect()


async def test_no_json_ping_ever_reaches_the_client(token, settings):
    settings.WS_PING_INTERVAL_SECONDS = 0.05
    client = await connect(token)
    # The hub ticks ~10 times meanwhile; none of it may reach this client, nor may the client be closed for silence.
    assert await client.receive_nothing(timeout=0.6)
    await publish(alert(symbol="ADAUSDT"))
    assert (await client.receive_json_from(timeout=3))["symbol"] == "ADAUSDT"
    await client.disconnect()


async def test_frames_the_client_sends_are_ignored(token):
    client = await connect(token)
    await client.send_to(text_data='{"type": "ping"}')
    await client.send_to(text_data="not json")
    assert await client.receive_nothing(timeout=0.3)
    await publish(alert(symbol="DOTUSDT"))
    assert (await client.receive_json_from(timeout=3))["symbol"] == "DOTUSDT"
    await client.disconnect()


async def test_each_alert_is_encoded_once_for_all_clients_of_the_process(token, monkeypatch):
    built = []
    original = consumers._client_frame

    def counting(envelope: str):
        built.append(envelope)
        return original(envelope)

    monkeypatch.setattr(consumers, "_client_frame", counting)
    clients = [await connect(token) for _ in range(4)]
    await publish(alert(symbol="LINKUSDT"))
    frames = [await client.receive_from(timeout=3) for client in clients]
    assert len(set(frames)) == 1 and json.loads(frames[0])["symbol"] == "LINKUSDT"
    assert len(built) == 1
    for client in clients:
        await client.disconnect()


def bad_tokens(user_token: str) -> dict[str, str]:
    return {
        "missing": "",
        "garbage": "not-a-token",
        "supabase": make_token(),  # a Supabase token of /api is no token here
        "tampered": user_token[:-2] + ("AA" if not user_token.endswith("AA") else "BB"),
    }


@pytest.mark.parametrize("kind", ["missing", "garbage", "supabase", "tampered", "expired", "inactive_user"])
async def test_a_bad_or_missing_token_is_closed_with_4401_and_no_frame(token, kind, settings):
    if kind == "expired":
        settings.COMPAT_TOKEN_TTL_SECONDS = -60
        user = await sync_to_async(get_user_model().objects.get)(username="trader")
        bad = await sync_to_async(compat_token_issue)(user)
    elif kind == "inactive_user":
        await sync_to_async(get_user_model().objects.filter(username="trader").update)(is_active=False)
        bad = token
    else:
        bad = bad_tokens(token)[kind]
    communicator = WebsocketCommunicator(application, f"{PATH}?token={bad}" if bad else PATH)
    connected, _ = await communicator.connect()
    assert connected  # accepted, then closed: a browser sees 4401 only on an accepted socket
    assert await communicator.receive_output(timeout=3) == {"type": "websocket.close", "code": CLOSE_AUTH_FAILED}
    assert not alert_hub().clients
    await communicator.disconnect()


async def test_a_slow_client_is_closed_and_never_delays_the_others(token, settings):
    settings.WS_SEND_QUEUE_SIZE = 3
    fast = await connect(token)
    hub = alert_hub()
    before = set(hub.clients)
    slow = await connect(token)
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
        assert (await fast.receive_json_from(timeout=3))["symbol"] == f"COIN{n}USDT"
    assert stalled.is_set()
    assert await slow.receive_output(timeout=3) == {"type": "websocket.close", "code": CLOSE_TOO_SLOW}
    await slow.disconnect()
    await fast.disconnect()


async def test_foreign_origin_is_refused(token, settings):
    settings.WS_ALLOWED_ORIGINS = ["https://app.example.com"]
    refused = WebsocketCommunicator(
        application, f"{PATH}?token={token}", headers=[(b"origin", b"https://evil.example")]
    )
    connected, _ = await refused.connect()
    assert not connected
    allowed = await connect(token, headers=[(b"origin", b"https://app.example.com")])
    await allowed.disconnect()


async def test_the_route_lives_under_the_compat_prefix_only(token):
    communicator = WebsocketCommunicator(application, f"/ws/alerts?token={token}")
    with pytest.raises(ValueError, match="No route found"):
        await communicator.connect()


async def test_rules_the_user_switched_off_are_not_pushed_and_a_switch_applies_at_once(token):
    user = await sync_to_async(compat_token_user)(token)
    await sync_to_async(rule_switch_set)(user=user, rule_type="big_bull_5m", enabled=False)
    client = await connect(token)
    await publish(alert(alert_type="big_bull_5m"))
    await publish(alert(alert_type="pioneer_bull"))
    assert (await client.receive_json_from(timeout=3))["rule_type"] == "futures_pioneer_bull"
    assert await client.receive_nothing(timeout=0.2)

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = await sync_to_async(api.put)(
        f"/{settings.COMPAT_PREFIX}/api/alert-rules/futures_pioneer_bull", {"enabled": False}, format="json"
    )
    assert response.status_code == 200
    await sync_to_async(api.put)(
        f"/{settings.COMPAT_PREFIX}/api/alert-rules/futures_5_big_bull", {"enabled": True}, format="json"
    )
    # Frames of one socket arrive in publish order: once the big_bull_5m is in, the pioneer_bull before it was dropped.
    for _ in range(100):
        await publish(alert(alert_type="pioneer_bull"))
        await publish(alert(alert_type="big_bull_5m"))
        if (await client.receive_json_from(timeout=3))["rule_type"] == "futures_5_big_bull":
            break
        await client.receive_json_from(timeout=3)
    else:
        raise AssertionError("the switches never reached the open socket")
    assert await client.receive_nothing(timeout=0.3)
    await client.disconnect()


async def test_rules_the_client_cannot_switch_are_not_pushed_unless_the_operator_sends_them(token, settings):
    client = await connect(token)
    await publish(alert(alert_type="bull_whale"))  # this screener's own rule: no switch in the client
    await publish(alert(alert_type="flat_8h"))
    await publish(alert(alert_type="top_hunter"))
    assert (await client.receive_json_from(timeout=3))["rule_type"] == "futures_top_hunter"
    assert await client.receive_nothing(timeout=0.3)

    settings.COMPAT_SEND_ALL_RULES = True
    await publish(alert(alert_type="bull_whale"))
    assert (await client.receive_json_from(timeout=3))["rule_type"] == "futures_bull_whale"
    await client.disconnect()
