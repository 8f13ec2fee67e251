"""The indicators stage end to end on the real Redis and PostgreSQL: metrics_calculated rows and snapshot shape."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import ta

from apps.collector.bars_store import bars_of_symbol
from apps.collector.candles import MINUTE_MS
from apps.collector.store import candles_store
from apps.metrics.models import MetricsCalculated
from apps.metrics.selectors import SNAPSHOT_FIELDS, indicators_last_run, snapshot_read
from apps.metrics.services import minute_time
from apps.metrics.tasks import shard_indicators
from screener_project.kernel.timeframes import SCREENER_TIMEFRAMES

from .conftest import SYMBOLS, as_candles
from .test_bars import expected_bars, minute_of, seed_history
from .test_windows import pandas_window

ROW = 9000


def load_ring(client, frames: dict[str, pd.DataFrame], row: int) -> None:
    """The collector's work: the last 1440 closed candles of each symbol in the Redis ring."""
    candles = []
    for symbol, frame in frames.items():
        candles += as_candles(symbol, frame.iloc[row - 1439 : row + 1])
    candles_store(client, candles, mark_closed=False)


@pytest.fixture
def prepared(redis_client, frames):
    end_ms = minute_of(frames, ROW)
    load_ring(redis_client, frames, ROW)
    seed_history(redis_client, frames, end_ms)  # the warm-up: complete bars from REST
    return end_ms


@pytest.mark.django_db
def test_the_task_upserts_one_row_per_symbol_and_timeframe(redis_client, frames, prepared, settings):
    end_ms = prepared
    shard_indicators(minute_ms=end_ms, symbols=SYMBOLS)
    shard_indicators(minute_ms=end_ms, symbols=SYMBOLS)  # a retry: still one row each
    rows = MetricsCalculated.objects.filter(time=minute_time(end_ms))
    assert rows.count() == len(SYMBOLS) * len(SCREENER_TIMEFRAMES)
    for symbol in SYMBOLS:
        frame = frames[symbol]
        for timeframe, n in SCREENER_TIMEFRAMES.items():
            row = rows.get(symbol=symbol, timeframe=timeframe)
            expected = pandas_window(frame, ROW, n)
            assert row.change_pct == pytest.approx(expected["change"], rel=1e-9)
            assert row.volume == pytest.approx(expected["vol"], rel=1e-9)
            assert row.vcp == pytest.approx(expected["vcp"], rel=1e-9, abs=1e-12)
            assert row.fib_s3 == pytest.approx(expected["fib_s3"], rel=1e-9)
            assert row.trades == int(expected["trades"])
            closes = expected_bars(frame, end_ms, SCREENER_TIMEFRAMES[timeframe], settings.INDICATOR_BARS)[4]
            series = pd.Series(closes[np.argmax(~np.isnan(closes)) :])
            rsi = ta.momentum.RSIIndicator(series).rsi().iloc[-1]
            signal = ta.trend.MACD(series).macd_signal().iloc[-1]
            upper = ta.volatility.BollingerBands(series).bollinger_hband().iloc[-1]
            for got, want in ((row.rsi_14, rsi), (row.macd_signal, signal), (row.bb_upper, upper)):
                if np.isnan(want):
                    assert got is None, (symbol, timeframe)
                else:
                    assert got == pytest.approx(want, rel=1e-9), (symbol, timeframe)


@pytest.mark.django_db
def test_the_snapshot_is_the_api_body_and_only_moves_forward(redis_client, frames, prepared):
    end_ms = prepared
    shard_indicators(minute_ms=end_ms, symbols=SYMBOLS)
    snapshots = snapshot_read(redis_client)
    assert set(snapshots) == set(SYMBOLS)
    btc = snapshots["BTCUSDT"]
    assert set(btc) == {"symbol", "timestamp", "timeframes"} and btc["symbol"] == "BTCUSDT"
    assert btc["timestamp"] == pd.Timestamp(end_ms + MINUTE_MS, unit="ms", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
    assert list(btc["timeframes"]) == list(SCREENER_TIMEFRAMES)
    for values in btc["timeframes"].values():
        assert list(values) == list(SNAPSHOT_FIELDS)
        assert isinstance(values["trades"], int) and isinstance(values["close"], float)
    assert btc["timeframes"]["5m"]["close"] == frames["BTCUSDT"]["close"].iloc[ROW]
    assert btc["timeframes"]["1d"]["macd_signal"] is None  # eight days of data: too few daily bars
    assert indicators_last_run(redis_client)["minute_ms"] == end_ms

    shard_indicators(minute_ms=end_ms - MINUTE_MS, symbols=SYMBOLS)  # a late retry of the previous minute
    assert snapshot_read(redis_client, symbols=["BTCUSDT"])["BTCUSDT"]["timestamp"] == btc["timestamp"]
    assert snapshot_read(redis_client, symbols=["NOPEUSDT", "ETHUSDT"]).keys() == {"ETHUSDT"}


@pytest.mark.django_db
def test_the_task_rolls_the_forming_bars_into_the_store(redis_client, frames, prepared):
    end_ms = prepared
    shard_indicators(minute_ms=end_ms, symbols=SYMBOLS)
    hours = bars_of_symbol(redis_client, symbol="ETHUSDT", interval="1h")
    forming_open = end_ms // (60 * MINUTE_MS) * 60 * MINUTE_MS
    assert hours[-1, 0] == forming_open
    eth = frames["ETHUSDT"]
    so_far = eth[(eth["open_time"] >= forming_open) & (eth["open_time"] <= end_ms)]
    assert hours[-1, 4] == so_far["close"].iloc[-1] and hours[-1, 2] == so_far["high"].max()


def test_the_task_is_routed_to_the_indicators_queue():
    from screener_project.celery import app

    route = app.amqp.router.route({}, "metrics.shard_indicators", args=(), kwargs={})
    assert route["queue"].name == "indicators"


@pytest.mark.django_db
def test_symbols_without_candles_get_no_row_and_bad_arguments_are_ignored(redis_client, frames, prepared):
    end_ms = prepared
    shard_indicators(minute_ms=end_ms, symbols=["BTCUSDT", "GHOSTUSDT"])
    assert set(MetricsCalculated.objects.values_list("symbol", flat=True)) == {"BTCUSDT"}
    assert set(snapshot_read(redis_client)) == {"BTCUSDT"}
    shard_indicators(minute_ms=end_ms, symbols=[])  # an empty shard writes nothing and does not fail
    assert shard_indicators(minute_ms=end_ms + 1, symbols=["BTCUSDT"]) == {}
    assert shard_indicators(minute_ms="soon", symbols=["BTCUSDT"]) == {}
    assert shard_indicators(minute_ms=end_ms, symbols="BTCUSDT") == {}
    assert MetricsCalculated.objects.count() == len(SCREENER_TIMEFRAMES)


def test_snapshots_of_a_large_shard_are_all_written_and_guarded(redis_client):
    from apps.metrics.services import VALUE_COLUMNS, ShardIndicators, snapshot_write

    symbols = [f"X{i:05d}USDT" for i in range(2500)]  # more values than one Lua unpack takes
    values = {column: np.full((len(SCREENER_TIMEFRAMES), len(symbols)), 1.5) for column in VALUE_COLUMNS}
    minute = 1_746_835_200_000
    assert snapshot_write(redis_client, result=ShardIndicators(minute, symbols, values, {})) == 2500
    older = {column: value[:, :10] for column, value in values.items()}
    assert snapshot_write(redis_client, result=ShardIndicators(minute - MINUTE_MS, symbols[:10], older, {})) == 0
    snapshots = snapshot_read(redis_client)
    assert len(snapshots) == 2500
    assert snapshots["X02499USDT"]["timeframes"]["1d"]["rsi_14"] == 1.5
