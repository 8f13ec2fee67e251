"""The channel-layer contract between the alert engine (publisher) and the API's WebSocket fan-out (subscriber)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence

from channels.layers import get_channel_layer

# The alerts of one committed evaluation are sent once to this group, in creation order, as
# `{"type": ALERT_BATCH_MESSAGE_TYPE, "data": [<alert payload>, ...]}`: one message, so the subscriber hands each
# client the whole batch at once and the client's socket takes it in one write. `{"type": ALERT_MESSAGE_TYPE,
# "data": <alert payload>}` carries a single alert (tools that publish one, a publisher of an earlier release).
ALERTS_GROUP = "alerts"
ALERT_MESSAGE_TYPE = "alert.message"
ALERT_BATCH_MESSAGE_TYPE = "alert.batch"


def alert_message(payload: dict) -> dict:
    """The channel-layer message that carries one alert."""
    return {"type": ALERT_MESSAGE_TYPE, "data": payload}


def alert_batch_message(payloads: Sequence[dict]) -> dict:
    """The channel-layer message that carries the alerts of one batch, in the order they are to be delivered."""
    return {"type": ALERT_BATCH_MESSAGE_TYPE, "data": list(payloads)}


class _SenderLoop:
    """One event loop per process, in a daemon thread, that sync code (a Celery task) hands channel-layer sends to.

    asgiref's async_to_sync starts a fresh event loop for every call, and the channel layer keeps its Redis
    connections per loop, so every push would open a new connection; this loop keeps one. Made anew in a forked
    child (a Celery pool process), whose copy of the parent's thread does not run.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._pid != os.getpid() or self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name="channel-layer-sender", daemon=True).start()
                self._pid = os.getpid()
            return self._loop


_sender_loop = _SenderLoop()


def group_send_blocking(group: str, messages: Sequence[dict], *, timeout: float = 10.0) -> None:
    """Send messages, in order, to a channel-layer group from sync code; raises when the layer fails or is slower
    than `timeout` seconds. A no-op without a channel layer."""
    layer = get_channel_layer()
    if layer is None or not messages:
        return

    async def send() -> None:
        for message in messages:
            await layer.group_send(group, message)

    asyncio.run_coroutine_threadsafe(send(), _sender_loop.loop()).result(timeout)
