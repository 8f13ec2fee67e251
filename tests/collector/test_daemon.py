from __future__ import annotations

import json

import numpy as np
import pytest

from apps.collector.candles import FIELD_INDEX, MINUTE_MS
from apps.collector.daemon import Collector, CollectorConfig, minute_runs, ring_missing_minutes
from apps.collector.store import candles_store
from apps.collector.universe import slice_of, slice_symbols, universe_select
from screener_project.kernel.redis_keys import candles_ring_key, collector_rejections_key

T0 = 1_746_814_680_000


def kline(symbol="BTCUSDT", t=T0, closed=True, **over) -> str:
    k = {
        "t": t,
        "T": t + MINUTE_MS - 1,
        "s": symbol,
        "i": "1m",
        "f": 1,
        "L": 2,
        "o": "100.5",
        "c": "101.25",
        "h": "102.0",
        "l": "99.75",
        "v": "3.5",
        "n": 12,
        "x": closed,
        "q": "352.1",
        "V": "1.5",
        "Q": "150.9",
        "B": "0",
    }
    k.update(over)
    return json.dumps(
        {"stream": f"{symbol.lower()}@kline_1m", "data": {"e": "kline", "E": t + MINUTE_MS + 5, "s": symbol, "k": k}}
    )


@pytest.fixture
def collector(redis_client) -> Collector:
    c = Collector(
        CollectorConfig(ws_base_url="ws://127.0.0.1:1", rest_base_url="http://127.0.0.1:1"), redis=redis_client
    )
    c.symbols = {"BTCUSDT"}
    return c


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ('{"stream": "btc', "malformed_json"),
        ("[1, 2]", "malformed"),
        ('{"hello": 1}', "unknown_message"),
        (json.dumps({"stream": "x", "data": {"e": "trade"}}), "malformed"),
        (kline(o="-1"), "non_positive_price"),
        (kline(l="101.0"), "low_above_body"),
        (kline(h="100.0"), "high_below_body"),
        (kline(v="-3"), "negative_volume"),
        (kline(t=T0 + 5, T=T0 + 5 + MINUTE_MS - 1), "open_time_not_on_minute"),
        (kline(T=T0 + 1), "bad_close_time"),
        (kline(o="abc"), "malformed"),
        (kline(i="5m"), "wrong_interval"),
        (kline(x="yes"), "malformed"),
        (kline(symbol="DOGEUSDT"), "unknown_symbol"),
    ],
)
def test_a_bad_frame_is_rejected_counted_and_never_queued(collector, redis_client, frame, reason):
    collector._on_message(frame)
    assert collector._closed.empty()
    assert collector.rejections == {reason: 1}
    collector._write_heartbeat(state="live")
    assert redis_client.hget(collector_rejections_key(), reason) == b"1"


def test_only_closed_klines_are_queued_and_the_clock_follows_event_time(collector):
    collector._on_message(kline(closed=False))
    assert collector._closed.empty()
    collector._on_message(kline())
    candle = collector._closed.get_nowait()
    assert (candle.symbol, candle.open_time, candle.close, candle.quote_volume) == ("BTCUSDT", T0, 101.25, 352.1)
    assert collector.clock_ms == T0 + MINUTE_MS + 5
    assert collector.rejections == {}


def test_a_jump_in_open_times_schedules_a_repair_of_the_missing_minutes(collector):
    collector.last_open["BTCUSDT"] = T0
    collector._on_message(kline(t=T0 + 4 * MINUTE_MS))
    collector._detect_gaps([collector._closed.get_nowait()])
    _due, symbol, first, last, attempt = collector._repairs.get_nowait()
    assert (symbol, first, last, attempt) == ("BTCUSDT", T0 + MINUTE_MS, T0 + 3 * MINUTE_MS, 0)
    assert collector.last_open["BTCUSDT"] == T0 + 4 * MINUTE_MS


def test_ring_missing_minutes_lists_exactly_the_holes(redis_client, settings):
    from apps.collector.candles import Candle

    candles_store(
        redis_client, [Candle("BTCUSDT", T0 + m * MINUTE_MS, 1, 1, 1, 1, 1, 1) for m in (0, 1, 3, 6)], mark_closed=False
    )
    missing = ring_missing_minutes(
        redis_client.get(candles_ring_key("BTCUSDT")),
        first_ms=T0,
        last_ms=T0 + 7 * MINUTE_MS,
        ring=settings.CANDLE_RING_MINUTES,
    )
    assert (missing - T0).tolist() == [m * MINUTE_MS for m in (2, 4, 5, 7)]
    assert minute_runs(missing, max_len=499) == [
        (T0 + 2 * MINUTE_MS, T0 + 2 * MINUTE_MS),
        (T0 + 4 * MINUTE_MS, T0 + 5 * MINUTE_MS),
        (T0 + 7 * MINUTE_MS, T0 + 7 * MINUTE_MS),
    ]


def test_minute_runs_split_long_runs_into_requests():
    minutes = T0 + np.arange(1200, dtype=np.int64) * MINUTE_MS
    runs = minute_runs(minutes, max_len=499)
    assert [(b - a) // MINUTE_MS + 1 for a, b in runs] == [499, 499, 202]


def test_universe_keeps_trading_usdt_perpetuals_with_lists_and_top_n():
    info = {
        "symbols": [
            {"symbol": "BTCUSDT", "contractType": "PERPETUAL", "quoteAsset": "USDT", "status": "TRADING"},
            {"symbol": "ETHUSDT", "contractType": "PERPETUAL", "quoteAsset": "USDT", "status": "TRADING"},
            {"symbol": "XRPUSDT", "contractType": "PERPETUAL", "quoteAsset": "USDT", "status": "TRADING"},
            {"symbol": "BTCUSDT_251226", "contractType": "CURRENT_QUARTER", "quoteAsset": "USDT", "status": "TRADING"},
            {"symbol": "BTCUSDC", "contractType": "PERPETUAL", "quoteAsset": "USDC", "status": "TRADING"},
            {"symbol": "OLDUSDT", "contractType": "PERPETUAL", "quoteAsset": "USDT", "status": "SETTLING"},
            "garbage",
        ]
    }
    tickers = [
        {"symbol": "BTCUSDT", "quoteVolume": "9e9"},
        {"symbol": "ETHUSDT", "quoteVolume": "5e9"},
        {"symbol": "XRPUSDT", "quoteVolume": "1e9"},
    ]
    names = lambda entries: [e["symbol"] for e in entries]  # noqa: E731
    assert names(universe_select(info)) == ["BTCUSDT", "ETHUSDT", "XRPUSDT"]
    assert names(universe_select(info, tickers, top_n=2)) == ["BTCUSDT", "ETHUSDT"]
    assert names(universe_select(info, tickers, denylist=["btcusdt"], top_n=2)) == ["ETHUSDT", "XRPUSDT"]
    assert names(universe_select(info, allowlist=["XRPUSDT", "BTCUSDC"])) == ["XRPUSDT"]


def test_slices_partition_the_symbols():
    symbols = [f"S{i}USDT" for i in range(100)]
    parts = [slice_symbols(symbols, slice_index=i, slice_count=3) for i in range(3)]
    assert sorted(sum(parts, [])) == sorted(symbols)
    assert all(parts) and all(slice_of(s, slice_count=3) == i for i, p in enumerate(parts) for s in p)


def test_forming_candles_reach_redis_only_when_near_real_time_is_on(collector, redis_client):
    from apps.collector.store import forming_rows

    collector._on_message(kline(closed=False))
    collector._forming_flush()
    assert np.isnan(forming_rows(redis_client, ["BTCUSDT"], minute_ms=T0)).all()  # off by default

    collector.config.forming_flush_seconds = 1.0
    collector._on_message(kline(closed=False, c="100.5"))
    collector._on_message(kline(closed=False, c="101.0"))  # a later update of the same minute replaces it
    collector._forming_flush()
    row = forming_rows(redis_client, ["BTCUSDT"], minute_ms=T0)
    assert row[FIELD_INDEX["close"], 0] == 101.0
    assert collector._closed.empty()
