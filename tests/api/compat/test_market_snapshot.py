"""GET {p}/api/metrics/ and {p}/api/tickers (compat README) from the snapshot the indicators stage writes."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest
from django.conf import settings
from rest_framework.test import APIClient

from apps.collector.store import active_symbols_set
from apps.metrics.selectors import SNAPSHOT_FIELDS
from apps.metrics.services import VALUE_COLUMNS, ShardIndicators, metrics_calculated_upsert, snapshot_write
from screener_project.kernel.redis_keys import snapshot_key

pytestmark = pytest.mark.django_db

P = f"/{settings.COMPAT_PREFIX}"
TIMEFRAMES = ("5m", "15m", "1h", "4h", "8h", "1d")
MINUTE_MS = int(datetime(2026, 11, 20, 10, 27, tzinfo=UTC).timestamp() * 1000)
# The client's name of each /api metrics field (fib_* go into "fibonacci").
CLIENT_NAMES = {
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "volume": "volume",
    "price_change": "change_pct",
    "vcp": "vcp",
    "rsi_14": "rsi_14",
    "macd": "macd",
    "macd_signal": "macd_signal",
    "bb_upper": "bb_upper",
    "bb_middle": "bb_middle",
    "bb_lower": "bb_lower",
}
FIB_NAMES = {"r3": "fib_r3", "r2": "fib_r2", "r1": "fib_r1", "pivot": "fib_pivot", "s1": "fib_s1", "s2": "fib_s2",
             "s3": "fib_s3"}  # fmt: skip


def shard(symbols: list[str], *, minute_ms: int = MINUTE_MS, seed: int = 7) -> ShardIndicators:
    """Distinct values for every (column, timeframe, symbol); ETH's 1d RSI unknown (NaN)."""
    rng = np.random.default_rng(seed)
    values = {}
    for column in dict.fromkeys([*VALUE_COLUMNS, *SNAPSHOT_FIELDS]):
        values[column] = rng.uniform(1, 50_000, size=(len(TIMEFRAMES), len(symbols)))
    values["trades"] = np.round(values["trades"])
    if "ETHUSDT" in symbols:
        values["rsi_14"][TIMEFRAMES.index("1d"), symbols.index("ETHUSDT")] = np.nan
    return ShardIndicators(minute_ms=minute_ms, symbols=symbols, values=values, rolled={})


def expected_metrics(result: ShardIndicators, symbol: str, time: str) -> dict:
    s = result.symbols.index(symbol)

    def value(field: str, t: int):
        found = float(result.values[field][t, s])
        return None if math.isnan(found) else found

    return {
        "symbol": symbol,
        "timeframes": {
            tf: {
                "time": time,
                **{name: value(field, t) for name, field in CLIENT_NAMES.items()},
                "fibonacci": {name: value(field, t) for name, field in FIB_NAMES.items()},
            }
            for t, tf in enumerate(TIMEFRAMES)
        },
    }


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def test_metrics_is_a_bare_array_of_every_active_symbol_in_the_client_shape(api, redis_client):
    result = shard(["BTCUSDT", "ETHUSDT", "OLDUSDT"])
    snapshot_write(redis_client, result=result)
    active_symbols_set(redis_client, ["BTCUSDT", "ETHUSDT"])  # OLDUSDT is no longer collected
    response = api.get(f"{P}/api/metrics/")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    body = response.json()
    time = "2026-11-20T10:28:00Z"  # the close of minute t, as GET /api/metrics/{symbol} says
    assert body == [expected_metrics(result, "BTCUSDT", time), expected_metrics(result, "ETHUSDT", time)]
    assert body[1]["timeframes"]["1d"]["rsi_14"] is None
    assert list(body[0]["timeframes"]["5m"]) == ["time", *CLIENT_NAMES, "fibonacci"]


def test_metrics_without_trailing_slash_is_the_same(api, redis_client):
    snapshot_write(redis_client, result=shard(["BTCUSDT"]))
    assert api.get(f"{P}/api/metrics").json() == api.get(f"{P}/api/metrics/").json()


def test_metrics_follow_a_newer_snapshot(api, redis_client):
    first, second = shard(["BTCUSDT"], seed=1), shard(["BTCUSDT"], minute_ms=MINUTE_MS + 60_000, seed=2)
    snapshot_write(redis_client, result=first)
    assert api.get(f"{P}/api/metrics/").json() == [expected_metrics(first, "BTCUSDT", "2026-11-20T10:28:00Z")]
    snapshot_write(redis_client, result=second)
    assert api.get(f"{P}/api/metrics/").json() == [expected_metrics(second, "BTCUSDT", "2026-11-20T10:29:00Z")]


def test_metrics_list_every_snapshot_symbol_while_nothing_is_collected(api, redis_client):
    snapshot_write(redis_client, result=shard(["ETHUSDT", "BTCUSDT"]))
    assert [entry["symbol"] for entry in api.get(f"{P}/api/metrics/").json()] == ["BTCUSDT", "ETHUSDT"]


def test_missing_timeframes_and_unreadable_snapshots_give_nulls_or_are_skipped(api, redis_client):
    redis_client.hset(snapshot_key(), "BTCUSDT", b'{"symbol":"BTCUSDT","timestamp":"2026-11-20T10:28:00Z",'
                      b'"timeframes":{"5m":{"close":1.5,"rsi_14":null}}}')  # fmt: skip
    redis_client.hset(snapshot_key(), "BADUSDT", b"{not json")
    body = api.get(f"{P}/api/metrics/").json()
    assert [entry["symbol"] for entry in body] == ["BTCUSDT"]
    assert list(body[0]["timeframes"]) == list(TIMEFRAMES)
    assert body[0]["timeframes"]["5m"]["close"] == 1.5 and body[0]["timeframes"]["5m"]["rsi_14"] is None
    assert body[0]["timeframes"]["1d"]["close"] is None and body[0]["timeframes"]["1d"]["fibonacci"]["r3"] is None


def test_metrics_fall_back_to_the_newest_stored_minute_without_a_snapshot(api, redis_client):
    older, newest = shard(["BTCUSDT", "ETHUSDT"], seed=3), shard(["BTCUSDT", "ETHUSDT"], seed=4)
    newest.minute_ms = MINUTE_MS + 60_000
    metrics_calculated_upsert(result=older)
    metrics_calculated_upsert(result=newest)
    body = api.get(f"{P}/api/metrics/").json()
    time = "2026-11-20T10:29:00Z"
    assert body == [expected_metrics(newest, "BTCUSDT", time), expected_metrics(newest, "ETHUSDT", time)]


def test_metrics_with_nothing_anywhere_is_an_empty_array(api, redis_client):
    assert api.get(f"{P}/api/metrics/").json() == []


# --- tickers ---------------------------------------------------------------------------------------------------


def day_snapshot(redis_client, symbol: str, **day: float | None) -> None:
    import orjson

    body = {"symbol": symbol, "timestamp": "2026-11-20T10:28:00Z", "timeframes": {"1d": day, "5m": {"close": 1.0}}}
    redis_client.hset(snapshot_key(), symbol, orjson.dumps(body))


def test_tickers_are_binance_24h_tickers_from_the_1d_window(api, redis_client):
    day_snapshot(
        redis_client,
        "BTCUSDT",
        open=95000.1,
        high=98000.0,
        low=94000.25,
        close=97531.2,
        volume=12345678901.23,
        vwap=96500.5,
        change_pct=2.664168,
        trades=1234567,
    )
    day_snapshot(redis_client, "PEPEUSDT", open=0.00001234, high=0.0000125, low=0.0000119, close=0.00001201,
                 volume=5.5e7, vwap=0.0000122, change_pct=-2.6742301, trades=99)  # fmt: skip
    response = api.get(f"{P}/api/tickers")
    assert response.status_code == 200
    close_ms = int(datetime(2026, 11, 20, 10, 28, tzinfo=UTC).timestamp() * 1000)
    assert response.json() == [
        {
            "symbol": "BTCUSDT",
            "priceChange": "2531.1",
            "priceChangePercent": "2.664",
            "weightedAvgPrice": "96500.5",
            "lastPrice": "97531.2",
            "openPrice": "95000.1",
            "highPrice": "98000",
            "lowPrice": "94000.25",
            "volume": repr(round(12345678901.23 / 96500.5, 8)),
            "quoteVolume": "12345678901.23",
            "openTime": close_ms - 86_400_000,
            "closeTime": close_ms - 1,
            "count": 1234567,
        },
        {
            "symbol": "PEPEUSDT",
            "priceChange": "-0.00000033",
            "priceChangePercent": "-2.674",
            "weightedAvgPrice": "0.0000122",
            "lastPrice": "0.00001201",
            "openPrice": "0.00001234",
            "highPrice": "0.0000125",
            "lowPrice": "0.0000119",
            "volume": repr(round(5.5e7 / 0.0000122, 8)),
            "quoteVolume": "55000000",
            "openTime": close_ms - 86_400_000,
            "closeTime": close_ms - 1,
            "count": 99,
        },
    ]


def test_tickers_skip_symbols_without_a_day_of_history(api, redis_client):
    day_snapshot(redis_client, "NEWUSDT", open=None, high=None, low=None, close=None, volume=None)
    day_snapshot(redis_client, "ETHUSDT", open=3000.0, high=3100.0, low=2900.0, close=3050.0, volume=1e9,
                 vwap=3010.0, change_pct=1.6666667)  # fmt: skip
    body = APIClient().get(f"{P}/api/tickers/").json()
    assert [ticker["symbol"] for ticker in body] == ["ETHUSDT"]
    assert body[0]["priceChange"] == "50" and body[0]["priceChangePercent"] == "1.667"


def test_tickers_come_from_the_real_snapshot_writer(api, redis_client):
    result = shard(["BTCUSDT"])
    snapshot_write(redis_client, result=result)
    (ticker,) = api.get(f"{P}/api/tickers").json()
    d = TIMEFRAMES.index("1d")
    close, open_ = result.values["close"][d, 0], result.values["open"][d, 0]
    assert float(ticker["lastPrice"]) == pytest.approx(close, abs=1e-8)
    assert float(ticker["openPrice"]) == pytest.approx(open_, abs=1e-8)
    assert float(ticker["priceChange"]) == pytest.approx(close - open_, abs=1e-8)
    assert ticker["priceChangePercent"] == f"{result.values['change_pct'][d, 0]:.3f}"
    assert float(ticker["quoteVolume"]) == pytest.approx(result.values["volume"][d, 0], abs=1e-8)
    assert float(ticker["weightedAvgPrice"]) == pytest.approx(result.values["vwap"][d, 0], abs=1e-8)
    assert all(isinstance(ticker[name], str) for name in ("lastPrice", "highPrice", "lowPrice", "quoteVolume"))


def test_metrics_and_tickers_are_gzipped_for_clients_that_accept_it(api, redis_client):
    import gzip
    import json

    snapshot_write(redis_client, result=shard(["BTCUSDT", "ETHUSDT"]))
    for path in ("/api/metrics/", "/api/tickers"):
        plain = api.get(f"{P}{path}")
        packed = api.get(f"{P}{path}", HTTP_ACCEPT_ENCODING="gzip, deflate, br")
        assert packed["Content-Encoding"] == "gzip" and "Accept-Encoding" in packed["Vary"]
        assert "Content-Encoding" not in plain
        assert json.loads(gzip.decompress(packed.content)) == plain.json() != []
    # A newer snapshot shows in the compressed body too: nothing stale is reused.
    snapshot_write(redis_client, result=shard(["BTCUSDT", "ETHUSDT"], minute_ms=MINUTE_MS + 60_000, seed=9))
    packed = api.get(f"{P}/api/metrics/", HTTP_ACCEPT_ENCODING="gzip")
    assert json.loads(gzip.decompress(packed.content))[0]["timeframes"]["5m"]["time"] == "2026-11-20T10:29:00Z"
