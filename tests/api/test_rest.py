"""The REST endpoints (docs/api.md) on the real PostgreSQL and Redis."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from apps.alerts.models import AlertHistory, AlertRule
from apps.alerts.selectors import alert_payload
from apps.alerts.services import rules_builtin_seed
from apps.collector.candles import data_files, read_csv_candles
from apps.collector.models import Candle1m, Symbol
from apps.metrics.models import MetricsCalculated
from screener_project.kernel.redis_keys import snapshot_key

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def fired() -> list[AlertHistory]:
    rows = []
    for n, (symbol, alert_type) in enumerate(
        [("BTCUSDT", "pioneer_bull"), ("ETHUSDT", "pioneer_bull"), ("BTCUSDT", "top_hunter"), ("SOLUSDT", "flat_8h")]
    ):
        rows.append(
            AlertHistory.objects.create(
                triggered_at=T0 + timedelta(minutes=n),
                symbol=symbol,
                alert_type=alert_type,
                timeframe="5m",
                price=100.0 + n,
                volume=1e6 * (n + 1),
                change_pct=1.5 + n,
                metadata={"n": n},
            )
        )
    return rows


# --- /api/alerts ---------------------------------------------------------------------------------------------


def test_alerts_newest_first_with_total_and_spec_shape(api, fired):
    body = api.get("/api/alerts").json()
    assert body["total"] == 4 and body["limit"] == 100 and body["offset"] == 0
    assert [a["metadata"]["n"] for a in body["alerts"]] == [3, 2, 1, 0]
    newest = AlertHistory.objects.get(triggered_at=T0 + timedelta(minutes=3))
    assert body["alerts"][0] == alert_payload(newest)
    assert set(body["alerts"][0]) == {
        "id",
        "triggered_at",
        "symbol",
        "alert_type",
        "timeframe",
        "price",
        "volume",
        "change_pct",
        "metadata",
    }
    uuid.UUID(body["alerts"][0]["id"])


def test_alerts_paginate_with_limit_and_offset(api, fired):
    body = api.get("/api/alerts", {"limit": 2, "offset": 1}).json()
    assert body["total"] == 4 and body["limit"] == 2 and body["offset"] == 1
    assert [a["metadata"]["n"] for a in body["alerts"]] == [2, 1]


def test_alerts_filter_by_symbol_type_and_time(api, fired):
    assert [a["metadata"]["n"] for a in api.get("/api/alerts", {"symbol": "btcusdt"}).json()["alerts"]] == [2, 0]
    assert [a["metadata"]["n"] for a in api.get("/api/alerts", {"type": "pioneer_bull"}).json()["alerts"]] == [1, 0]
    window = {"since": (T0 + timedelta(minutes=1)).isoformat(), "until": (T0 + timedelta(minutes=2)).isoformat()}
    body = api.get("/api/alerts", window).json()
    assert [a["metadata"]["n"] for a in body["alerts"]] == [2, 1] and body["total"] == 2


@pytest.mark.parametrize(
    "params, field",
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-45"}, "until"),
        ({"since": "2026-11-21T00:00:00Z", "until": "2026-11-20T00:00:00Z"}, "since"),
        ({"symbol": "BTC-USDT"}, "symbol"),
        ({"type": "Big Bull"}, "type"),
    ],
)
def test_alerts_bad_parameter_is_400_naming_the_field(api, params, field):
    response = api.get("/api/alerts", params)
    assert response.status_code == 400
    assert field in response.json()


def test_alerts_limit_bounds_are_accepted(api, fired):
    assert api.get("/api/alerts", {"limit": 1}).json()["alerts"][0]["metadata"]["n"] == 3
    assert len(api.get("/api/alerts", {"limit": 1000}).json()["alerts"]) == 4


# --- /api/metrics/{symbol} -------------------------------------------------------------------------------------


def test_metrics_come_from_the_redis_snapshot(api, redis_client):
    snapshot = {
        "symbol": "BTCUSDT",
        "timestamp": "2026-11-20T10:00:00Z",
        "timeframes": {"5m": {"open": 1.0, "close": 2.0, "change_pct": 100.0, "rsi_14": 55.5}},
    }
    redis_client.hset(snapshot_key(), "BTCUSDT", json.dumps(snapshot))
    response = api.get("/api/metrics/btcusdt")
    assert response.status_code == 200
    assert response.json() == snapshot


def test_metrics_fall_back_to_metrics_calculated(api):
    Symbol.objects.create(symbol="ETHUSDT")
    for timeframe, close in (("5m", 10.0), ("1h", 11.0)):
        MetricsCalculated.objects.create(time=T0 - timedelta(minutes=1), symbol="ETHUSDT", timeframe=timeframe, close=1)
        MetricsCalculated.objects.create(time=T0, symbol="ETHUSDT", timeframe=timeframe, close=close, rsi_14=40.0)
    body = api.get("/api/metrics/ETHUSDT").json()
    # The values of minute T0 are known at its close, as the live snapshot says.
    assert body["symbol"] == "ETHUSDT" and body["timestamp"] == "2026-11-20T10:01:00Z"
    assert body["timeframes"]["5m"]["close"] == 10.0 and body["timeframes"]["1h"]["close"] == 11.0
    assert body["timeframes"]["1h"]["rsi_14"] == 40.0 and body["timeframes"]["1h"]["macd"] is None


def test_metrics_of_unknown_symbol_is_404(api):
    response = api.get("/api/metrics/NOPEUSDT")
    assert response.status_code == 404
    assert "NOPEUSDT" in response.json()["detail"]


def test_metrics_of_malformed_symbol_is_400(api):
    response = api.get("/api/metrics/BTC$USDT")
    assert response.status_code == 400 and "symbol" in response.json()


# --- /api/symbols, /api/rules ----------------------------------------------------------------------------------


def test_symbols_list(api):
    Symbol.objects.create(symbol="ETHUSDT", base_asset="ETH", quote_volume_24h=5e9)
    Symbol.objects.create(symbol="BTCUSDT", base_asset="BTC", is_active=False)
    body = api.get("/api/symbols").json()
    assert body["count"] == 2
    assert [s["symbol"] for s in body["symbols"]] == ["BTCUSDT", "ETHUSDT"]
    assert body["symbols"][0]["is_active"] is False and body["symbols"][1]["quote_volume_24h"] == 5e9


def test_rules_list_has_the_builtin_rules(api):
    from apps.alerts.builtin_rules import BUILTIN_RULES

    rules_builtin_seed()
    AlertRule.objects.filter(rule_type="flat_1m").update(enabled=False)
    body = api.get("/api/rules").json()
    assert body["count"] == len(BUILTIN_RULES) == 26
    by_type = {rule["rule_type"]: rule for rule in body["rules"]}
    assert by_type["flat_1m"]["enabled"] is False
    assert by_type["big_bull_60m"]["parameters"]["change_1h_min"] == 1.6
    assert "change_1h > change_1h_min" in by_type["big_bull_60m"]["conditions"]


# --- /api/candles/{symbol} -------------------------------------------------------------------------------------


@pytest.fixture
def eth_candles(bundled_data_dir) -> pd.DataFrame:
    """The first 1,000 minutes of real ETHUSDT candles, stored in candles_1m."""
    frame = read_csv_candles(data_files(bundled_data_dir)["ETHUSDT"]).iloc[:1000].reset_index(drop=True)
    frame["time"] = pd.to_datetime(frame["open_time"], unit="ms", utc=True)
    Candle1m.objects.bulk_create(
        Candle1m(
            time=row.time.to_pydatetime(),
            symbol="ETHUSDT",
            open=row.open,
            high=row.high,
            low=row.low,
            close=row.close,
            volume=row.volume,
            quote_volume=row.quote_volume,
            trades=row.trades,
            taker_buy_volume=row.taker_buy_volume,
            taker_buy_quote_volume=row.taker_buy_quote_volume,
        )
        for row in frame.itertuples()
    )
    return frame


def _resampled(frame: pd.DataFrame, rule: str) -> pd.DataFrame:
    bars = frame.set_index("time").resample(rule, origin="epoch", label="left", closed="left")
    return pd.DataFrame(
        {
            "open": bars["open"].first(),
            "high": bars["high"].max(),
            "low": bars["low"].min(),
            "close": bars["close"].last(),
            "quote_volume": bars["quote_volume"].sum(),
            "volume": bars["volume"].sum(),
        }
    ).dropna()


def test_candles_1m_newest_oldest_first(api, eth_candles):
    body = api.get("/api/candles/ethusdt", {"interval": "1m", "limit": 3}).json()
    assert body["symbol"] == "ETHUSDT" and body["interval"] == "1m"
    tail = eth_candles.iloc[-3:]
    assert [c["close"] for c in body["candles"]] == list(tail["close"])
    assert body["candles"][-1]["time"] == tail["time"].iloc[-1].isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize("interval, rule", [("5m", "5min"), ("15m", "15min"), ("1h", "1h"), ("4h", "4h")])
def test_candles_aggregate_like_pandas_resample(api, eth_candles, interval, rule):
    expected = _resampled(eth_candles, rule).iloc[-6:]
    body = api.get(f"/api/candles/ETHUSDT?interval={interval}&limit=6").json()
    got = body["candles"]
    assert [c["time"] for c in got] == [t.isoformat().replace("+00:00", "Z") for t in expected.index]
    for column in ("open", "high", "low", "close", "quote_volume", "volume"):
        assert [c[column] for c in got] == pytest.approx(list(expected[column]), rel=1e-12)


def test_candles_default_limit_and_interval(api, eth_candles):
    body = api.get("/api/candles/ETHUSDT").json()
    assert body["interval"] == "1m" and len(body["candles"]) == 500


@pytest.mark.parametrize(
    "query, field",
    [("interval=2m", "interval"), ("limit=0", "limit"), ("limit=1501", "limit"), ("limit=x", "limit")],
)
def test_candles_bad_parameter_is_400_naming_the_field(api, eth_candles, query, field):
    response = api.get(f"/api/candles/ETHUSDT?{query}")
    assert response.status_code == 400 and field in response.json()


def test_candles_of_unknown_symbol_is_404(api):
    assert api.get("/api/candles/NOPEUSDT").status_code == 404


# --- schema and docs -------------------------------------------------------------------------------------------


def test_openapi_schema_generates_without_warnings(tmp_path):
    # --fail-on-warn turns any drf-spectacular warning into an error; --validate checks it against OpenAPI 3.
    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(tmp_path / "schema.yaml"))
    assert "/api/alerts" in (tmp_path / "schema.yaml").read_text()


def test_schema_and_docs_are_served(api):
    schema = api.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/candles/{symbol}" in schema.content
    assert api.get("/api/docs/").status_code == 200


def test_empty_query_parameters_mean_absent(api, fired):
    body = api.get("/api/alerts?symbol=&type=&since=&until=&limit=&offset=").json()
    assert body["total"] == 4 and body["limit"] == 100 and body["offset"] == 0


def test_unknown_query_parameters_are_ignored(api, fired):
    assert api.get("/api/alerts", {"colour": "blue"}).json()["total"] == 4
