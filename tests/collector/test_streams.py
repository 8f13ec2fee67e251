from __future__ import annotations

import asyncio

from websockets.asyncio.server import serve

from apps.collector.streams import StreamConnection
from tests.e2e.processes import free_port


async def run_until(conn: StreamConnection, condition, *, timeout: float, what: str) -> None:
    """Run the connection until `condition()` holds (polled every 10 ms); fail naming `what` after `timeout` s."""
    stop = asyncio.Event()
    task = asyncio.create_task(conn.run(stop))
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():
            assert asyncio.get_running_loop().time() < deadline, f"timed out after {timeout}s waiting for {what}"
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_repeated_connect_failures_open_the_circuit():
    conn = StreamConnection(
        "t",
        ws_base_url=f"ws://127.0.0.1:{free_port()}",  # nothing listens there
        streams=["btcusdt@kline_1m"],
        on_message=lambda m: None,
        backoff_base=0.01,
        circuit_failures=3,
        circuit_pause_seconds=30,
    )
    states = []

    async def watch():
        while True:
            states.append(conn.state)
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    await run_until(conn, lambda: "circuit_open" in states, timeout=10, what="the circuit to open")
    watcher.cancel()
    assert "backoff" in states and states[-1] in ("circuit_open", "stopped")
    assert "circuit_open" in states


async def test_a_silent_connection_is_reconnected_and_frames_keep_flowing():
    connections = []

    async def handler(ws):
        connections.append(ws)
        if len(connections) == 1:
            await asyncio.sleep(1.5)  # the first connection stays open but never says a word
        else:
            while True:
                await ws.send('{"id": 1, "result": null}')
                await asyncio.sleep(0.02)

    received = []
    port = free_port()
    async with serve(handler, "127.0.0.1", port):
        conn = StreamConnection(
            "t",
            ws_base_url=f"ws://127.0.0.1:{port}",
            streams=["btcusdt@kline_1m"],
            on_message=received.append,
            watchdog_seconds=0.3,
            backoff_base=0.01,
        )
        await run_until(
            conn, lambda: conn.reconnects >= 1 and received, timeout=10, what="a reconnect and a frame after it"
        )
    assert len(connections) >= 2 and conn.reconnects >= 1
    assert received  # the replacement delivered


async def test_planned_rotation_overlaps_connections_and_loses_no_frame():
    sent = {"n": 0}

    async def handler(ws):
        while True:
            sent["n"] += 1
            await ws.send(f'{{"id": {sent["n"]}, "result": null}}')
            await asyncio.sleep(0.01)

    received = []
    port = free_port()
    async with serve(handler, "127.0.0.1", port):
        conn = StreamConnection(
            "t",
            ws_base_url=f"ws://127.0.0.1:{port}",
            streams=["btcusdt@kline_1m"],
            on_message=received.append,
            rotate_after_seconds=0.3,
        )
        await run_until(
            conn, lambda: conn.rotations >= 2 and len(received) >= 100, timeout=10, what="two rotations, 100 frames"
        )
    assert conn.rotations >= 2 and conn.reconnects == 0
    # Around each rotation both connections deliver for a moment; nothing is ever silent for long.
    assert len(received) >= 100
