"""The backtest on the bundled real data: same alert set as the live path, CSV and summary, data sources."""

from __future__ import annotations

import csv
import gzip
import io

import numpy as np
import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from apps.alerts.backtest import _cooldown_keep, backtest_run, frames_from_database, frames_from_files
from apps.alerts.engine import rule_context, rules_evaluate, rules_load
from apps.alerts.models import AlertHistory
from apps.alerts.services import alerts_fire
from apps.collector.candles import FIELDS, MINUTE_MS, Candle
from apps.collector.models import Candle1m
from apps.collector.store import active_symbols_set, candles_matrix, candles_store
from apps.metrics.windows import LONGEST_WINDOW, window_metrics

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
    rules = rules_load()

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
        context = rule_context(candles=block, metrics=window_metrics(block))
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


def test_bundled_data_alerts_per_rule(frames, capsys):
    """Every rule over all bundled data; prints the per-rule counts and the throughput."""
    rules = rules_load()
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
