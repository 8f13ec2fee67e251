"""The alert fan-out under a real daphne: a batch's frames, framed once, reach each client in order, as text frames
any WebSocket client reads, and leave through the direct path (one write per client); a client that stops reading
is closed once its outbox is full, instead of the server buffering for it without end."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket

import httpx
import pytest
import websockets
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection

from apps.alerts.services import rules_builtin_seed
from apps.api.bench import daphne_running
from apps.api.compat.tokens import compat_token_issue
from apps.api.consumers import CLOSE_TOO_SLOW
from screener_project.kernel.channels import ALERTS_GROUP, alert_batch_message, alert_message
from tests.e2e.processes import free_port

# Starts daphne: not in `./screener test --fast`.
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def alert(n: int, symbol: str) -> dict:
    return {
        "id": f"00000000-0000-4000-8000-{n:012d}",
        "triggered_at": "2026-11-23T10:28:00+00:00",
        "symbol": symbol,
        "alert_type": "pioneer_bull",
        "timeframe": "5m",
        "price": 1.5,
        "volume": 2.0,
        "change_pct": 0.5,
        "metadata": {"text": "é ✓ " + "x" * (n * 40)},  # lengths on both sides of the 126-byte frame header switch
    }


async def next_alert(client) -> dict:
    while True:
        frame = await asyncio.wait_for(client.recv(), timeout=5)
        assert isinstance(frame, str)  # a text frame
        message = json.loads(frame)
        if message["type"] == "alert":
            return message["data"]


async def hub_subscribed(layer, client) -> None:
    """Until the server's subscription to the alerts group is in place, a probe may be lost: repeat it until
    `client` gets one."""
    probe = alert(0, "PROBEUSDT")
    while True:
        await layer.group_send(ALERTS_GROUP, alert_message(probe))
        try:
            await asyncio.wait_for(next_alert(client), timeout=0.5)
            return
        except TimeoutError:
            continue


async def scenario(address: str) -> tuple[list[dict], list[dict]]:
    layer = get_channel_layer()
    url = f"ws://{address}/ws/alerts"
    async with websockets.connect(url) as everything, websockets.connect(url) as btc_only:
        await btc_only.send(json.dumps({"type": "subscribe", "channels": ["alerts"], "symbols": ["BTCUSDT"]}))
        assert json.loads(await asyncio.wait_for(btc_only.recv(), timeout=5))["type"] == "subscribed"
        await hub_subscribed(layer, everything)
        while True:  # the repeated probes that were still on their way
            try:
                await asyncio.wait_for(next_alert(everything), timeout=0.3)
            except TimeoutError:
                break
        batch = [alert(1, "ETHUSDT"), alert(2, "BTCUSDT"), alert(3, "SOLUSDT"), alert(5, "BTCUSDT")]
        await layer.group_send(ALERTS_GROUP, alert_batch_message(batch))
        await layer.group_send(ALERTS_GROUP, alert_message(alert(4, "BTCUSDT")))
        got_everything = [await next_alert(everything) for _ in range(5)]
        got_btc = [await next_alert(btc_only) for _ in range(3)]
    return got_everything, got_btc


def test_a_batch_reaches_real_sockets_in_order_in_one_write_per_client():
    database_url = f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}"
    with daphne_running(port=free_port(), env={"DATABASE_URL": database_url}) as address:
        got_everything, got_btc = asyncio.run(scenario(address))
        exposition = httpx.get(f"http://{address}/metrics", timeout=5).text
    assert [a["id"][-2:] for a in got_everything] == ["01", "02", "03", "05", "04"]
    assert [a["id"][-2:] for a in got_btc] == ["02", "05", "04"]
    assert got_everything[3] == alert(5, "BTCUSDT")  # the payload survives the framing, multi-byte text included
    direct = re.search(r'screener_websocket_alert_frames_total\{path="direct"\} (\d+(\.\d+)?)', exposition)
    assert direct is not None and float(direct.group(1)) >= 8  # the 8 frames above, the probes besides


def closed_slow(address: str) -> float:
    exposition = httpx.get(f"http://{address}/metrics", timeout=5).text
    found = re.search(r'screener_websocket_events_total\{event="closed_slow"\} (\d+(\.\d+)?)', exposition)
    return float(found.group(1)) if found else 0.0


async def stalled_client_scenario(address: str, stalled_path: str, *, limit: int) -> tuple[int, int, int, int]:
    """A client of `stalled_path` that stops reading right after its handshake (a small receive buffer, nothing
    read), beside a /ws/alerts client that reads everything; alerts of 16 KB are published until the server closes
    the stalled one. Returns (alerts published, alerts the reader got, alerts the stalled client got once it read
    again, its close code)."""
    layer = get_channel_layer()
    host, port = address.split(":")
    url = f"ws://{address}/ws/alerts"
    stalled_socket = socket.socket()
    stalled_socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled_socket.connect((host, int(port)))
    # max_queue=1: the client library itself stops reading once one frame waits unread.
    stalled_url = f"ws://{address}{stalled_path}"
    async with (
        websockets.connect(stalled_url, sock=stalled_socket, max_queue=1) as stalled,
        websockets.connect(url) as reader,
    ):
        await hub_subscribed(layer, reader)
        received: list[str] = []

        async def read_all() -> None:
            while True:
                data = await next_alert(reader)
                if data["symbol"] == "BIGUSDT":
                    received.append(data["id"])

        reading = asyncio.create_task(read_all())
        published = 0
        padding = "x" * 16_000
        while published < limit:
            for _ in range(20):
                published += 1
                big = {**alert(published, "BIGUSDT"), "metadata": {"text": padding}}
                await layer.group_send(ALERTS_GROUP, alert_message(big))
            await asyncio.sleep(0.05)
            if await asyncio.to_thread(closed_slow, address) >= 1:
                break
        while len(received) < published:  # the reader gets every alert, the stalled client notwithstanding
            await asyncio.sleep(0.05)
            assert not reading.done(), reading
        reading.cancel()
        # The stalled client reads again: what the server had buffered for it, then its close.
        stalled_got = 0
        with contextlib.suppress(websockets.ConnectionClosed):  # the close ends the reading
            while True:
                stalled_got += '"BIGUSDT"' in await asyncio.wait_for(stalled.recv(), timeout=10)
        return published, len(received), stalled_got, stalled.close_code


@pytest.mark.parametrize("surface", ["ws/alerts", "compat"])
def test_a_client_that_stops_reading_is_closed_once_its_outbox_is_full_and_the_others_get_everything(surface):
    if surface == "compat":  # the web client's socket: its user's token, the built-in rules it shows
        rules_builtin_seed()
        user = get_user_model().objects.create_user(username="t@example.com", email="t@example.com", password="x" * 12)
        stalled_path = f"/{settings.COMPAT_PREFIX}/ws/alerts?token={compat_token_issue(user)}"
    else:
        stalled_path = "/ws/alerts"
    database_url = f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}"
    env = {"DATABASE_URL": database_url, "WS_SEND_QUEUE_SIZE": "50"}
    with daphne_running(port=free_port(), env=env) as address:
        published, received, stalled_got, close_code = asyncio.run(
            stalled_client_scenario(address, stalled_path, limit=3000)
        )
        closed = closed_slow(address)
    print(
        f"\n{surface}: stalled client closed after {published} alerts of 16 KB ({published * 16 / 1000:.1f} MB), "
        f"{stalled_got} of them reached it, close code {close_code}"
    )
    assert closed == 1  # without flow control the server would have buffered all of it for that client
    assert stalled_got < published  # what waited in its outbox was never written
    # The close frame (4013), or, when the client is still reading its backlog as the close handshake's timeout
    # (autobahn's, 1 s) runs out, the connection dropped (1006). With a code daphne refuses to send, neither comes
    # and the reading above times out.
    assert close_code in (CLOSE_TOO_SLOW, 1006)
    assert received == published
