"""Rules that name indicators, in the live shard tick and the near-real-time pass, on the real Redis and PostgreSQL,
against the `ta` library applied to bars aggregated independently with pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import ta
from django.test import override_settings

from apps.alerts import rule_inputs, tick
from apps.alerts import tasks as alert_tasks
from apps.alerts.engine import rules_load
from apps.alerts.models import AlertHistory, AlertRule
from apps.alerts.near_real_time import near_real_time_run
from apps.collector.candles import FIELD_INDEX, MINUTE_MS, data_files, read_csv_candles
from apps.collector.store import active_symbols_set, candles_store, forming_store
from apps.metrics import shard_bars as shard_bars_module
from apps.metrics.models import MetricsCalculated
from apps.metrics.services import minute_time
from apps.metrics.sharding import shards_split
from apps.metrics.tasks import shard_indicators
from screener_project.kernel.redis_keys import shard_last_minute_key
from screener_project.kernel.timeframes import SCREENER_TIMEFRAMES
from tests.metrics.conftest import as_candles
from tests.metrics.test_bars import expected_bars, seed_history

pytestmark = pytest.mark.django_db

ROW = 9000  # six days into the data: 150 hourly bars, every 15m and 5m value defined
CLOSE = FIELD_INDEX["close"]


@pytest.fixture(scope="module")
def frames(bundled_data_dir) -> dict[str, pd.DataFrame]:
    return {symbol: read_csv_candles(paths) for symbol, paths in data_files(bundled_data_dir).items()}


def ta_last(frame: pd.DataFrame, end_ms: int, minutes: int, count: int) -> dict[str, float]:
    """ta 0.11 at the newest of the last `count` bars of `minutes` ending at end_ms (forming bar included)."""
    closes = expected_bars(frame, end_ms, minutes, count)[CLOSE]
    series = pd.Series(closes[np.argmax(~np.isnan(closes)) :])
    trend = ta.trend.MACD(series)
    bands = ta.volatility.BollingerBands(series)
    return {
        "rsi_14": ta.momentum.RSIIndicator(series).rsi().iloc[-1],
        "macd_hist": trend.macd_diff().iloc[-1],
        "bb_middle": bands.bollinger_mavg().iloc[-1],
    }


def between(values: list[float], rank: int) -> float:
    """A threshold strictly between the rank-th and the next smallest value: exactly `rank` values lie below it."""
    ordered = sorted(values)
    return (ordered[rank - 1] + ordered[rank]) / 2


def add_rule(rule_type: str, conditions: list[str], parameters: dict[str, float]) -> None:
    AlertRule.objects.create(
        rule_type=rule_type,
        name=rule_type,
        category="neutral",
        timeframe="1h",
        conditions=conditions,
        parameters=parameters,
        cooldown_minutes=5,
        enabled=True,
    )


def stored_rows(minute_ms: int) -> dict[tuple[str, str], dict]:
    query = MetricsCalculated.objects.filter(time=minute_time(minute_ms)).values()
    return {(row["symbol"], row["timeframe"]): row for row in query}


def fired_by(rule_type: str) -> dict[str, AlertHistory]:
    return {alert.symbol: alert for alert in AlertHistory.objects.filter(alert_type=rule_type)}


@pytest.fixture
def ring(redis_client, frames):
    """Minute t with the collector's 1m ring and the warm-up's bar history in Redis."""
    end_ms = int(next(iter(frames.values()))["open_time"].iloc[ROW])
    candles = []
    for symbol, frame in frames.items():
        candles += as_candles(symbol, frame.iloc[ROW - 1439 : ROW + 1])
    candles_store(redis_client, candles, mark_closed=False)
    seed_history(redis_client, frames, end_ms)
    return end_ms


def test_a_shard_tick_fires_indicator_rules_where_ta_says_and_computes_each_timeframe_once(
    redis_client, frames, ring, settings, monkeypatch
):
    end_ms = ring
    symbols = sorted(frames)
    k = settings.INDICATOR_BARS
    hourly = {s: ta_last(frames[s], end_ms, 60, k) for s in symbols}
    quarter = {s: ta_last(frames[s], end_ms, 15, k) for s in symbols}
    five = {s: ta_last(frames[s], end_ms, 5, k) for s in symbols}
    close = {s: float(frames[s]["close"].iloc[ROW]) for s in symbols}
    rsi_max = between([v["rsi_14"] for v in hourly.values()], 7)
    hist_min = between([v["macd_hist"] for v in quarter.values()], 5)
    above = {s: (close[s] - five[s]["bb_middle"]) / close[s] for s in symbols}  # above the 5m middle band
    gap = between(list(above.values()), 8)
    add_rule("rsi_low_1h", ["rsi_14_1h < rsi_max"], {"rsi_max": rsi_max})
    add_rule(
        "macd_up_15m",
        ["macd_hist_15m > hist_min", "(close - bb_middle_5m) / close > gap"],
        {"hist_min": hist_min, "gap": gap},
    )
    expected_low = {s for s in symbols if hourly[s]["rsi_14"] < rsi_max}
    expected_up = {s for s in symbols if quarter[s]["macd_hist"] > hist_min and above[s] > gap}
    # Each condition of macd_up_15m excludes symbols the other lets through.
    assert len(expected_low) == 7 and 0 < len(expected_up) < 8

    loads: list[tuple[str, ...]] = []
    original = shard_bars_module.closes_shard
    monkeypatch.setattr(
        shard_bars_module, "closes_shard", lambda *a, **kw: loads.append(tuple(kw["from_block"])) or original(*a, **kw)
    )
    monkeypatch.setattr(alert_tasks, "_enqueue_indicators", lambda *args: pytest.fail("handed to the queue"))
    redis_client.set(shard_last_minute_key(0), end_ms - MINUTE_MS)
    alert_tasks.shard_tick(minute_ms=end_ms, shard=0, symbols=symbols, received_ms=end_ms + MINUTE_MS)

    low, up = fired_by("rsi_low_1h"), fired_by("macd_up_15m")
    assert set(low) == expected_low
    assert set(up) == expected_up
    for symbol, alert in low.items():
        assert alert.metadata["metrics"]["rsi_14_1h"] == pytest.approx(hourly[symbol]["rsi_14"], rel=1e-9)
        assert alert.metadata["parameters"] == {"rsi_max": rsi_max}
    for symbol, alert in up.items():
        assert alert.metadata["metrics"]["macd_hist_15m"] == pytest.approx(quarter[symbol]["macd_hist"], rel=1e-9)
        assert alert.metadata["metrics"]["bb_middle_5m"] == pytest.approx(five[symbol]["bb_middle"], rel=1e-9)
        assert alert.metadata["metrics"]["close"] == close[symbol]

    # The rules loaded what they named (each when a rule reached it with every symbol, or most, still standing), the
    # indicators stage only the rest: every timeframe once in the minute.
    assert loads == [("1h",), ("15m",), ("5m",), ("4h", "8h", "1d")]
    # ... and the stage's rows are those it computes on its own.
    rows = stored_rows(end_ms)
    assert len(rows) == len(symbols) * len(SCREENER_TIMEFRAMES)
    MetricsCalculated.objects.all().delete()
    shard_indicators(minute_ms=end_ms, symbols=symbols)
    assert stored_rows(end_ms) == rows


def test_rules_without_indicators_compute_no_bars_before_their_alerts(redis_client, frames, ring, monkeypatch):
    end_ms = ring
    from apps.alerts.models import AlertRule

    named = [rule.rule_type for rule in rules_load() if rule.indicator_timeframes]  # the client's catalogue has some
    AlertRule.objects.filter(rule_type__in=named).update(enabled=False)
    assert rules_load() and all(not rule.indicator_timeframes for rule in rules_load())
    before_alerts = []
    monkeypatch.setattr(
        rule_inputs, "shard_bars", lambda **kw: before_alerts.append(kw) or pytest.fail("bars computed")
    )
    stages = []
    tick.shard_tick_run(
        redis_client,
        minute_ms=end_ms,
        shard=0,
        symbols=sorted(frames),
        received_ms=end_ms + MINUTE_MS,
        indicators=lambda minute, symbols, block, metrics, bars: stages.append(bars),
    )
    assert before_alerts == [] and stages == [None]


def test_a_symbol_without_a_candle_at_t_fires_no_indicator_rule(redis_client, frames, monkeypatch):
    """Its forming bar still has a close (an earlier minute's), but like the backtest, which has no row for it, the
    tick does not evaluate it; a symbol the ring never saw is dropped from the indicators stage, nothing breaks."""
    symbols = sorted(frames)
    end_ms = int(frames[symbols[0]]["open_time"].iloc[ROW])
    quiet = symbols[3]
    candles = []
    for symbol, frame in frames.items():
        candles += as_candles(symbol, frame.iloc[ROW - 1439 : ROW + (0 if symbol == quiet else 1)])
    candles_store(redis_client, candles, mark_closed=False)
    seed_history(redis_client, frames, end_ms)
    add_rule("any_rsi_1h", ["rsi_14_1h > 0"], {})
    monkeypatch.setattr(alert_tasks, "_enqueue_indicators", lambda *args: pytest.fail("handed to the queue"))
    redis_client.set(shard_last_minute_key(0), end_ms - MINUTE_MS)
    shard = [*symbols, "GHOSTUSDT"]
    alert_tasks.shard_tick(minute_ms=end_ms, shard=0, symbols=shard, received_ms=end_ms + MINUTE_MS)
    assert set(fired_by("any_rsi_1h")) == set(symbols) - {quiet}
    assert {symbol for symbol, _ in stored_rows(end_ms)} == set(symbols)  # the quiet one has earlier candles


@override_settings(ALERTS_NEAR_REAL_TIME=True, SHARD_COUNT=1)
def test_the_forming_minute_sees_indicators_of_its_forming_bars(redis_client, frames, settings):
    symbols = sorted(frames)
    end_ms = int(next(iter(frames.values()))["open_time"].iloc[ROW])
    active_symbols_set(redis_client, symbols)
    closed, forming = [], []
    for symbol, frame in frames.items():
        closed += as_candles(symbol, frame.iloc[ROW - 1440 : ROW])
        forming += as_candles(symbol, frame.iloc[ROW : ROW + 1])
    candles_store(redis_client, closed, mark_closed=False)
    forming_store(redis_client, forming)
    seed_history(redis_client, frames, end_ms - MINUTE_MS)  # the bars before the forming minute's
    (shard,) = shards_split(symbols, shard_count=1)
    redis_client.set(shard_last_minute_key(0), end_ms - MINUTE_MS)
    hourly = {s: ta_last(frames[s], end_ms, 60, settings.INDICATOR_BARS) for s in symbols}
    rsi_max = between([v["rsi_14"] for v in hourly.values()], 9)
    add_rule("rsi_low_1h", ["rsi_14_1h < rsi_max"], {"rsi_max": rsi_max})

    alerts = near_real_time_run(redis_client, now_ms=end_ms + 20_000)
    assert {a.symbol for a in alerts if a.alert_type == "rsi_low_1h"} == {
        s for s in symbols if hourly[s]["rsi_14"] < rsi_max
    }
    for alert in alerts:
        if alert.alert_type == "rsi_low_1h":
            assert alert.metadata["source"] == "forming"
            assert alert.metadata["metrics"]["rsi_14_1h"] == pytest.approx(hourly[alert.symbol]["rsi_14"], rel=1e-9)
