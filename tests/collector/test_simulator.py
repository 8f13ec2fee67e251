from __future__ import annotations

import asyncio
import dataclasses
import json

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import connect

from apps.collector.candles import MINUTE_MS, candle_from_kline, candle_from_rest_row, read_csv_candles
from apps.collector.simulator import CLOSE_PROFILES, CloseProfile, ExchangeSimulator, klines_weight, market_load
from tests.e2e.processes import free_port


@pytest.fixture(scope="module")
def market(bundled_data_dir):
    return market_load(bundled_data_dir)


async def serve(sim: ExchangeSimulator):
    port = free_port()
    await sim.start("127.0.0.1", port)
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}")


@pytest.mark.parametrize(("limit", "weight"), [(1, 1), (99, 1), (100, 2), (499, 2), (500, 5), (1000, 5), (1001, 10)])
def test_klines_weight_follows_the_published_table(limit, weight):
    assert klines_weight(limit) == weight


async def test_rest_klines_serve_only_closed_candles_bit_exact_with_weights_and_429(market, bundled_data_dir):
    sim = ExchangeSimulator(market, speed=1, weight_limit=12, hold_until_connect=1)
    http = await serve(sim)
    try:
        csv = read_csv_candles(sorted(bundled_data_dir.glob("BTCUSDT-1m*"))).set_index("open_time")
        r = await http.get("/fapi/v1/klines", params={"symbol": "BTCUSDT", "interval": "1m", "limit": 1500})
        assert r.status_code == 200 and r.headers["X-MBX-USED-WEIGHT-1M"] == "10"
        rows = r.json()
        assert len(rows) == 1440 and rows[-1][0] == sim.clock.start_ms - MINUTE_MS  # nothing at or after "now"
        for row in rows[::97]:
            candle = candle_from_rest_row("BTCUSDT", row)
            expected = csv.loc[row[0]]
            assert (candle.open, candle.high, candle.low, candle.close, candle.volume, candle.quote_volume) == (
                expected.open,
                expected.high,
                expected.low,
                expected.close,
                expected.volume,
                expected.quote_volume,
            )
        r = await http.get(
            "/fapi/v1/klines", params={"symbol": "BTCUSDT", "interval": "1m", "limit": 2, "startTime": rows[5][0]}
        )
        assert [row[0] for row in r.json()] == [rows[5][0], rows[6][0]]
        assert r.headers["X-MBX-USED-WEIGHT-1M"] == "11"
        r = await http.get("/fapi/v1/klines", params={"symbol": "BTCUSDT", "interval": "1m", "limit": 100})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
        bad = await http.get("/fapi/v1/klines", params={"symbol": "NOPE", "interval": "1m", "limit": 1})
        assert bad.status_code == 400
    finally:
        await http.aclose()
        await sim.stop()


async def test_bars_aggregate_clock_aligned_from_the_minutes(market):
    sim = ExchangeSimulator(market, speed=1, hold_until_connect=1)
    http = await serve(sim)
    try:
        hours = (await http.get("/fapi/v1/klines", params={"symbol": "ETHUSDT", "interval": "1h", "limit": 5})).json()
        minutes = (
            await http.get("/fapi/v1/klines", params={"symbol": "ETHUSDT", "interval": "1m", "limit": 600})
        ).json()
        by_open = {row[0]: row for row in minutes}
        bar = hours[-2]  # a complete hour
        assert bar[0] % (60 * MINUTE_MS) == 0 and bar[6] == bar[0] + 60 * MINUTE_MS - 1
        inside = [by_open[bar[0] + m * MINUTE_MS] for m in range(60)]
        assert float(bar[1]) == float(inside[0][1]) and float(bar[4]) == float(inside[-1][4])
        assert float(bar[2]) == max(float(r[2]) for r in inside)
        assert float(bar[3]) == min(float(r[3]) for r in inside)
        assert np.isclose(float(bar[5]), sum(float(r[5]) for r in inside), rtol=1e-12)
        info = (await http.get("/fapi/v1/exchangeInfo")).json()
        kinds = {(s["contractType"], s["quoteAsset"], s["status"]) for s in info["symbols"]}
        assert ("CURRENT_QUARTER", "USDT", "TRADING") in kinds and ("PERPETUAL", "USDC", "TRADING") in kinds
    finally:
        await http.aclose()
        await sim.stop()


async def test_websocket_streams_forming_then_closed_klines_and_answers_subscribe(market):
    sim = ExchangeSimulator(market, speed=600, minutes=3, hold_until_connect=1)
    port = free_port()
    await sim.start("127.0.0.1", port)
    try:
        async with connect(f"ws://127.0.0.1:{port}/market/stream?streams=btcusdt@kline_1m") as ws:
            await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@kline_1m"], "id": 3}))
            closed: dict[str, list[int]] = {"BTCUSDT": [], "ETHUSDT": []}
            replies, forming = [], 0
            while sum(map(len, closed.values())) < 5:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if "id" in frame:
                    replies.append(frame)
                    continue
                assert frame["stream"] == frame["data"]["s"].lower() + "@kline_1m"
                candle, is_closed = candle_from_kline(frame["data"]["k"])
                if is_closed:
                    closed[candle.symbol].append(candle.open_time)
                else:
                    forming += 1
            assert replies == [{"result": None, "id": 3}]
            assert closed["BTCUSDT"] == [sim.clock.start_ms + i * MINUTE_MS for i in range(3)]
            assert forming > 0
            deadline = asyncio.get_running_loop().time() + 10
            while not sim.status()["done"]:  # the replay ends right after its last closed minute
                assert asyncio.get_running_loop().time() < deadline, "the replay never ended"
                await asyncio.sleep(0.02)
    finally:
        await sim.stop()


async def test_a_replay_shifted_to_now_starts_at_the_current_minute_with_the_same_prices(market):
    import time

    from apps.collector.simulator import replay_start_default, shift_to_now

    now_ms = int(time.time() * 1000)
    shifted, start, offset = shift_to_now(market, start_ms=None, now_ms=now_ms)
    assert start == now_ms - now_ms % MINUTE_MS
    assert offset == start - replay_start_default(market) and offset % MINUTE_MS == 0
    for symbol, series in market.items():
        assert np.array_equal(shifted[symbol].open_times, series.open_times + offset)
        assert shifted[symbol].values is series.values  # prices and volumes untouched
    sim = ExchangeSimulator(shifted, speed=600.0, start_ms=start)
    client = await serve(sim)
    try:
        symbol = sorted(market)[0]
        rows = (await client.get("/fapi/v1/klines", params={"symbol": symbol, "interval": "1m", "limit": 5})).json()
        newest_open = rows[-1][0]
        assert start - 5 * MINUTE_MS <= newest_open < start + MINUTE_MS * 10
        original = market[symbol].index_of(newest_open - offset)
        assert float(rows[-1][4]) == market[symbol].values[original][3]  # the close, bit for bit
    finally:
        await client.aclose()
        await sim.stop()


def test_close_profile_is_seeded_per_symbol_and_minute_with_a_body_a_tail_and_silent_pairs():
    profile = CLOSE_PROFILES["binance"]
    draws = [profile.delay_ms(f"S{i}USDT", m * MINUTE_MS) for m in range(40) for i in range(500)]
    assert draws == [profile.delay_ms(f"S{i}USDT", m * MINUTE_MS) for m in range(40) for i in range(500)]
    delays = np.array([d for d in draws if d is not None])
    silent = draws.count(None) / len(draws)
    assert 0.0005 < silent < 0.005
    assert (delays <= 300).mean() > 0.95 and 80 < np.median(delays) < 160
    assert delays.max() > 1500 and delays.max() <= 2500
    assert 250 < profile.quantile_ms(0.99) <= 2500
    other_seed = dataclasses.replace(profile, seed=2)
    same_pairs = [profile.delay_ms("S1USDT", m * MINUTE_MS) for m in range(20)]
    assert [other_seed.delay_ms("S1USDT", m * MINUTE_MS) for m in range(20)] != same_pairs
    assert CLOSE_PROFILES["off"].enabled is False


async def test_a_close_profile_spreads_the_closing_frames_after_the_boundary_and_records_them(market):
    profile = CloseProfile(median_ms=150.0, body_max_ms=300.0, tail=0.0, silent=0.0)
    sim = ExchangeSimulator(market, speed=60, minutes=2, hold_until_connect=1, close_profile=profile)
    port = free_port()
    await sim.start("127.0.0.1", port)
    streams = "/".join(f"{s.lower()}@kline_1m" for s in sim.symbols)
    try:
        # Unbounded queue: frames keep coming after the test stops reading, and a full queue would stop the client
        # reading the server's close frame (its close then waits out the 10 s close timeout).
        async with connect(f"ws://127.0.0.1:{port}/market/stream?streams={streams}", max_queue=None) as ws:
            events: dict[str, int] = {}
            while len(events) < len(sim.symbols):
                frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
                candle, is_closed = candle_from_kline(frame["data"]["k"])
                if is_closed and candle.open_time == sim.clock.start_ms:
                    events[candle.symbol] = frame["data"]["E"]
        boundary = sim.clock.start_ms + MINUTE_MS
        # Event times are when each frame went out by the simulated clock: the profile's delay, in order.
        for symbol, event_ms in events.items():
            expected = profile.delay_ms(symbol, sim.clock.start_ms)
            assert expected <= event_ms - boundary < expected + 60 * 500  # never early; late by a loaded machine
        r = await httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}").get("/sim/closes")
        assert set(r.json()[str(sim.clock.start_ms)]) == set(sim.symbols)
    finally:
        await sim.stop()


def test_a_clock_origin_inside_the_first_minute_runs_the_replay_on_the_wall_clock(market):
    start = max(int(s.open_times[0]) for s in market.values()) + 1440 * MINUTE_MS
    sim = ExchangeSimulator(market, speed=1, start_ms=start, clock_origin_ms=start + 42_000)
    assert abs(sim.clock.now_ms() - (start + 42_000)) < 1000 and sim.clock.start_ms == start
    assert sim.last_closed_open_ms == start - MINUTE_MS
    with pytest.raises(ValueError):
        ExchangeSimulator(market, speed=1, start_ms=start, clock_origin_ms=start + MINUTE_MS)


async def test_sim_end_ends_the_replay_after_a_minute_but_never_before_what_went_out_nor_past_the_plan(market):
    sim = ExchangeSimulator(market, speed=1, minutes=30, hold_until_connect=1)
    http = await serve(sim)
    try:
        start, planned_end = sim.clock.start_ms, sim.clock.end_ms
        assert (await http.get("/sim/end", params={"minute_ms": "soon"})).status_code == 400
        assert sim.clock.end_ms == planned_end

        status = (await http.get("/sim/end", params={"minute_ms": start + 60 * MINUTE_MS})).json()
        assert status["end_ms"] == planned_end and not status["done"]  # never past the planned end

        sim.last_closed_open_ms = start + 3 * MINUTE_MS  # four minutes went out
        status = (await http.get("/sim/end", params={"minute_ms": start + MINUTE_MS})).json()
        assert status["end_ms"] == start + 4 * MINUTE_MS and status["done"]  # what went out stays out

        sim.last_closed_open_ms = start - MINUTE_MS
        status = (await http.get("/sim/end", params={"minute_ms": start + 5 * MINUTE_MS + 7})).json()
        assert status["end_ms"] == start + 4 * MINUTE_MS  # only ever earlier
        sim.clock.end_ms = planned_end
        status = (await http.get("/sim/end", params={"minute_ms": start + 5 * MINUTE_MS + 7})).json()
        assert status["end_ms"] == start + 6 * MINUTE_MS and not status["done"]
    finally:
        await http.aclose()
        await sim.stop()


def test_history_days_moves_the_default_start_and_must_leave_data_to_replay(market):
    from django.core.management import CommandError, call_command

    from apps.collector.simulator import replay_start_default

    first_open = min(int(s.open_times[0]) for s in market.values())
    assert replay_start_default(market) == first_open + 1440 * MINUTE_MS
    assert replay_start_default(market, history_days=4) == first_open + 4 * 1440 * MINUTE_MS
    for days in ("0", "30"):  # the bundled data holds 8 days
        with pytest.raises(CommandError, match="--history-days"):
            call_command("run_exchange_sim", "--history-days", days, "--port", str(free_port()))
