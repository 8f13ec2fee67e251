"""One channel-layer subscription per process, fanned out locally to that process's WebSocket clients.

The alert engine publishes the alerts of each committed batch once to the channel-layer group ALERTS_GROUP
(screener_project.kernel.channels). Stock Channels would have every consumer join the group, so each
alert costs, per client, a queue hand-off, a msgpack decode, a dispatch task and a JSON encode. Here one AlertHub per
event loop joins the group, decodes and encodes the frame once, and drops the same text into each matching
client's bounded outbox; every client drains its own outbox, so a slow client never holds up the others. The hub
also drives the keep-alive pings for all of its clients from one timer.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import orjson
from autobahn.websocket.protocol import PreparedMessage, WebSocketServerProtocol
from channels.layers import get_channel_layer
from django.conf import settings
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from screener_project.kernel.channels import ALERT_BATCH_MESSAGE_TYPE, ALERT_MESSAGE_TYPE, ALERTS_GROUP

logger = logging.getLogger(__name__)

# A user saved new settings: the hubs update that user's open sockets, so a new selection applies without a
# reconnect. Its own group, so that nothing else subscribed to the alerts group ever sees it.
USER_SETTINGS_GROUP = "user_settings"
USER_SETTINGS_MESSAGE_TYPE = "user.settings"
# A user of the compatibility surface switched rules off or on (apps.api.compat): same group, its own type, since it
# names the rules to leave out rather than the ones to keep.
USER_RULES_MESSAGE_TYPE = "user.rules"
PING_FRAME = '{"type":"ping"}'


@dataclass(frozen=True, slots=True)
class OutgoingAlert:
    """One alert as every client receives it: encoded once per process, whatever the number of clients."""

    frame: str  # the text frame, {"type": "alert", "data": ...}
    wire: bytes  # the same frame as WebSocket bytes: a server's frames are unmasked, so every client's are equal
    symbol: str
    alert_type: str
    alert_id: str | None


class AlertClient(Protocol):
    def wants(self, symbol: str, alert_type: str) -> bool: ...

    def deliver(self, alerts: Sequence[OutgoingAlert]) -> None: ...

    def on_ping_tick(self) -> None: ...

    def on_user_settings(self, user_id: str, selected_alerts: frozenset[str] | None) -> None: ...

    def on_user_rules(self, user_key: str, disabled: frozenset[str]) -> None: ...


def alert_frame(data: dict) -> str:
    """The text frame a client receives for one alert."""
    return orjson.dumps({"type": "alert", "data": data}).decode()


def outgoing_alert(data: object) -> OutgoingAlert | None:
    """One alert of a group message, prepared for every client; None for an item that is not an alert."""
    if not isinstance(data, dict):
        logger.warning("Ignored an alert that is not an object: %.200r", data)
        return None
    try:
        frame = alert_frame(data)
    except TypeError:
        logger.warning("Ignored an alert that is not JSON: %.200r", data)
        return None
    wire = PreparedMessage(frame.encode(), isBinary=False, applyMask=False, doNotCompress=True).payloadHybi
    alert_id = str(data.get("id", "")) or None
    return OutgoingAlert(frame, wire, str(data.get("symbol", "")), str(data.get("alert_type", "")), alert_id)


def daphne_websocket(send: object) -> WebSocketServerProtocol | None:
    """The autobahn protocol that daphne serves a WebSocket connection with, given the ASGI `send` it handed the
    application; None under any other server (the test communicator), whose clients then get every frame through
    ASGI.

    daphne's `send` is `functools.partial(server.handle_reply, protocol)`, and a `websocket.send` through it ends in
    `protocol.sendMessage`, which frames the text for that one client. The fan-out writes the frames it framed once
    for every client straight to the protocol instead: one write per client for a whole batch, where ASGI costs a
    hop, an encoding and a framing per alert and client. The frames are text frames with FIN set, unmasked and
    uncompressed, valid on any server socket (RFC 6455 5.1; RFC 7692 lets a message go uncompressed).
    """
    protocol = send.args[0] if isinstance(send, functools.partial) and send.args else None
    return protocol if isinstance(protocol, WebSocketServerProtocol) else None


@implementer(IPushProducer)
class SendRoom:
    """Whether a client's connection has room for more frames, as Twisted sees it.

    daphne's transport buffers whatever is written to it; a client that stops reading would have the server buffer
    for it without end. Registered as the connection's streaming producer, this is paused by Twisted once more than
    its buffer size (64 KB) waits for that client, and resumed when that went out. Meanwhile the client's frames
    wait in its bounded outbox instead, and a client that never catches up overflows it and is closed (4013). Under
    any other server (`protocol` None) there is always room, as before.
    """

    def __init__(self, protocol: WebSocketServerProtocol | None) -> None:
        self.open = asyncio.Event()
        self.open.set()
        # daphne serves a WebSocket on the connection its HTTP channel read the handshake from, and that channel
        # stays registered as the transport's producer: it is told of everything after this one, as before.
        self.previous = None
        if protocol is None:
            return
        transport = protocol.transport
        previous = getattr(transport, "producer", None)
        try:
            if previous is not None:
                transport.unregisterProducer()
            transport.registerProducer(self, True)
            self.previous = previous
        except RuntimeError:  # a transport that keeps its producer to itself (TLS in daphne): as before
            logger.warning("WebSocket transport takes no producer; its client's frames are not held back")
            if previous is not None and getattr(transport, "producer", None) is None:
                transport.registerProducer(previous, True)

    def pauseProducing(self) -> None:  # noqa: N802 (Twisted's IPushProducer)
        self.open.clear()
        if self.previous is not None:
            self.previous.pauseProducing()

    def resumeProducing(self) -> None:  # noqa: N802
        self.open.set()
        if self.previous is not None:
            self.previous.resumeProducing()

    def stopProducing(self) -> None:  # noqa: N802 (the connection is going: nothing waits on it any more)
        self.open.set()
        if self.previous is not None:
            self.previous.stopProducing()


class AlertHub:
    """Receives the ALERTS_GROUP messages of one event loop and hands them to the registered clients."""

    def __init__(self) -> None:
        self.clients: set[AlertClient] = set()
        self.channel_name: str | None = None
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task] = []
        self._layer = None
        # Alerts taken but not yet delivered, the pending delivery, and when the last one went out (loop time).
        self._pending: list[OutgoingAlert] = []
        self._flush_later: asyncio.TimerHandle | None = None
        self._last_flush = float("-inf")

    async def join(self, client: AlertClient) -> None:
        async with self._lock:
            self.clients.add(client)
            if not self._tasks:
                await self._start()

    async def leave(self, client: AlertClient) -> None:
        async with self._lock:
            self.clients.discard(client)
            if not self.clients and self._tasks:
                await self._stop()

    async def _start(self) -> None:
        self._layer = get_channel_layer()
        self.channel_name = await self._layer.new_channel(prefix="alerthub.")
        await self._layer.group_add(ALERTS_GROUP, self.channel_name)
        await self._layer.group_add(USER_SETTINGS_GROUP, self.channel_name)
        self._tasks = [asyncio.create_task(self._receive_loop()), asyncio.create_task(self._ping_loop())]

    async def _stop(self) -> None:
        if self._flush_later is not None:
            self._flush_later.cancel()
            self._flush_later = None
        self._pending = []
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await self._layer.group_discard(ALERTS_GROUP, self.channel_name)
            await self._layer.group_discard(USER_SETTINGS_GROUP, self.channel_name)
        except Exception:  # the process is going away; the subscription dies with its connection
            logger.exception("Leaving the alerts group failed")
        self.channel_name = None

    async def _receive_loop(self) -> None:
        while True:
            try:
                message = await self._layer.receive(self.channel_name)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Channel layer receive failed; retrying")
                await asyncio.sleep(1.0)
                continue
            kind = message.get("type") if isinstance(message, dict) else None
            if kind in (USER_SETTINGS_MESSAGE_TYPE, USER_RULES_MESSAGE_TYPE) and self._pending:
                self.flush()  # alerts published before the change are filtered as they were then
            if kind == USER_SETTINGS_MESSAGE_TYPE:
                self.user_settings_changed(message)
            elif kind == USER_RULES_MESSAGE_TYPE:
                self.user_rules_changed(message)
            else:
                self.publish(message)

    def user_settings_changed(self, message: dict) -> int:
        """Hands a user's new alert selection to that user's clients; returns how many there were."""
        user_id, selected = message.get("user_id"), message.get("selected_alerts")
        if not isinstance(user_id, str) or not isinstance(selected, list):
            logger.warning("Ignored a malformed user settings message: %.200r", message)
            return 0
        selection = frozenset(str(item) for item in selected) or None
        for client in tuple(self.clients):
            client.on_user_settings(user_id, selection)
        return len(self.clients)

    def user_rules_changed(self, message: dict) -> int:
        """Hands a user's switched-off rules to that user's clients; returns how many clients were told."""
        user_key, disabled = message.get("user_key"), message.get("disabled")
        if not isinstance(user_key, str) or not isinstance(disabled, list):
            logger.warning("Ignored a malformed user rules message: %.200r", message)
            return 0
        switched_off = frozenset(str(item) for item in disabled)
        for client in tuple(self.clients):
            client.on_user_rules(user_key, switched_off)
        return len(self.clients)

    def publish(self, message: dict) -> int:
        """Takes one group message (one alert, or a batch of them) for the clients; returns how many alerts it held.

        The alerts go out at once, unless the last delivery was less than WS_FANOUT_COALESCE_MS ago: then they wait
        for the end of that interval, with whatever else arrives meanwhile. Each delivery costs a write per client
        whatever it carries, so the batches of several shards finishing within a few milliseconds of each other
        share one.
        """
        kind = message.get("type") if isinstance(message, dict) else None
        data = message.get("data") if isinstance(message, dict) else None
        if kind == ALERT_MESSAGE_TYPE and isinstance(data, dict):
            items = [data]
        elif kind == ALERT_BATCH_MESSAGE_TYPE and isinstance(data, list):
            items = data
        else:
            logger.warning("Ignored a malformed message on the alerts group: %.200r", message)
            return 0
        outgoing = [alert for item in items if (alert := outgoing_alert(item)) is not None]
        if not outgoing:
            return 0
        self._pending.extend(outgoing)
        if self._flush_later is None:
            loop = asyncio.get_running_loop()
            wait = self._last_flush + settings.WS_FANOUT_COALESCE_MS / 1000 - loop.time()
            if wait > 0:
                self._flush_later = loop.call_later(wait, self.flush)
            else:
                self.flush()
        return len(outgoing)

    def flush(self) -> int:
        """Hands the alerts taken since the last delivery to every interested client, each client's share in one
        call (so its socket takes them in one write); returns how many frames went out."""
        if self._flush_later is not None:
            self._flush_later.cancel()
            self._flush_later = None
        outgoing, self._pending = self._pending, []
        self._last_flush = asyncio.get_running_loop().time()
        delivered = 0
        for client in tuple(self.clients):
            wanted = [alert for alert in outgoing if client.wants(alert.symbol, alert.alert_type)]
            if wanted:
                client.deliver(wanted)
                delivered += len(wanted)
        return delivered

    async def _ping_loop(self) -> None:
        while True:
            await asyncio.sleep(settings.WS_PING_INTERVAL_SECONDS)
            for client in tuple(self.clients):
                client.on_ping_tick()


async def user_settings_broadcast(*, user_id: str, selected_alerts: list[str]) -> None:
    """Tells every web process that a user's alert selection changed."""
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(
            USER_SETTINGS_GROUP,
            {"type": USER_SETTINGS_MESSAGE_TYPE, "user_id": user_id, "selected_alerts": list(selected_alerts)},
        )


async def user_rules_broadcast(*, user_key: str, disabled: list[str]) -> None:
    """Tells every web process which rules a user of the compatibility surface switched off."""
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(
            USER_SETTINGS_GROUP, {"type": USER_RULES_MESSAGE_TYPE, "user_key": user_key, "disabled": list(disabled)}
        )


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AlertHub] = weakref.WeakKeyDictionary()


def alert_hub() -> AlertHub:
    """The hub of the running event loop (daphne runs one loop per process; tests run one per test)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = AlertHub()
    return hub
