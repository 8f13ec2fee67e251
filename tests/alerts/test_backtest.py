"""The backtest on the bundled real data: same alert set as the live path, CSV and summary, data sources."""

from __future__ import annotations

import csv
import gzip
import io

import numpy as np
import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from apps.alerts.backtest import _cooldown_keep, _grid, backtest_run, frames_from_database, frames_from_files
from apps.alerts.engine import (
    rule_compile,
    rule_context,
    rules_block_minutes,
    rules_evaluate,
    rules_load,
    rules_resolver,
)
from apps.alerts.models import AlertHistory, AlertRule
from apps.alerts.rule_inputs import LiveValues
from apps.alerts.services import alerts_fire
from apps.collector.candles import FIELDS, MINUTE_MS, Candle
from apps.collector.models import Candle1m
from apps.collector.store import active_symbols_set, candles_matrix, candles_store
from apps.metrics.history_closes import HistoryCloses
from apps.metrics.indicators import INDICATOR_NAMES
from apps.metrics.services import shard_indicators_run
from apps.metrics.shard_bars import indicators_by_timeframe, shard_bars
from apps.metrics.windows import LONGEST_WINDOW, window_metrics
from screener_project.kernel.timeframes import SCREENER_TIMEFRAMES
from tests.metrics.test_bars import seed_history

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def frames(bundled_data_dir) -> dict[str, pd.DataFrame]:
    return frames_from_files([bundled_data_dir])


def with_gaps(frames: dict[str, pd.DataFrame], first_ms: int) -> dict[str, pd.DataFrame]:
    """Drop a few candles of one symbol, before and inside the evaluated range, as a flaky feed would."""
    symbol = sorted(frames)[1]
    frame = frames[symbol]
    missing = [first_ms - 30 * MINUTE_MS, first_ms + 17 * MINUTE_MS, first_ms + 18 * MINUTE_MS]
    return {**frames, symbol: frame[~frame["open_time"].isin(missing)].reset_index(drop=True)}


def frame_candles(symbol: str, frame: pd.DataFrame) -> list[Candle]:
    out = []
    for values in frame[list(FIELDS)].itertuples(index=False):
        row = dict(zip(FIELDS, values, strict=True))
        row["open_time"], row["trades"] = int(row["open_time"]), int(row["trades"])
        out.append(Candle(symbol=symbol, **row))
    return out


def test_live_path_over_redis_yields_the_backtest_alert_set(frames, redis_client):
    """Minute by minute through the Redis ring and alert_history, as the tick does, against the backtest."""
    symbols = sorted(frames)
    first_ms = int(frames[symbols[0]]["open_time"].iloc[0]) + 2 * 1440 * MINUTE_MS + 600 * MINUTE_MS
    last_ms = first_ms + 179 * MINUTE_MS
    data = with_gaps(frames, first_ms)
    # The enabled rules that read no indicator (those are replayed with their bars below).
    rules = [rule for rule in rules_load() if not rule.indicator_timeframes]
    assert any(rule.references for rule in rules)

    expected = backtest_run(frames=data, rules=rules, start_ms=first_ms, end_ms=last_ms)
    assert len(expected.alerts) > 50  # a busy stretch, or the comparison proves little
    assert expected.alerts["alert_type"].nunique() >= 5

    active_symbols_set(redis_client, symbols)
    history = [
        candle
        for symbol, frame in data.items()
        for candle in frame_candles(
            symbol, frame[frame["open_time"].between(first_ms - LONGEST_WINDOW * MINUTE_MS, last_ms)]
        )
    ]
    candles_store(redis_client, [c for c in history if c.open_time < first_ms], mark_closed=False)
    by_minute: dict[int, list[Candle]] = {}
    for candle in history:
        if candle.open_time >= first_ms:
            by_minute.setdefault(candle.open_time, []).append(candle)
    for minute in range(first_ms, last_ms + MINUTE_MS, MINUTE_MS):
        candles_store(redis_client, by_minute.get(minute, []), mark_closed=False)
        block = candles_matrix(redis_client, symbols, end_minute_ms=minute, length=LONGEST_WINDOW)
        values = LiveValues(redis_client, minute_ms=minute, symbols=symbols, block=block)
        context = rule_context(candles=block, metrics=window_metrics(block), symbols=symbols, loader=values)
        fired = rules_evaluate(rules, context)
        stamps = {"candle_close_ms": minute + MINUTE_MS, "received_ms": 0, "evaluated_ms": 0}
        alerts_fire(minute_ms=minute, symbols=symbols, fired=fired, context=context, rules=rules, timestamps=stamps)

    live = {
        (a.symbol, a.alert_type, int(a.triggered_at.timestamp() * 1000) - MINUTE_MS) for a in AlertHistory.objects.all()
    }
    assert live == expected.keys()
    # Prices and changes agree exactly: the same numbers went through the same code.
    stored = {
        (a.symbol, a.alert_type, int(a.triggered_at.timestamp() * 1000) - MINUTE_MS): a
        for a in AlertHistory.objects.all()
    }
    for row in expected.alerts.itertuples(index=False):
        alert = stored[(row.symbol, row.alert_type, row.candle_open_time)]
        assert alert.price == row.price
        assert alert.change_pct == row.change_pct or (alert.change_pct is None and np.isnan(row.change_pct))


# Rules over indicators of every family and of timeframes served by the block alone (5m), by the block and the bar
# store (15m, 1h, 4h) and by the bar store only (8h).
INDICATOR_RULES = [
    ("rsi_hot_5m", ["rsi_14_5m > 63"]),
    ("dip_in_uptrend", ["rsi_14_15m < 46", "macd_1h > macd_signal_1h"]),
    ("under_the_band", ["close < bb_lower_15m", "bb_middle_4h > 0"]),
    ("slow_turn", ["macd_hist_4h > 0", "macd_hist_15m < 0", "rsi_14_8h > 45"]),
]


def replay_live(
    client, data: dict[str, pd.DataFrame], rules, first_ms: int, last_ms: int, *, on_minute=None, shards=None
) -> None:
    """Minute by minute as the live system: the warm-up (1m ring and the bar history the exchange's klines give),
    then per minute the shard tick of each shard (rules, with the indicators, reference symbols and daily changes
    they name, and alerts) and its indicators stage, which rolls the bars forward. `shards` splits the symbols
    (default: one shard)."""
    symbols = sorted(data)
    shards = shards or [symbols]
    active_symbols_set(client, symbols)
    history = [
        candle
        for symbol, frame in data.items()
        for candle in frame_candles(
            symbol, frame[frame["open_time"].between(first_ms - LONGEST_WINDOW * MINUTE_MS, last_ms)]
        )
    ]
    candles_store(client, [c for c in history if c.open_time < first_ms], mark_closed=False)
    seed_history(client, data, first_ms - MINUTE_MS)  # complete bars before the first live minute
    by_minute: dict[int, list[Candle]] = {}
    for candle in history:
        if candle.open_time >= first_ms:
            by_minute.setdefault(candle.open_time, []).append(candle)
    for minute in range(first_ms, last_ms + MINUTE_MS, MINUTE_MS):
        candles_store(client, by_minute.get(minute, []), mark_closed=False)
        for shard in shards:
            block = candles_matrix(client, shard, end_minute_ms=minute, length=LONGEST_WINDOW)
            metrics = window_metrics(block)
            values = LiveValues(client, minute_ms=minute, symbols=shard, block=block)
            context = rule_context(candles=block, metrics=metrics, symbols=shard, loader=values)
            fired = rules_evaluate(rules, context)
            stamps = {"candle_close_ms": minute + MINUTE_MS, "received_ms": 0, "evaluated_ms": 0}
            alerts_fire(minute_ms=minute, symbols=shard, fired=fired, context=context, rules=rules, timestamps=stamps)
            bars = values.bars
            shard_indicators_run(client, minute_ms=minute, symbols=shard, block=block, metrics=metrics, bars=bars)
            if on_minute is not None:
                on_minute(minute, bars)


@pytest.mark.django_db(transaction=True)  # the indicators stage commits its rows as in production
def test_live_path_with_indicator_rules_yields_the_backtest_alerts_and_values(frames, redis_client):
    symbols = sorted(frames)
    first_ms = int(frames[symbols[0]]["open_time"].iloc[0]) + 6 * 1440 * MINUTE_MS + 600 * MINUTE_MS
    last_ms = first_ms + 179 * MINUTE_MS
    data = with_gaps(frames, first_ms)
    rules = [rule_compile(rule_type=name, conditions=conditions, parameters={}) for name, conditions in INDICATOR_RULES]
    expected = backtest_run(frames=data, rules=rules, start_ms=first_ms, end_ms=last_ms)
    counts = expected.alerts["alert_type"].value_counts()
    assert len(counts) == len(INDICATOR_RULES) and counts.min() >= 3, counts  # each rule has something to agree on

    # At some minutes, the closes each timeframe's indicators read, live (the shard's bars, which the indicators
    # stage completed) against the backtest's history of each symbol.
    grids = {symbol: _grid(frame) for symbol, frame in data.items()}
    checked = []

    def compare(minute: int, bars) -> None:
        if (minute - first_ms) // MINUTE_MS % 45 != 17:
            return
        live = bars.closes
        for s, symbol in enumerate(symbols):
            grid, first = grids[symbol]
            start = first - (LONGEST_WINDOW - 1) * MINUTE_MS
            history = HistoryCloses(
                grid, grid_start_ms=start, timeframes=list(SCREENER_TIMEFRAMES), count=live["5m"].shape[1]
            )
            column = np.array([(minute - start) // MINUTE_MS])
            backtest_closes = history.closes(column)
            backtest_values = indicators_by_timeframe(backtest_closes)
            for tf in SCREENER_TIMEFRAMES:
                assert np.array_equal(backtest_closes[tf][0], live[tf][s], equal_nan=True), (symbol, tf, minute)
                for name in INDICATOR_NAMES:
                    got, want = backtest_values[tf][name][0], bars.indicators[tf][name][s]
                    assert got == want or (np.isnan(got) and np.isnan(want)), (symbol, tf, name, minute)
        checked.append(minute)

    replay_live(redis_client, data, rules, first_ms, last_ms, on_minute=compare)
    assert len(checked) == 4

    live = {
        (a.symbol, a.alert_type, int(a.triggered_at.timestamp() * 1000) - MINUTE_MS): a
        for a in AlertHistory.objects.all()
    }
    assert set(live) == expected.keys()
    # The indicator values in each alert's metadata are the backtest's, to the last bit.
    for row in expected.alerts.itertuples(index=False):
        alert = live[(row.symbol, row.alert_type, row.candle_open_time)]
        rule = next(r for r in rules if r.rule_type == row.alert_type)
        for label in rule.inputs:
            assert alert.metadata["metrics"][label] == getattr(row, label), (row.symbol, row.alert_type, label)


@pytest.mark.parametrize("bars_kept", [200, 300])  # 300: more 5m bars than the 1m block holds, NaN before it
@pytest.mark.parametrize("day_minute", [0, 7, 1439])
def test_backtest_closes_are_the_live_tick_closes(frames, redis_client, settings, bars_kept, day_minute):
    """At minutes around a UTC day boundary, with missing candles before and at the forming bars."""
    settings.INDICATOR_BARS = bars_kept
    symbols = sorted(frames)
    origin = int(frames[symbols[0]]["open_time"].iloc[0])
    minute = (origin // (1440 * MINUTE_MS) + 5) * 1440 * MINUTE_MS + day_minute * MINUTE_MS
    data = with_gaps(frames, minute - 20 * MINUTE_MS)
    seed_history(redis_client, data, minute - 45 * MINUTE_MS)  # the warm-up was 45 minutes ago
    history = [
        candle
        for symbol, frame in data.items()
        for candle in frame_candles(symbol, frame[frame["open_time"].between(minute - 1439 * MINUTE_MS, minute)])
    ]
    candles_store(redis_client, history, mark_closed=False)
    block = candles_matrix(redis_client, symbols, end_minute_ms=minute, length=LONGEST_WINDOW)
    # The ticks of the last 45 minutes rolled their forming bars into the store.
    from apps.collector.bars_store import bars_roll
    from apps.metrics.bars import bars_to_roll

    for earlier in range(minute - 44 * MINUTE_MS, minute, MINUTE_MS):
        old = candles_matrix(redis_client, symbols, end_minute_ms=earlier, length=LONGEST_WINDOW)
        bars = shard_bars(minute_ms=earlier, symbols=symbols, block=old)
        bars_roll(redis_client, symbols=symbols, bars=bars_to_roll(bars.from_block, end_minute_ms=earlier))
    live = shard_bars(minute_ms=minute, symbols=symbols, block=block)
    live.closes_load(redis_client, SCREENER_TIMEFRAMES)
    for s, symbol in enumerate(symbols):
        grid, first = _grid(data[symbol])
        start = first - (LONGEST_WINDOW - 1) * MINUTE_MS
        history_closes = HistoryCloses(grid, grid_start_ms=start, timeframes=list(SCREENER_TIMEFRAMES), count=bars_kept)
        got = history_closes.closes(np.array([(minute - start) // MINUTE_MS]))
        for tf in SCREENER_TIMEFRAMES:
            assert np.array_equal(got[tf][0], live.closes[tf][s], equal_nan=True), (symbol, tf)
    if bars_kept > 288:
        assert np.isnan(live.closes["5m"][:, 0]).all()  # older than the block: the live tick has no 5m bar there


def test_cooldown_keeps_the_first_of_each_cooldown_span():
    minutes = np.arange(0, 13) * MINUTE_MS
    assert np.flatnonzero(_cooldown_keep(minutes, 5)).tolist() == [0, 5, 10]
    assert _cooldown_keep(minutes, 1).all()
    assert _cooldown_keep(minutes, 0).all()
    sparse = np.array([0, 4, 6, 9, 11]) * MINUTE_MS
    assert np.flatnonzero(_cooldown_keep(sparse, 5)).tolist() == [0, 2, 4]


def test_cooldown_override_only_adds_alerts(frames):
    rules = [r for r in rules_load() if r.rule_type in ("flat_1m", "bull_whale")]
    two = {s: frames[s] for s in sorted(frames)[:2]}
    own = backtest_run(frames=two, rules=rules)
    none = backtest_run(frames=two, rules=rules, cooldown_minutes=0)
    assert own.keys() < none.keys()
    for rule_type in ("flat_1m", "bull_whale"):
        kept = own.alerts[own.alerts["alert_type"] == rule_type]
        for _, pair in kept.groupby("symbol"):
            assert (np.diff(pair["candle_open_time"].to_numpy()) >= 5 * MINUTE_MS).all()


def test_backtest_command_writes_csv_and_summary(bundled_data_dir, tmp_path, frames):
    output = tmp_path / "alerts.csv"
    files = [bundled_data_dir / "BTCUSDT-1m.csv.gz", bundled_data_dir / "ETHUSDT-1m.csv.gz"]
    start = pd.Timestamp(int(frames["BTCUSDT"]["open_time"].iloc[1440]), unit="ms", tz="UTC")
    end = start + pd.Timedelta(days=2)
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "backtest",
        "--data",
        *map(str, files),
        "--from",
        start.isoformat(),
        "--to",
        end.isoformat(),
        "--rules",
        "flat_1m,bull_whale,bear_whale,big_bull_60m",
        "--output",
        str(output),
        "--no-progress",
        stdout=out,
        stderr=err,
    )
    with output.open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows, "expected alerts on two days of BTC and ETH"
    assert list(rows[0])[:5] == ["symbol", "alert_type", "candle_open_time", "price", "change_pct"]
    assert "max_n(range_pct,10)" in rows[0] and "vol_1d" in rows[0]
    assert {r["symbol"] for r in rows} <= {"BTCUSDT", "ETHUSDT"}
    opens = [int(r["candle_open_time"]) for r in rows]
    assert min(opens) >= start.value // 1_000_000 and max(opens) <= end.value // 1_000_000
    rules = [r for r in rules_load() if r.rule_type in ("flat_1m", "bull_whale", "bear_whale", "big_bull_60m")]
    two = {s: frames[s] for s in ("BTCUSDT", "ETHUSDT")}
    expected = backtest_run(frames=two, rules=rules, start_ms=start.value // 1_000_000, end_ms=end.value // 1_000_000)
    assert {(r["symbol"], r["alert_type"], int(r["candle_open_time"])) for r in rows} == expected.keys()
    text = out.getvalue()
    for rule_type in ("flat_1m", "bull_whale", "bear_whale", "big_bull_60m"):
        assert rule_type in text
    assert "hit 4h" in text and "candles/s" in text
    assert f"{len(rows):,} alerts" in text


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--rules", "no_such_rule"], "unknown rule type(s): no_such_rule"),
        (["--from", "yesterday-ish"], "--from: not an ISO-8601 time"),
        (["--from", "2025-05-10", "--to", "2025-05-09"], "--to is before --from"),
        (["--data", "/nonexistent/XUSDT-1m.csv"], "no such data file"),
    ],
)
def test_backtest_command_rejects_bad_input_clearly(bundled_data_dir, arguments, message):
    if "--data" not in arguments:
        arguments = [*arguments, "--data", str(bundled_data_dir / "BTCUSDT-1m.csv.gz")]
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call_command("backtest", *arguments, "--no-progress", stdout=io.StringIO(), stderr=io.StringIO())


def test_plain_and_gzipped_files_read_the_same(bundled_data_dir, tmp_path):
    source = bundled_data_dir / "XMRUSDT-1m.csv.gz"
    plain = tmp_path / "XMRUSDT-1m.csv"
    plain.write_bytes(gzip.decompress(source.read_bytes()))
    a, b = frames_from_files([source]), frames_from_files([plain])
    pd.testing.assert_frame_equal(a["XMRUSDT"], b["XMRUSDT"])


@pytest.mark.django_db(transaction=True)  # the SQLAlchemy connection sees only committed rows
def test_database_source_matches_files(frames):
    rules = rules_load()
    part = {s: frames[s].iloc[: 1440 + 600] for s in ("BTCUSDT", "LAYERUSDT")}
    Candle1m.objects.bulk_create(
        Candle1m(
            time=pd.Timestamp(int(row.open_time), unit="ms", tz="UTC").to_pydatetime(),
            symbol=symbol,
            **{name: getattr(row, name) for name in FIELDS if name != "open_time"},
        )
        for symbol, frame in part.items()
        for row in frame.itertuples(index=False)
    )
    start = int(part["BTCUSDT"]["open_time"].iloc[1440])
    from_db = frames_from_database(start_ms=start)
    assert sorted(from_db) == ["BTCUSDT", "LAYERUSDT"]
    expected = backtest_run(frames=part, rules=rules, start_ms=start)
    got = backtest_run(frames=from_db, rules=rules, start_ms=start)
    assert got.keys() == expected.keys()
    assert got.candles == expected.candles == 2 * 600
    # Daily changes need older daily bars: with history_days the database source reaches that far back.
    assert int(from_db["BTCUSDT"]["open_time"].iloc[0]) == start - 1439 * MINUTE_MS
    later = start + 600 * MINUTE_MS
    assert int(frames_from_database(start_ms=later)["BTCUSDT"]["open_time"].iloc[0]) == later - 1439 * MINUTE_MS
    longer = frames_from_database(start_ms=later, history_days=2)  # back to the first stored candle
    assert int(longer["BTCUSDT"]["open_time"].iloc[0]) == int(part["BTCUSDT"]["open_time"].iloc[0])


def test_a_block_trimmed_to_the_minutes_the_rules_read_gives_the_whole_blocks_alerts(frames):
    """The backtest copies only the newest minutes its rules read; with a rule reading a day beside it, the same
    rule gets its 1,440-minute block, and fires at the same minutes with the same values, to the last bit."""
    part = {s: frames[s].iloc[: 2 * 1440] for s in ("BTCUSDT", "LAYERUSDT", "XMRUSDT")}
    start = int(part["BTCUSDT"]["open_time"].iloc[1440])
    probe = rule_compile(
        rule_type="probe",
        conditions=["change_5m > 0.25", "vol_15m > vol_1h / 6", "min_n(close, 30) > 0"],
        parameters={},
        timeframe="15m",
    )
    daily = rule_compile(rule_type="daily", conditions=["change_1d > 1000"], parameters={})
    assert rules_block_minutes([probe]) == 60 and rules_block_minutes([probe, daily]) == 1440
    trimmed = backtest_run(frames=part, rules=[probe], start_ms=start).alerts
    whole = backtest_run(frames=part, rules=[probe, daily], start_ms=start).alerts
    whole = whole[whole["alert_type"] == "probe"].reset_index(drop=True)
    assert len(trimmed) > 20
    pd.testing.assert_frame_equal(trimmed, whole[trimmed.columns], check_exact=True)


def test_bundled_data_alerts_per_rule(frames, capsys):
    """Every built-in rule, enabled or not, over all bundled data; prints the per-rule counts and the throughput."""
    AlertRule.objects.update(enabled=True)
    rules = rules_load()
    assert len(rules) == AlertRule.objects.count() == 26
    result = backtest_run(frames=frames, rules=rules)
    counts = result.alerts["alert_type"].value_counts()
    assert result.candles == sum(len(f) for f in frames.values())
    assert counts.sum() == len(result.alerts) > 0
    with capsys.disabled():
        print(
            f"\nbacktest on bundled data: {result.candles:,} candles in {result.seconds:.2f} s "
            f"= {result.candles_per_second:,.0f} candles/s"
        )
        print({rule.rule_type: int(counts.get(rule.rule_type, 0)) for rule in rules})


# Loose rules over each feature of the language, so that each fires in a three-hour stretch of the bundled data.
FEATURE_RULES = [
    ("daily_up", ["change_3d > 0 and change_15m > 0.3"], {}),
    ("daily_week_down", ["change_7d < 0", "change_15m < -0.3"], {}),
    ("ahead_of_btc", ["change_15m - BTCUSDT.change_15m > 0.3", "symbol not in skipped"], {"skipped": ["ETHUSDT"]}),
    ("btc_has_a_candle", ["BTCUSDT.close > 0", "change_5m > 0.3 or change_5m < -0.3"], {}),
    ("after_a_pioneer", ["held_within(pioneer_bull, 120)", "change_5m < 0"], {}),
    ("no_pioneer_lately", ["not held_within(pioneer_bear, 60)", "not (change_15m > -0.4)", "change_5m < -0.2"], {}),
]


def feature_rules():
    stored = AlertRule.objects.all()
    resolver = rules_resolver({r.rule_type: {"conditions": r.conditions, "parameters": r.parameters} for r in stored})
    return [
        rule_compile(rule_type=name, conditions=conditions, parameters=parameters, held_rules=resolver)
        for name, conditions, parameters in FEATURE_RULES
    ]


@pytest.mark.django_db(transaction=True)
def test_live_path_with_every_rule_and_feature_yields_the_backtest_alerts(frames, redis_client):
    """Every built-in rule enabled plus rules over each language feature: daily changes (a week into the data),
    a reference symbol that lives in another shard and misses some minutes, symbol lists and held_within."""
    AlertRule.objects.update(enabled=True)
    symbols = sorted(frames)
    first_ms = int(frames[symbols[0]]["open_time"].iloc[0]) + 7 * 1440 * MINUTE_MS - 540 * MINUTE_MS
    last_ms = first_ms + 179 * MINUTE_MS
    data = with_gaps(frames, first_ms)
    btc_gaps = [first_ms + k * MINUTE_MS for k in (20, 21, 95)]
    btc = data["BTCUSDT"]
    data["BTCUSDT"] = btc[~btc["open_time"].isin(btc_gaps)].reset_index(drop=True)
    rules = [*rules_load(), *feature_rules()]
    assert len(rules) == len(AlertRule.objects.all()) + len(FEATURE_RULES)

    expected = backtest_run(frames=data, rules=rules, start_ms=first_ms, end_ms=last_ms)
    counts = expected.alerts["alert_type"].value_counts()
    for name, _, _ in FEATURE_RULES:
        assert counts.get(name, 0) >= 3, counts  # each feature has something to agree on
    btc_rules = expected.alerts[expected.alerts["alert_type"].isin(["ahead_of_btc", "btc_has_a_candle"])]
    assert not btc_rules["candle_open_time"].isin(btc_gaps).any()  # no BTCUSDT candle: no value
    assert "ETHUSDT" not in set(expected.alerts.loc[expected.alerts["alert_type"] == "ahead_of_btc", "symbol"])

    # BTCUSDT in a shard of its own: the other shards read it from the candle ring.
    shards = [[s for s in symbols if s != "BTCUSDT"][:7], ["BTCUSDT"], [s for s in symbols if s != "BTCUSDT"][7:]]
    replay_live(redis_client, data, rules, first_ms, last_ms, shards=shards)
    live = {
        (a.symbol, a.alert_type, int(a.triggered_at.timestamp() * 1000) - MINUTE_MS): a
        for a in AlertHistory.objects.all()
    }
    assert set(live) == expected.keys()
    # Every value the rules read (reference metrics and daily changes too) is the backtest's, to the last bit.
    for row in expected.alerts.to_dict("records"):
        alert = live[(row["symbol"], row["alert_type"], row["candle_open_time"])]
        rule = next(r for r in rules if r.rule_type == row["alert_type"])
        for label in rule.inputs:
            assert alert.metadata["metrics"][label] == row[label], (row["symbol"], row["alert_type"], label)
