"""AlertHub: how the alerts of group messages reach the clients of one process (no server, no channel layer)."""

from __future__ import annotations

import asyncio

import pytest

from apps.api.fanout import AlertHub, OutgoingAlert
from screener_project.kernel.channels import alert_batch_message, alert_message


class RecordingClient:
    def __init__(self, symbols: set[str] | None = None) -> None:
        self.symbols = symbols
        self.deliveries: list[list[str]] = []  # the symbols of each call

    def wants(self, symbol: str, alert_type: str) -> bool:
        return self.symbols is None or symbol in self.symbols

    def deliver(self, alerts: list[OutgoingAlert]) -> None:
        self.deliveries.append([alert.symbol for alert in alerts])


def alert(symbol: str) -> dict:
    return {"id": f"id-{symbol}", "symbol": symbol, "alert_type": "pioneer_bull", "metadata": {}}


async def until(condition, timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def hub_with(*clients: RecordingClient) -> AlertHub:
    hub = AlertHub()
    hub.clients.update(clients)
    return hub


async def test_a_batch_reaches_each_client_in_one_call_filtered_in_order(settings):
    settings.WS_FANOUT_COALESCE_MS = 0
    everything, btc = RecordingClient(), RecordingClient({"BTCUSDT"})
    hub = hub_with(everything, btc)
    hub.publish(alert_batch_message([alert("ETHUSDT"), alert("BTCUSDT"), alert("SOLUSDT"), alert("BTCUSDT")]))
    assert everything.deliveries == [["ETHUSDT", "BTCUSDT", "SOLUSDT", "BTCUSDT"]]
    assert btc.deliveries == [["BTCUSDT", "BTCUSDT"]]


async def test_without_coalescing_every_message_goes_out_at_once(settings):
    settings.WS_FANOUT_COALESCE_MS = 0
    client = RecordingClient()
    hub = hub_with(client)
    hub.publish(alert_message(alert("ETHUSDT")))
    hub.publish(alert_message(alert("BTCUSDT")))
    assert client.deliveries == [["ETHUSDT"], ["BTCUSDT"]]


async def test_messages_close_behind_a_delivery_wait_for_the_interval_and_go_out_together(settings):
    settings.WS_FANOUT_COALESCE_MS = 150
    client = RecordingClient()
    hub = hub_with(client)
    loop = asyncio.get_running_loop()
    hub.publish(alert_message(alert("ETHUSDT")))
    first = loop.time()
    assert client.deliveries == [["ETHUSDT"]]  # the first goes out at once
    hub.publish(alert_message(alert("BTCUSDT")))
    hub.publish(alert_batch_message([alert("SOLUSDT"), alert("XRPUSDT")]))
    assert client.deliveries == [["ETHUSDT"]]
    await until(lambda: len(client.deliveries) == 2)
    assert loop.time() - first >= 0.14
    assert client.deliveries[1] == ["BTCUSDT", "SOLUSDT", "XRPUSDT"]


async def test_an_alert_after_a_quiet_interval_goes_out_at_once(settings):
    settings.WS_FANOUT_COALESCE_MS = 30
    client = RecordingClient()
    hub = hub_with(client)
    hub.publish(alert_message(alert("ETHUSDT")))
    await asyncio.sleep(0.05)
    hub.publish(alert_message(alert("BTCUSDT")))
    assert client.deliveries == [["ETHUSDT"], ["BTCUSDT"]]


@pytest.mark.parametrize(
    "message",
    [
        {"type": "alert.batch", "data": "not a list"},
        {"type": "alert.message", "data": ["a list"]},
        {"type": "alert.batch", "data": ["not an alert", 3]},
        {"type": "something.else"},
        "not a dict",
    ],
)
async def test_a_malformed_message_delivers_nothing(settings, message):
    settings.WS_FANOUT_COALESCE_MS = 0
    client = RecordingClient()
    hub = hub_with(client)
    assert hub.publish(message) == 0
    hub.publish(alert_message(alert("ETHUSDT")))
    assert client.deliveries == [["ETHUSDT"]]
