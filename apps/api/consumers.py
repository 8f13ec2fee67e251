"""/ws/alerts: live alerts for browsers.

Protocol (client -> server), every frame a JSON object:
- `{"type": "auth", "token": JWT}`: optional; a signed-in client then receives only its selected_alerts (when it
  has chosen any) until it subscribes with its own alert_types. Answer `{"type": "auth", "success": true, ...}`;
  a bad token gets `{"type": "error", ...}` and the socket is closed with CLOSE_AUTH_FAILED. Browsers cannot set
  headers on a WebSocket, so `/ws/alerts?token=JWT` does the same at connect time.
- `{"type": "subscribe", "channels": ["alerts"], "symbols": [...], "alert_types": [...]}`: filters, each optional
  (absent or empty = all). Answer `{"type": "subscribed", ...}`. `{"type": "unsubscribe"}` pauses delivery.
- `{"type": "pong"}` answers the server's `{"type": "ping"}` (every WS_PING_INTERVAL_SECONDS); a client that
  leaves WS_MAX_MISSED_PONGS pings unanswered is closed with CLOSE_PING_TIMEOUT. `{"type": "ping"}` gets a pong.
- `{"type": "resume", "since": "<id of the last alert it received>"}`: a client that reconnects (after a dropped
  socket or a restarted server) gets what it missed. Sent once per connection, after its subscribe (the replay
  honours the filters in force) and within RESUME_AFTER_CONNECT_SECONDS of the connect. The server replays, from
  alert_history and oldest first, the alerts created after that one (at most WS_RESUME_WINDOW_SECONDS back, at most
  WS_RESUME_MAX_ALERTS of them: the newest), as ordinary alert frames, then answers
  `{"type": "resumed", "since": id, "replayed": n, "truncated": bool}` (truncated: older alerts were left out; read
  them from GET /api/alerts) and goes on live. An id that is unknown or older than the
  window gets `{"type": "error", "error": "resume_unknown", ...}`: the socket stays open, live, and the client
  should reload the recent alerts over REST.
Server -> client: `{"type": "alert", "data": <alert of docs/api.md>}`. Until it subscribes, a client gets every alert.

Resumption has no gap and no duplicate at its seam: the client joined the live feed at connect, and the consumer
remembers the ids it sent live until the resume arrives; during the resume, live frames are held back; the replay
skips what went out live, the held frames follow the replay minus what it already held, and a live frame that
arrives later for an alert the replay already sent (its push was under way) is dropped. The order is the creation
order, (created_at, id): the engine pushes each committed batch in that order too (apps.alerts.services).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from prometheus_client import Counter

from apps.alerts.models import AlertHistory, UserSettings
from apps.alerts.rule_types import RULE_TYPE_PATTERN
from apps.alerts.selectors import alert_payload
from screener_project.observability import WS_CONNECTIONS
from screener_project.strict_json import JsonRefused, json_loads_strict

from .auth import TokenError, token_verify
from .fanout import PING_FRAME, OutgoingAlert, SendRoom, alert_frame, alert_hub, daphne_websocket, outgoing_alert

logger = logging.getLogger(__name__)

# Close codes are in the private range (4000-4999): daphne's WebSocket library sends no other code but 1000 (it
# raises on the standard 1011 or 1013, and the socket would stay open), so each keeps its standard number's last three
# digits where it has one.
CLOSE_AUTH_FAILED = 4401
CLOSE_PING_TIMEOUT = 4408
# "Try again later" (1013): the client could not keep up and its outbox overflowed.
CLOSE_TOO_SLOW = 4013
# "Internal error" (1011): the server cannot serve the socket (the channel layer is unreachable).
CLOSE_SERVER_ERROR = 4011
MAX_FILTER_ITEMS = 1000
# A resume comes right after a (re)connect; the ids sent live are remembered this long for it, not for the life of
# every connection.
RESUME_AFTER_CONNECT_SECONDS = 60.0
# The longest client frame: a subscribe naming MAX_FILTER_ITEMS symbols and types fits with room to spare.
MAX_FRAME_CHARS = 256 * 1024
_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
# Alert types are rule types, as everywhere else (apps.alerts.rule_types).
_RULE_TYPE = re.compile(RULE_TYPE_PATTERN)

WS_EVENTS = Counter(
    "screener_websocket_events_total",
    "Alert WebSocket protocol events: bad frames, auth outcomes, clients closed for slowness or silence",
    ["event"],
)


# How alert frames left: "direct" (framed once by the fan-out, written straight to daphne's protocol, a batch in one
# write) or "queued" (through the client's outbox and ASGI: frames queued behind others, or another server).
WS_ALERT_FRAMES = Counter(
    "screener_websocket_alert_frames_total", "Alert frames sent to /ws/alerts clients, by how they left", ["path"]
)


class ProtocolError(ValueError):
    """A client frame that breaks the protocol; the message goes back to the client."""


def _names(message: dict, field: str, *, upper: bool, pattern: re.Pattern[str] = _NAME) -> frozenset[str] | None:
    value = message.get(field)
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > MAX_FILTER_ITEMS:
        raise ProtocolError(f"'{field}' must be a list of at most {MAX_FILTER_ITEMS} names")
    if not all(isinstance(item, str) and pattern.match(item) for item in value):
        raise ProtocolError(f"'{field}' must hold names of letters, digits and '_' ({pattern.pattern})")
    names = frozenset(item.upper() if upper else item for item in value)
    return names or None


@database_sync_to_async
def _selected_alerts(user_id: str) -> frozenset[str] | None:
    selected = UserSettings.objects.filter(user_id=user_id).values_list("selected_alerts", flat=True).first()
    return frozenset(str(item) for item in selected) if selected else None


@database_sync_to_async
def _alerts_after(
    since: uuid.UUID, *, symbols: frozenset[str] | None, alert_types: frozenset[str] | None
) -> tuple[list[dict], bool] | None:
    """The alerts created after alert `since` (oldest first) that a resuming client may get, and whether older ones
    were left out; None when that alert is unknown or older than the resume window."""
    oldest = timezone.now() - timedelta(seconds=settings.WS_RESUME_WINDOW_SECONDS)
    anchor = AlertHistory.objects.filter(id=since).values_list("created_at", flat=True).first()
    if anchor is None or anchor < oldest:
        return None
    after = AlertHistory.objects.filter(
        Q(created_at__gt=anchor) | Q(created_at=anchor, id__gt=since), created_at__gte=oldest
    )
    if symbols is not None:
        after = after.filter(symbol__in=sorted(symbols))
    if alert_types is not None:
        after = after.filter(alert_type__in=sorted(alert_types))
    limit = settings.WS_RESUME_MAX_ALERTS
    newest = list(after.order_by("-created_at", "-id")[: limit + 1])
    return [alert_payload(alert) for alert in reversed(newest[:limit])], len(newest) > limit


class HubConsumer(AsyncWebsocketConsumer):
    """A WebSocket consumer fed by this process's AlertHub (apps.api.fanout): no per-connection channel, so it needs
    neither its own Redis subscription nor a dispatch task per alert."""

    channel_layer_alias = "__alert_hub_only__"

    async def dispatch(self, message: dict) -> None:
        # Channels closes stale database connections (a thread hop) before every message; only connect and auth
        # read the database, through database_sync_to_async, which does that itself. Skipping it keeps a pong cheap.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)


class AlertConsumer(HubConsumer):
    async def connect(self) -> None:
        self.user_id: str | None = None
        self.selected_alerts: frozenset[str] | None = None
        self.symbols: frozenset[str] | None = None
        self.alert_types: frozenset[str] | None = None
        self.explicit_types = False
        self.paused = False
        self.unanswered_pings = 0
        self.closing = False
        # Resumption (see the module's docstring): ids sent live until the resume, frames held during it, ids the
        # replay sent that a late live frame may still bring.
        self.resumed = False
        self.live_ids: set[str] | None = set()
        self.connected_at = time.monotonic()
        self.held: list[tuple[str, str]] | None = None
        self.replayed_ids: set[str] = set()
        self.outbox: asyncio.Queue[str | int] = asyncio.Queue(maxsize=settings.WS_SEND_QUEUE_SIZE)
        self.hub = alert_hub()
        self.wire = daphne_websocket(self.base_send)
        self.room = SendRoom(self.wire)
        await self.accept()
        WS_CONNECTIONS.inc()
        self.sender = asyncio.create_task(self._drain_outbox())
        try:
            await self.hub.join(self)
        except Exception:  # the channel layer is unreachable: no alerts could reach this client
            logger.exception("Alert WebSocket could not join the alerts group")
            self._close_soon(CLOSE_SERVER_ERROR)
            return
        token = parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get("token")
        if token:
            await self._on_auth({"token": token[-1]})

    async def disconnect(self, code: int) -> None:
        if not hasattr(self, "sender"):
            return
        self.closing = True
        await self.hub.leave(self)
        self.sender.cancel()
        await asyncio.gather(self.sender, return_exceptions=True)
        WS_CONNECTIONS.dec()

    # --- server -> client -------------------------------------------------------------------------------------

    def wants(self, symbol: str, alert_type: str) -> bool:
        if self.paused or self.closing:
            return False
        if self.symbols is not None and symbol not in self.symbols:
            return False
        types = self.alert_types if self.explicit_types else self.selected_alerts
        return types is None or alert_type in types

    def deliver(self, alerts: Sequence[OutgoingAlert]) -> None:
        if self.closing:
            return
        sendable = [alert for alert in alerts if self._sendable(alert.frame, alert.alert_id)]
        if not sendable:
            return
        if (
            self.outbox.empty()
            and self.room.open.is_set()
            and self.wire is not None
            and self.wire.state == self.wire.STATE_OPEN
        ):
            # Nothing queued ahead of them: the batch's frames, framed once for every client, go out in one write.
            self.wire.sendData(b"".join(alert.wire for alert in sendable))
            WS_ALERT_FRAMES.labels("direct").inc(len(sendable))
            return
        for alert in sendable:
            self._enqueue(alert.frame)
        WS_ALERT_FRAMES.labels("queued").inc(len(sendable))

    def _sendable(self, frame: str, alert_id: str | None) -> bool:
        """Whether an alert frame goes out now; False when the replay sent it already or a resume is holding it."""
        if alert_id is None:
            return True
        if self.replayed_ids and alert_id in self.replayed_ids:
            self.replayed_ids.discard(alert_id)  # the replay sent it already
            return False
        if self.held is not None:
            self.held.append((frame, alert_id))
            return False
        if self.live_ids is not None:
            if (
                len(self.live_ids) < settings.WS_RESUME_MAX_ALERTS
                and time.monotonic() - self.connected_at < RESUME_AFTER_CONNECT_SECONDS
            ):
                self.live_ids.add(alert_id)
            else:  # a client this far into its connection has nothing left to resume
                self.live_ids, self.resumed = None, True
        return True

    def _enqueue(self, frame: str | int) -> None:
        if self.closing:
            return
        try:
            self.outbox.put_nowait(frame)
        except asyncio.QueueFull:
            logger.warning("Closing a WebSocket client %d frames behind", self.outbox.qsize())
            WS_EVENTS.labels("closed_slow").inc()
            self._close_soon(CLOSE_TOO_SLOW)

    def on_ping_tick(self) -> None:
        if self.unanswered_pings >= settings.WS_MAX_MISSED_PONGS:
            if not self.closing:
                logger.info("Closing a WebSocket client that left %d pings unanswered", self.unanswered_pings)
                WS_EVENTS.labels("closed_ping_timeout").inc()
            self._close_soon(CLOSE_PING_TIMEOUT)
            return
        self.unanswered_pings += 1
        self._enqueue(PING_FRAME)

    def on_user_settings(self, user_id: str, selected_alerts: frozenset[str] | None) -> None:
        # The user saved a new selection (POST /api/settings): it applies from the next alert, unless the client
        # subscribed with alert_types of its own, which still take precedence.
        if user_id == self.user_id:
            self.selected_alerts = selected_alerts

    def on_user_rules(self, user_key: str, disabled: frozenset[str]) -> None:
        """Rule switches of the compatibility surface's users do not apply to /ws/alerts clients."""

    async def alert_message(self, event: dict) -> None:
        """Handler of a group message sent to this consumer directly (the hub normally delivers)."""
        alert = outgoing_alert(event.get("data"))
        if alert is not None and self.wants(alert.symbol, alert.alert_type):
            self.deliver([alert])

    async def _drain_outbox(self) -> None:
        while True:
            frame = await self.outbox.get()
            if isinstance(frame, int):  # a close code queued behind the last frames
                await self.close(code=frame)
                return
            await self.room.open.wait()  # the client is reading: the transport has room again
            await self.send(text_data=frame)

    def _close_soon(self, code: int, *, flush: bool = False) -> None:
        """Closes the socket without waiting on it; with flush, after the frames already queued."""
        if self.closing:
            return
        self.closing = True
        if flush:
            try:
                self.outbox.put_nowait(code)
                return
            except asyncio.QueueFull:
                pass
        self.sender.cancel()
        asyncio.get_running_loop().create_task(self.close(code=code))

    async def _reply(self, message: dict) -> None:
        # Replies share the outbox so they stay in order with alerts and pings.
        self._enqueue(json.dumps(message))

    # --- client -> server -------------------------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            if text_data is None:
                raise ProtocolError("Frames must be JSON text")
            if len(text_data) > MAX_FRAME_CHARS:
                raise ProtocolError(f"Frame is longer than {MAX_FRAME_CHARS} characters")
            try:
                message = json_loads_strict(text_data)
            except JsonRefused as exc:
                raise ProtocolError(f"Frame is not valid JSON: {exc}") from exc
            if not isinstance(message, dict):
                raise ProtocolError("Frame must be a JSON object")
            kind = message.get("type")
            handler = {
                "auth": self._on_auth,
                "subscribe": self._on_subscribe,
                "unsubscribe": self._on_unsubscribe,
                "pong": self._on_pong,
                "ping": self._on_ping,
                "resume": self._on_resume,
            }.get(kind if isinstance(kind, str) else "")
            if handler is None:
                raise ProtocolError(f"Unknown message type {kind!r}")
            await handler(message)
        except ProtocolError as exc:
            logger.info("Bad WebSocket frame: %s", exc)
            WS_EVENTS.labels("bad_frame").inc()
            await self._reply({"type": "error", "error": "bad_request", "message": str(exc)})

    async def _on_auth(self, message: dict) -> None:
        token = message.get("token")
        if not isinstance(token, str) or not token:
            raise ProtocolError("'token' must be a non-empty string")
        try:
            # JWKS may need a network fetch: keep it off the event loop.
            claims = await sync_to_async(token_verify, thread_sensitive=False)(token=token)
        except TokenError as exc:
            logger.info("WebSocket auth refused: %s", exc)
            WS_EVENTS.labels("auth_failed").inc()
            await self._reply({"type": "error", "error": "auth_failed", "message": str(exc)})
            self._close_soon(CLOSE_AUTH_FAILED, flush=True)
            return
        self.user_id = claims["sub"]
        WS_EVENTS.labels("auth_ok").inc()
        self.selected_alerts = await _selected_alerts(self.user_id)
        await self._reply(
            {
                "type": "auth",
                "success": True,
                "user_id": self.user_id,
                "selected_alerts": sorted(self.selected_alerts) if self.selected_alerts else [],
            }
        )

    async def _on_subscribe(self, message: dict) -> None:
        channels = message.get("channels", ["alerts"])
        if not isinstance(channels, list) or "alerts" not in channels:
            raise ProtocolError("'channels' must be a list containing 'alerts'")
        symbols = _names(message, "symbols", upper=True)
        alert_types = _names(message, "alert_types", upper=False, pattern=_RULE_TYPE)
        self.symbols = symbols
        self.explicit_types = "alert_types" in message
        self.alert_types = alert_types
        self.paused = False
        types = self.alert_types if self.explicit_types else self.selected_alerts
        await self._reply(
            {
                "type": "subscribed",
                "channels": ["alerts"],
                "symbols": sorted(symbols) if symbols else None,
                "alert_types": sorted(types) if types else None,
            }
        )

    async def _on_unsubscribe(self, message: dict) -> None:
        self.paused = True
        await self._reply({"type": "unsubscribed", "channels": ["alerts"]})

    async def _on_pong(self, message: dict) -> None:
        self.unanswered_pings = 0

    async def _on_ping(self, message: dict) -> None:
        await self._reply({"type": "pong"})

    async def _on_resume(self, message: dict) -> None:
        since = message.get("since")
        try:
            anchor = uuid.UUID(since) if isinstance(since, str) else None
        except ValueError:
            anchor = None
        if anchor is None:
            raise ProtocolError("'since' must be the id of an alert")
        if self.resumed:
            raise ProtocolError(
                f"A connection resumes once, within {RESUME_AFTER_CONNECT_SECONDS:g} s of its (re)connect"
            )
        self.resumed = True
        self.held = []
        try:
            types = self.alert_types if self.explicit_types else self.selected_alerts
            found = await _alerts_after(anchor, symbols=self.symbols, alert_types=types)
        except Exception:  # the database is away: the client stays live, and is told it missed what it missed
            logger.exception("WebSocket resume failed")
            found = None
            error = {"type": "error", "error": "resume_failed", "message": "Could not read the alerts to resume."}
        else:
            error = {
                "type": "error",
                "error": "resume_unknown",
                "message": f"No alert {since} within the last {settings.WS_RESUME_WINDOW_SECONDS:g} s to resume"
                " from; read the recent alerts from GET /api/alerts.",
            }
        held, self.held = self.held, None
        sent_live, self.live_ids = self.live_ids or set(), None
        replayed: set[str] = set()
        if found is None:
            WS_EVENTS.labels("resume_refused").inc()
            self._enqueue(json.dumps(error))
        else:
            alerts, truncated = found
            for data in alerts:
                if data["id"] in sent_live or not self.wants(data["symbol"], data["alert_type"]):
                    continue
                self._enqueue(alert_frame(data))
                replayed.add(data["id"])
            WS_EVENTS.labels("resumed").inc()
            self._enqueue(
                json.dumps({"type": "resumed", "since": since, "replayed": len(replayed), "truncated": truncated})
            )
        for frame, alert_id in held:
            if alert_id in replayed:
                replayed.discard(alert_id)
            else:
                self._enqueue(frame)
        # What is left may still come live (its push was under way when the replay read it): dropped then.
        self.replayed_ids = replayed
