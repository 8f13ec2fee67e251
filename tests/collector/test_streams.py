from __future__ import annotations

import asyncio

from websockets.asyncio.server import serve

from apps.collector.streams import StreamConnection


async def run_for(conn: StreamConnection, seconds: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(conn.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_repeated_connect_failures_open_the_circuit():
    conn = StreamConnection(
        "t",
        ws_base_url="ws://127.0.0.1:18169",
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
    await run_for(conn, 0.6)
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
    async with serve(handler, "127.0.0.1", 18168):
        conn = StreamConnection(
            "t",
            ws_base_url="ws://127.0.0.1:18168",
            streams=["btcusdt@kline_1m"],
            on_message=received.append,
            watchdog_seconds=0.3,
            backoff_base=0.01,
        )
        await run_for(conn, 1.2)
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
    async with serve(handler, "127.0.0.1", 18167):
        conn = StreamConnection(
            "t",
            ws_base_url="ws://127.0.0.1:18167",
            streams=["btcusdt@kline_1m"],
            on_message=received.append,
            rotate_after_seconds=0.3,
        )
        await run_for(conn, 1.5)
    assert conn.rotations >= 2 and conn.reconnects == 0
    # Around each rotation both connections deliver for a moment; nothing is ever silent for long.
    assert len(received) >= 100
