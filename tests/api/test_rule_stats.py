"""GET /api/rules/{rule_type}/stats over stored alerts and candles, against pandas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from apps.alerts.backtest import backtest_run, frames_from_files
from apps.alerts.engine import rules_load
from apps.alerts.models import AlertHistory
from apps.collector.models import Candle1m

pytestmark = pytest.mark.django_db

HORIZONS = {"5m": 5, "15m": 15, "1h": 60, "4h": 240, "1d": 1440}
SYMBOLS = ("SOLUSDT", "LAYERUSDT")


@pytest.fixture
def stored(bundled_data_dir):
    """Three days of two symbols in candles_1m, and a bull and a bear rule's backtest alerts in alert_history."""
    frames = frames_from_files([bundled_data_dir / f"{symbol}-1m.csv.gz" for symbol in SYMBOLS])
    frames = {symbol: frame.iloc[: 3 * 1440].reset_index(drop=True) for symbol, frame in frames.items()}
    Candle1m.objects.bulk_create(
        Candle1m(
            time=datetime.fromtimestamp(row.open_time / 1000, tz=UTC),
            symbol=symbol,
            open=row.open,
            high=row.high,
            low=row.low,
            close=row.close,
            volume=row.volume,
            quote_volume=row.quote_volume,
        )
        for symbol, frame in frames.items()
        for row in frame.itertuples(index=False)
    )
    rules = [rule for rule in rules_load() if rule.rule_type in ("pioneer_bull", "big_bear_5m")]
    result = backtest_run(frames=frames, rules=rules, start_ms=int(frames["SOLUSDT"]["open_time"].iloc[1440]))
    AlertHistory.objects.bulk_create(
        AlertHistory(
            triggered_at=datetime.fromtimestamp((row.candle_open_time + 60_000) / 1000, tz=UTC),
            symbol=row.symbol,
            alert_type=row.alert_type,
            price=row.price,
        )
        for row in result.alerts.itertuples(index=False)
    )
    return frames, result.alerts


def expected_stats(frames, alerts: pd.DataFrame, rule_type: str, direction: float) -> dict:
    closes = pd.concat(
        {symbol: frame.set_index("open_time")["close"] for symbol, frame in frames.items()}, names=["symbol", "t"]
    )
    mine = alerts[alerts["alert_type"] == rule_type]
    out = {}
    for horizon, minutes in HORIZONS.items():
        now = closes.reindex(list(zip(mine["symbol"], mine["candle_open_time"], strict=True))).to_numpy()
        later = closes.reindex(
            list(zip(mine["symbol"], mine["candle_open_time"] + minutes * 60_000, strict=True))
        ).to_numpy()
        returns = ((later - now) / now * 100)[~np.isnan(later)]
        out[horizon] = {
            "count": len(returns),
            "mean": returns.mean() if len(returns) else None,
            "median": np.percentile(returns, 50) if len(returns) else None,
            "p10": np.percentile(returns, 10) if len(returns) else None,
            "p90": np.percentile(returns, 90) if len(returns) else None,
            "hit_rate": (np.sign(returns) == direction).mean() * 100 if len(returns) else None,
        }
    return {"alerts": len(mine), "symbols": mine["symbol"].nunique(), "horizons": out}


@pytest.mark.parametrize(("rule_type", "direction"), [("pioneer_bull", 1.0), ("big_bear_5m", -1.0)])
def test_stats_are_the_forward_returns_of_the_stored_alerts(stored, rule_type, direction):
    frames, alerts = stored
    body = APIClient().get(f"/api/rules/{rule_type}/stats").json()
    want = expected_stats(frames, alerts, rule_type, direction)
    assert body["rule_type"] == rule_type and body["alerts"] == want["alerts"] >= 5
    assert body["symbols"] == want["symbols"]
    for horizon, expected in want["horizons"].items():
        got = body["horizons"][horizon]
        assert got["count"] == expected["count"], horizon
        for name in ("mean", "median", "p10", "p90", "hit_rate"):
            assert got[name] == pytest.approx(expected[name], rel=1e-9, abs=1e-12), (horizon, name)
    # The day after the stored history's last alerts is not stored: fewer returns at 1d than at 5m.
    assert body["horizons"]["1d"]["count"] < body["horizons"]["5m"]["count"]


def test_stats_filter_by_time_and_report_an_empty_rule(stored):
    _, alerts = stored
    client = APIClient()
    mine = alerts[alerts["alert_type"] == "pioneer_bull"]
    middle = datetime.fromtimestamp((int(mine["candle_open_time"].median()) + 60_000) / 1000, tz=UTC)
    later = client.get("/api/rules/pioneer_bull/stats", {"since": middle.isoformat()}).json()
    assert later["alerts"] == int((mine["candle_open_time"] + 60_000 >= middle.timestamp() * 1000).sum())
    empty = client.get("/api/rules/flat_8h/stats", {"until": "2000-01-01T00:00:00Z"}).json()
    assert empty["alerts"] == 0 and empty["first"] is None
    assert empty["horizons"]["1h"] == {
        "count": 0,
        "mean": None,
        "p10": None,
        "p25": None,
        "median": None,
        "p75": None,
        "p90": None,
        "min": None,
        "max": None,
        "hit_rate": None,
    }


def test_stats_of_an_unknown_or_malformed_rule_type_are_clear_errors():
    client = APIClient()
    response = client.get("/api/rules/no_such_rule/stats")
    assert response.status_code == 404 and "no_such_rule" in response.json()["detail"]
    response = client.get("/api/rules/Bad-Type!/stats")
    assert response.status_code == 400 and "rule_type" in response.json()
    response = client.get("/api/rules/pioneer_bull/stats", {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01"})
    assert response.status_code == 400 and "since" in response.json()
    response = client.get("/api/rules/pioneer_bull/stats", {"since": "yesterday"})
    assert response.status_code == 400 and "since" in response.json()


def test_stats_are_in_the_openapi_schema(tmp_path):
    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(tmp_path / "schema.yaml"))
    schema = (tmp_path / "schema.yaml").read_text()
    assert "/api/rules/{rule_type}/stats" in schema and "hit_rate" in schema


def test_stats_neutral_rules_have_no_hit_rate(stored):
    AlertHistory.objects.create(
        triggered_at=datetime.fromtimestamp(int(stored[0]["SOLUSDT"]["open_time"].iloc[100] + 60_000) / 1000, tz=UTC)
        + timedelta(0),
        symbol="SOLUSDT",
        alert_type="flat_1m",
        price=1.0,
    )
    body = APIClient().get("/api/rules/flat_1m/stats").json()
    assert body["alerts"] == 1 and body["horizons"]["5m"]["count"] == 1 and body["horizons"]["5m"]["hit_rate"] is None
