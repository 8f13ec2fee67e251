"""The alert fan-out under a real daphne: a batch's frames, framed once, reach each client in order, as text frames
any WebSocket client reads, and leave through the direct path (one write per client)."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import pytest
import websockets
from channels.layers import get_channel_layer
from django.db import connection

from apps.api.bench import daphne_running
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


async def scenario(address: str) -> tuple[list[dict], list[dict]]:
    layer = get_channel_layer()
    url = f"ws://{address}/ws/alerts"
    async with websockets.connect(url) as everything, websockets.connect(url) as btc_only:
        await btc_only.send(json.dumps({"type": "subscribe", "channels": ["alerts"], "symbols": ["BTCUSDT"]}))
        assert json.loads(await asyncio.wait_for(btc_only.recv(), timeout=5))["type"] == "subscribed"
        # Until the server's subscription to the alerts group is in place, a probe may be lost: repeat it.
        probe = alert(0, "PROBEUSDT")
        while True:
            await layer.group_send(ALERTS_GROUP, alert_message(probe))
            try:
                await asyncio.wait_for(next_alert(everything), timeout=0.5)
                break
            except TimeoutError:
                continue
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
