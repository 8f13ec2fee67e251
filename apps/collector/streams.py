"""One WebSocket connection to the exchange's combined kline streams, kept alive whatever happens.

Reconnects with exponential backoff and jitter, opens a circuit (a long pause) after repeated failures, reconnects a
connection that went silent (watchdog), and rotates before the exchange's 24 h limit by opening the replacement first
and closing the old connection only once the new one delivers frames, so the rotation loses nothing (the store is
idempotent, so frames seen on both are harmless).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from .instruments import RECONNECTS

logger = logging.getLogger(__name__)

MAX_SUBSCRIBE_PER_MESSAGE = 50
SUBSCRIBE_INTERVAL_SECONDS = 0.25  # 4 messages/s, under the exchange's 10 incoming messages/s


class StreamConnection:
    def __init__(
        self,
        conn_id: str,
        *,
        ws_base_url: str,
        streams: list[str],
        on_message: Callable[[str | bytes], None],
        watchdog_seconds: float = 30.0,
        rotate_after_seconds: float = 23.5 * 3600,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        circuit_failures: int = 8,
        circuit_pause_seconds: float = 60.0,
    ) -> None:
        self.id = conn_id
        self.ws_base_url = ws_base_url.rstrip("/")
        self.streams = list(streams)
        self.on_message = on_message
        self.watchdog_seconds = watchdog_seconds
        self.rotate_after_seconds = rotate_after_seconds
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.circuit_failures = circuit_failures
        self.circuit_pause_seconds = circuit_pause_seconds
        self.state = "new"
        self.last_frame_wall = 0.0
        self.reconnects = 0
        self.rotations = 0
        self._failures = 0
        self._ws: ClientConnection | None = None
        self._request_id = 0

    def url(self) -> str:
        return f"{self.ws_base_url}/market/stream?streams={'/'.join(self.streams)}"

    def status(self) -> dict:
        return {
            "id": self.id,
            "state": self.state,
            "streams": len(self.streams),
            "last_frame_ms": int(self.last_frame_wall * 1000) if self.last_frame_wall else None,
            "reconnects": self.reconnects,
        }

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if not self.streams:
                self.state = "idle"
                await sleep_or_stop(stop, 1.0)
                continue
            self.state = "connecting"
            try:
                ws = await connect(self.url(), ping_interval=60, ping_timeout=60, open_timeout=10, max_size=2**22)
            except Exception as error:  # refused, timed out, bad handshake: all mean try again later
                await self._backoff(stop, f"connect failed: {error!r}")
                continue
            cause = await self._serve(ws, stop)
            if stop.is_set():
                break
            self.reconnects += 1
            RECONNECTS.labels(cause).inc()
            await self._backoff(stop, cause)
        self.state = "stopped"

    async def _serve(self, ws: ClientConnection, stop: asyncio.Event) -> str:
        """Read `ws` (and its planned replacements) until it fails; returns the cause."""
        self._ws = ws
        self.state = "open"
        opened = time.monotonic()
        self.last_frame_wall = time.time()
        reader = asyncio.create_task(self._read(ws))
        try:
            while not stop.is_set():
                done, _ = await asyncio.wait({reader}, timeout=0.5)
                if done:
                    return "closed"
                silent = time.time() - self.last_frame_wall
                if silent > self.watchdog_seconds:
                    logger.warning("connection %s silent for %.0f s: reconnecting", self.id, silent)
                    return "silent"
                if time.monotonic() - opened > self.rotate_after_seconds:
                    replacement = await self._open_replacement(stop)
                    if replacement is not None:
                        new_ws, new_reader = replacement
                        reader.cancel()
                        await ws.close()
                        ws, reader, opened = new_ws, new_reader, time.monotonic()
                        self._ws = ws
                        self.rotations += 1
                        RECONNECTS.labels("rotation").inc()
                        logger.info("connection %s rotated before the 24 h limit", self.id)
            return "stopped"
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            try:
                await asyncio.wait_for(ws.close(), timeout=2)
            except Exception:  # closing a dead connection may fail in many ways; it is gone either way
                pass
            self._ws = None

    async def _open_replacement(self, stop: asyncio.Event):
        try:
            new_ws = await connect(self.url(), ping_interval=60, ping_timeout=60, open_timeout=10, max_size=2**22)
        except Exception as error:
            logger.warning("connection %s: replacement failed (%r); keeping the old one", self.id, error)
            return None
        first_frame = asyncio.Event()
        new_reader = asyncio.create_task(self._read(new_ws, first_frame))
        try:
            await asyncio.wait_for(first_frame.wait(), timeout=30)
        except TimeoutError:
            logger.warning("connection %s: replacement silent; keeping the old one", self.id)
            new_reader.cancel()
            await new_ws.close()
            return None
        return new_ws, new_reader

    async def _read(self, ws: ClientConnection, first_frame: asyncio.Event | None = None) -> None:
        try:
            async for message in ws:
                self.last_frame_wall = time.time()
                self._failures = 0
                if first_frame is not None:
                    first_frame.set()
                try:
                    self.on_message(message)
                except Exception:  # a handler bug must not take the connection down
                    logger.exception("connection %s: frame handler failed", self.id)
        except ConnectionClosed:
            return

    async def _backoff(self, stop: asyncio.Event, cause: str) -> None:
        self._failures += 1
        if self._failures >= self.circuit_failures:
            self.state = "circuit_open"
            pause = self.circuit_pause_seconds
            logger.error(
                "connection %s: %d failures in a row (%s); pausing %.0f s", self.id, self._failures, cause, pause
            )
            self._failures = 0
        else:
            self.state = "backoff"
            pause = min(self.backoff_cap, self.backoff_base * 2 ** (self._failures - 1))
            pause *= 0.5 + random.random()  # jitter: many connections must not reconnect in step
            logger.warning("connection %s: %s; reconnecting in %.2f s", self.id, cause, pause)
        await sleep_or_stop(stop, pause)

    async def subscribe(self, streams: list[str]) -> None:
        await self._send_method("SUBSCRIBE", streams)
        self.streams += [s for s in streams if s not in self.streams]

    async def unsubscribe(self, streams: list[str]) -> None:
        await self._send_method("UNSUBSCRIBE", streams)
        self.streams = [s for s in self.streams if s not in set(streams)]

    async def _send_method(self, method: str, streams: list[str]) -> None:
        ws = self._ws
        if ws is None:
            return  # the next connect uses the updated stream list in its URL
        for i in range(0, len(streams), MAX_SUBSCRIBE_PER_MESSAGE):
            self._request_id += 1
            chunk = streams[i : i + MAX_SUBSCRIBE_PER_MESSAGE]
            try:
                await ws.send(json.dumps({"method": method, "params": chunk, "id": self._request_id}))
            except ConnectionClosed:
                return
            await asyncio.sleep(SUBSCRIBE_INTERVAL_SECONDS)


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Wait `seconds`, or less if `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
