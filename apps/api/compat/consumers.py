"""{p}/ws/alerts?token=...: live alerts for the web client (apps/api/compat/README.md).

Every text frame is exactly one alert object in the client's shape (GET {p}/api/alerts), nothing else: the client
treats any JSON frame as an alert, so there is no envelope, no reply and no application-level ping. Keep-alive is
the WebSocket protocol's own ping (daphne sends one after --ping-interval idle seconds, default 20, and drops a
client that has not answered within --ping-timeout, default 30; browsers answer by themselves).

The token (from POST {p}/auth/login) is required: without one, or with a bad or expired one, the socket is accepted
and closed at once with 4401, which the client can read (a refused handshake only says 1006). Frames the client sends
are ignored. Alerts arrive through the process's AlertHub (apps.api.fanout), as for /ws/alerts, so a client costs no
Redis subscription; each alert is turned into the client's frame once per process, whatever the number of clients.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from urllib.parse import parse_qs

import orjson
from channels.db import database_sync_to_async
from django.conf import settings

from apps.api.consumers import CLOSE_AUTH_FAILED, CLOSE_SERVER_ERROR, CLOSE_TOO_SLOW, WS_EVENTS, HubConsumer
from apps.api.fanout import OutgoingAlert, SendRoom, alert_hub, daphne_websocket
from screener_project.observability import WS_CONNECTIONS

from .account_selectors import compat_user_disabled_rules
from .account_services import compat_user_key
from .market_selectors import compat_alert, rule_descriptions
from .rule_catalogue import rule_shown
from .tokens import CompatTokenError, compat_token_user

logger = logging.getLogger(__name__)

DESCRIPTIONS_MAX_AGE_SECONDS = 60.0


class _Descriptions:
    """Rule descriptions for frames built on the event loop (no database there): refreshed off the loop at connect
    when older than DESCRIPTIONS_MAX_AGE_SECONDS."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.loaded_at = float("-inf")

    async def refresh(self) -> None:
        if time.monotonic() - self.loaded_at < DESCRIPTIONS_MAX_AGE_SECONDS:
            return
        try:
            self.values = await database_sync_to_async(rule_descriptions)()
            self.loaded_at = time.monotonic()
        except Exception:  # frames then fall back to the rule type's words
            logger.exception("Could not read the rule descriptions")


descriptions = _Descriptions()


class _FrameCache:
    """The hub hands every client the same envelope text object for one alert: its client frame is built on the
    first client and reused by the others (identity check, so no hashing or parsing per client)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: tuple[str, str | None] | None = None

    def frame(self, envelope: str) -> str | None:
        last = self._last
        if last is not None and last[0] is envelope:
            return last[1]
        built = _client_frame(envelope)
        with self._lock:
            self._last = (envelope, built)
        return built


def _client_frame(envelope: str) -> str | None:
    try:
        message = orjson.loads(envelope)
    except ValueError:
        return None
    data = message.get("data") if isinstance(message, dict) and message.get("type") == "alert" else None
    if not isinstance(data, dict):
        return None  # not an alert (the hub's JSON ping is never delivered here, but be sure)
    return orjson.dumps(compat_alert(data, descriptions.values)).decode()


frames = _FrameCache()


def _token(scope: dict) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[-1] if values and values[-1] else None


class CompatAlertConsumer(HubConsumer):
    async def connect(self) -> None:
        self.closing = False
        token = _token(self.scope)
        try:
            if token is None:
                raise CompatTokenError("A token is required.")
            self.user = await database_sync_to_async(compat_token_user)(token)
            self.disabled = await database_sync_to_async(compat_user_disabled_rules)(self.user)
        except CompatTokenError as exc:
            logger.info("Compat WebSocket refused: %s", exc)
            WS_EVENTS.labels("auth_failed").inc()
            self.closing = True
            await self.accept()
            await self.close(code=CLOSE_AUTH_FAILED)
            return
        WS_EVENTS.labels("auth_ok").inc()
        await descriptions.refresh()
        # Joined before the handshake completes, so no alert published after the client sees the socket open is
        # missed; what arrives meanwhile waits in the outbox until the sender starts.
        self.outbox: asyncio.Queue[str] = asyncio.Queue(maxsize=settings.WS_SEND_QUEUE_SIZE)
        self.hub = alert_hub()
        try:
            await self.hub.join(self)
        except Exception:  # the channel layer is unreachable: no alerts could reach this client
            logger.exception("Compat alert WebSocket could not join the alerts group")
            await self.hub.leave(self)
            self.closing = True
            await self.accept()
            await self.close(code=CLOSE_SERVER_ERROR)
            return
        self.room = SendRoom(daphne_websocket(self.base_send))
        await self.accept()
        WS_CONNECTIONS.inc()
        self.sender = asyncio.create_task(self._drain_outbox())

    async def disconnect(self, code: int) -> None:
        self.closing = True
        if hasattr(self, "hub"):
            await self.hub.leave(self)
        if not hasattr(self, "sender"):
            return
        self.sender.cancel()
        await asyncio.gather(self.sender, return_exceptions=True)
        WS_CONNECTIONS.dec()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The client has nothing to say on this socket; whatever it sends is ignored."""

    # --- AlertHub client protocol -----------------------------------------------------------------------------

    def wants(self, symbol: str, alert_type: str) -> bool:
        # Every alert the client can switch but the rules this user switched off (PUT {p}/api/alert-rules/...), as
        # for their webhooks; the watchlist is the client's own filter.
        return not self.closing and alert_type not in self.disabled and rule_shown(alert_type)

    def deliver(self, alerts: Sequence[OutgoingAlert]) -> None:
        for alert in alerts:
            if self.closing:
                return
            client_frame = frames.frame(alert.frame)
            if client_frame is None:
                continue
            try:
                self.outbox.put_nowait(client_frame)
            except asyncio.QueueFull:
                logger.warning("Closing a compat WebSocket client %d frames behind", self.outbox.qsize())
                WS_EVENTS.labels("closed_slow").inc()
                self._close_soon(CLOSE_TOO_SLOW)

    def on_ping_tick(self) -> None:
        """Protocol pings (daphne) keep this socket alive; the hub's JSON ping would read as an alert here."""

    def on_user_settings(self, user_id: str, selected_alerts: frozenset[str] | None) -> None:
        """/api/settings selections do not apply to this surface's users."""

    def on_user_rules(self, user_key: str, disabled: frozenset[str]) -> None:
        # The user switched a rule off or on: it applies from the next alert, on every open socket of theirs.
        if user_key == compat_user_key(self.user):
            self.disabled = disabled

    async def _drain_outbox(self) -> None:
        while True:
            frame = await self.outbox.get()
            await self.room.open.wait()  # the client is reading: the transport has room again
            await self.send(text_data=frame)

    def _close_soon(self, code: int) -> None:
        if self.closing:
            return
        self.closing = True
        if hasattr(self, "sender"):  # an overflow before the handshake completed has no sender yet
            self.sender.cancel()
        asyncio.get_running_loop().create_task(self.close(code=code))
