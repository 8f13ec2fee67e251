"""Publish alerts through the channel layer and time their arrival at N WebSocket clients of a daphne on loopback.

The figure of interest is, per alert, the time from group_send to its receipt by every client (the slowest one);
the last line printed is one JSON object of figures.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import json
import multiprocessing
import os
import time
import uuid
from urllib.parse import urlsplit

import orjson
from channels.layers import get_channel_layer
from django.core.management.base import BaseCommand, CommandError

from apps.api.bench import daphne_running, percentiles_ms
from screener_project.kernel.channels import ALERTS_GROUP, alert_batch_message, alert_message

PONG_FRAME_PAYLOAD = b'{"type":"pong"}'


def _masked_frame(opcode: int, payload: bytes) -> bytes:
    """A client-to-server frame (clients must mask; payloads here are short)."""
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


class _Receiver(asyncio.Protocol):
    """A minimal WebSocket client: frames are parsed in data_received, so a receipt costs no task wake-up and
    the measuring instrument adds as little as possible to what it measures."""

    def __init__(self, index: int, path: str, host: str, sink: list, warm: set, opened: asyncio.Future) -> None:
        self.index, self.path, self.host = index, path, host
        self.sink, self.warm, self.opened = sink, warm, opened
        self.buffer = bytearray()
        self.handshaken = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def data_received(self, data: bytes) -> None:
        received = time.time_ns()
        buffer = self.buffer
        buffer += data
        if not self.handshaken:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            accepted = b" 101 " in bytes(buffer[: buffer.find(b"\r\n")])
            del buffer[: end + 4]
            self.handshaken = accepted
            if not self.opened.done():
                self.opened.set_result(accepted)
            if not accepted:
                self.transport.close()
                return
        while len(buffer) >= 2:
            opcode, length, start = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length, start = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, start = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < start + length:
                return
            payload = bytes(buffer[start : start + length])
            del buffer[: start + length]
            if opcode == 0x1:
                if payload.startswith(b'{"type":"ping"'):
                    self.transport.write(_masked_frame(0x1, PONG_FRAME_PAYLOAD))
                    continue
                self.sink.append((self.index, received, payload))
                self.warm.add(self.index)
            elif opcode == 0x9:
                self.transport.write(_masked_frame(0xA, payload))
            elif opcode == 0x8:
                self.transport.close()

    def connection_lost(self, exc) -> None:
        if not self.opened.done():
            self.opened.set_result(False)


def _client_process(urls: list[str], count: int, first_index: int, conn) -> None:
    """Runs `count` clients in this process; reports readiness, warmth, then every receipt."""
    # The instrument must not pause: its receipts pile up to tens of thousands of objects, and a full garbage
    # collection over them stalls every socket of the process at once (it showed as a 100 ms p99 of its own).
    # The process is short-lived, so it simply does not collect.
    gc.disable()
    asyncio.run(_clients(urls, count, first_index, conn))


async def clients_open(
    urls: list[str], *, count: int, first_index: int, receipts: list, warm: set[int]
) -> tuple[int, list[asyncio.Transport]]:
    """Open `count` raw WebSocket clients numbered from `first_index`, round robin over `urls`, at most 50 handshakes
    at a time, each retried 5 times; their frames go to `receipts` (index, receipt ns, frame). Returns how many
    opened, and their transports."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(50)
    transports: list[asyncio.Transport] = []

    async def open_one(index: int) -> bool:
        url = urlsplit(urls[index % len(urls)])
        async with gate:
            for attempt in range(5):
                opened = loop.create_future()
                try:
                    transport, _ = await loop.create_connection(
                        lambda opened=opened: _Receiver(index, url.path, url.netloc, receipts, warm, opened),
                        url.hostname,
                        url.port,
                    )
                except OSError:
                    await asyncio.sleep(0.2 * (attempt + 1))
                    continue
                if await asyncio.wait_for(opened, 20):
                    transports.append(transport)
                    return True
                transport.close()
            return False

    connected = sum(await asyncio.gather(*(open_one(first_index + i) for i in range(count))))
    return connected, transports


async def _clients(urls: list[str], count: int, first_index: int, conn) -> None:
    loop = asyncio.get_running_loop()
    receipts: list[tuple[int, int, bytes]] = []
    warm: set[int] = set()
    connected, transports = await clients_open(urls, count=count, first_index=first_index, receipts=receipts, warm=warm)
    conn.send(("ready", connected))
    reported_warm = False
    while True:
        if not reported_warm and len(warm) >= connected:
            conn.send(("warm", len(warm)))
            reported_warm = True
        has_message = await loop.run_in_executor(None, conn.poll, 0.05)
        if has_message and conn.recv() == "stop":
            break
    for transport in transports:
        transport.close()
    results = []
    for index, received, frame in receipts:
        message = orjson.loads(frame)
        seq = message.get("data", {}).get("metadata", {}).get("bench_seq") if message.get("type") == "alert" else None
        if isinstance(seq, int) and seq >= 0:
            results.append((seq, index, received))
    conn.send(("receipts", results))


class Command(BaseCommand):
    help = "Time alert fan-out to N WebSocket clients (publish -> receipt by every client); prints JSON last."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--clients", type=int, default=500)
        parser.add_argument("--alerts", type=int, default=50, help="alerts published and timed")
        parser.add_argument("--interval", type=float, default=0.25, help="seconds between publishes")
        parser.add_argument(
            "--burst", type=int, default=1, help="alerts per publish, as the engine sends a batch's alerts in one"
        )
        parser.add_argument("--client-procs", type=int, default=1, help="processes the clients are spread over")
        parser.add_argument("--servers", type=int, default=1, help="daphne processes to start (clients spread)")
        parser.add_argument(
            "--stock", action="store_true", help="serve the stock Channels fan-out instead (for comparison)"
        )
        parser.add_argument("--port", type=int, default=18420, help="first port of the daphnes this command starts")
        parser.add_argument(
            "--url", action="append", help="target running servers instead (repeatable): ws://127.0.0.1:8000/ws/alerts"
        )

    def handle(self, *args, **options) -> None:
        if min(options["clients"], options["alerts"], options["client_procs"], options["burst"]) < 1:
            raise CommandError("--clients, --alerts, --client-procs and --burst must be positive")
        if options["url"]:
            figures = self._run(options["url"], options)
        else:
            application = "apps.api.bench_asgi:application" if options["stock"] else "screener_project.asgi:application"
            with contextlib.ExitStack() as stack:
                addresses = [
                    stack.enter_context(daphne_running(port=options["port"] + n, application=application))
                    for n in range(options["servers"])
                ]
                figures = self._run([f"ws://{address}/ws/alerts" for address in addresses], options)
        figures["servers"] = len(options["url"] or []) or options["servers"]
        figures["fanout"] = "stock_group_per_consumer" if options["stock"] else "one_subscription_per_process"
        figures["load_average_1m"] = round(os.getloadavg()[0], 2)
        self.stdout.write(json.dumps(figures))

    def _run(self, urls: list[str], options: dict) -> dict:
        clients, procs = options["clients"], min(options["client_procs"], options["clients"])
        context = multiprocessing.get_context("fork")
        pipes, workers, first = [], [], 0
        for n in range(procs):
            count = clients // procs + (1 if n < clients % procs else 0)
            parent_end, child_end = context.Pipe()
            worker = context.Process(target=_client_process, args=(urls, count, first, child_end), daemon=True)
            worker.start()
            pipes.append(parent_end)
            workers.append(worker)
            first += count
        try:
            connected = sum(self._expect(pipe, "ready", 120) for pipe in pipes)
            sent, warmup_s = asyncio.run(self._publish(pipes, options))
            for pipe in pipes:
                pipe.send("stop")
            receipts = [r for pipe in pipes for r in self._expect(pipe, "receipts", 60)]
        finally:
            for worker in workers:
                worker.join(timeout=10)
                if worker.is_alive():
                    worker.terminate()
        return self._figures(
            sent, receipts, clients=clients, connected=connected, procs=procs, warmup_s=warmup_s, burst=options["burst"]
        )

    @staticmethod
    def _expect(pipe, kind: str, timeout: float):
        if not pipe.poll(timeout):
            raise CommandError(f"client process did not report {kind!r} in {timeout} s")
        got, value = pipe.recv()
        if got != kind:
            raise CommandError(f"client process reported {got!r}, expected {kind!r}")
        return value

    async def _publish(self, pipes, options: dict) -> tuple[dict[int, int], float]:
        layer = get_channel_layer()
        started = time.monotonic()
        cold = set(range(len(pipes)))
        # Warm-up: until every client got a frame, the server's subscription may not be in place yet.
        while cold:
            await layer.group_send(ALERTS_GROUP, self._message(-1))
            await asyncio.sleep(0.3)
            for n in list(cold):
                if pipes[n].poll():
                    self._expect(pipes[n], "warm", 1)
                    cold.discard(n)
            if time.monotonic() - started > 120:
                raise CommandError("clients never received the warm-up alert")
        warmup_s = time.monotonic() - started
        await asyncio.sleep(1.0)
        sent: dict[int, int] = {}
        for first in range(0, options["alerts"], options["burst"]):
            batch = [self._alert(seq) for seq in range(first, min(first + options["burst"], options["alerts"]))]
            for alert in batch:
                sent[alert["metadata"]["bench_seq"]] = alert["metadata"]["sent_ns"]
            await layer.group_send(
                ALERTS_GROUP, alert_batch_message(batch) if len(batch) > 1 else alert_message(batch[0])
            )
            await asyncio.sleep(options["interval"])
        await asyncio.sleep(2.0)
        return sent, warmup_s

    @classmethod
    def _message(cls, seq: int) -> dict:
        return alert_message(cls._alert(seq))

    @staticmethod
    def _alert(seq: int) -> dict:
        return {
            "id": str(uuid.uuid4()),
            "triggered_at": "2026-01-01T00:01:00Z",
            "symbol": "BTCUSDT",
            "alert_type": "big_bull_60m",
            "timeframe": "1h",
            "price": 97000.5,
            "volume": 123456789.0,
            "change_pct": 1.93,
            "metadata": {"bench_seq": seq, "sent_ns": time.time_ns(), "rule_name": "Big Bull 60m"},
        }

    @staticmethod
    def _figures(sent, receipts, *, clients: int, connected: int, procs: int, warmup_s: float, burst: int) -> dict:
        per_alert: dict[int, list[int]] = {seq: [] for seq in sent}
        for seq, _index, received in receipts:
            if seq in per_alert:
                per_alert[seq].append(received - sent[seq])
        complete = [max(lat) / 1e9 for lat in per_alert.values() if len(lat) >= connected]
        every = percentiles_ms(complete)
        single = percentiles_ms([lat / 1e9 for lats in per_alert.values() for lat in lats])
        return {
            "benchmark": "ws_fanout",
            "clients": clients,
            "connected": connected,
            "client_processes": procs,
            "alerts": len(sent),
            "burst": burst,
            "alerts_reaching_every_client": len(complete),
            "missing_receipts": len(sent) * connected - sum(len(lat) for lat in per_alert.values()),
            "every_client_p50_ms": every["p50_ms"],
            "every_client_p99_ms": every["p99_ms"],
            "every_client_max_ms": every["max_ms"],
            "receipt_p50_ms": single["p50_ms"],
            "receipt_p99_ms": single["p99_ms"],
            "warmup_s": round(warmup_s, 2),
        }
