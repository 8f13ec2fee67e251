"""The rule language's logic and new names, each against an independent pandas computation (pandas_reference.py).

and / or / not against pandas' nullable booleans (Kleene logic), symbol lists against isin, daily changes against
resampled daily bars, reference symbols against the other symbol's rolling windows aligned by minute, held_within
against a rolling maximum of the named rule's own pandas evaluation, at the boundary minutes t - n and t - 1.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import pytest

from apps.alerts.backtest import backtest_run, frames_from_files
from apps.alerts.builtin_rules import BUILTIN_RULES
from apps.alerts.conditions import ConditionError, condition_compile, parameters_validate
from apps.alerts.engine import (
    RuleContext,
    RuleError,
    rule_compile,
    rules_block_minutes,
    rules_resolver,
    rules_window_metric_names,
)
from apps.alerts.rule_inputs import LiveValues
from apps.collector.candles import FIELDS, MINUTE_MS
from apps.collector.store import candles_matrix, candles_store
from apps.metrics.daily import DAY_MS
from apps.metrics.windows import LONGEST_WINDOW
from screener_project.kernel.timeframes import BAR_INTERVALS
from tests.metrics.test_bars import seed_history

from . import pandas_reference as ref
from .test_backtest import frame_candles

RESOLVER = rules_resolver({rule["rule_type"]: rule for rule in BUILTIN_RULES})


@pytest.fixture(scope="module")
def frames(bundled_data_dir) -> dict[str, pd.DataFrame]:
    return frames_from_files([bundled_data_dir])


def compile_rule(conditions: list[str], parameters: dict | None = None, rule_type: str = "probe"):
    return rule_compile(rule_type=rule_type, conditions=conditions, parameters=parameters or {}, held_rules=RESOLVER)


def fired(result, rule_type: str = "probe") -> dict[str, set[int]]:
    alerts = result.alerts[result.alerts["alert_type"] == rule_type]
    return {symbol: set(part["candle_open_time"].astype(int)) for symbol, part in alerts.groupby("symbol")}


# --- and / or / not ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def logic_context():
    rng = np.random.default_rng(7)
    rows = 400
    values = {}
    for name in ("change_5m", "change_15m", "change_1h"):
        column = rng.normal(0, 1, rows)
        column[rng.random(rows) < 0.3] = np.nan  # a third missing
        values[name] = column
    candles = np.full((len(FIELDS), rows, 1), 1.0)
    symbols = np.array([f"S{i % 7}USDT" for i in range(rows)], dtype=object)
    return RuleContext(candles=candles, metrics=values, symbols=symbols), pd.DataFrame(values)


# (condition text, the same in pandas nullable booleans over a, b, c = change_5m, change_15m, change_1h)
LOGIC_CASES = [
    ("change_5m > 0", lambda a, b, c: ref.compare(a, ">", 0)),
    ("not change_5m > 0", lambda a, b, c: ~ref.compare(a, ">", 0)),
    ("not (change_5m > 0)", lambda a, b, c: ~ref.compare(a, ">", 0)),
    ("change_5m > 0 or change_15m > 0", lambda a, b, c: ref.compare(a, ">", 0) | ref.compare(b, ">", 0)),
    ("change_5m > 0 and change_15m < 0", lambda a, b, c: ref.compare(a, ">", 0) & ref.compare(b, "<", 0)),
    (
        "not (change_5m > 0 or change_15m > 0)",
        lambda a, b, c: ~(ref.compare(a, ">", 0) | ref.compare(b, ">", 0)),
    ),
    (
        "not (change_5m > 0 and change_15m > 0)",
        lambda a, b, c: ~(ref.compare(a, ">", 0) & ref.compare(b, ">", 0)),
    ),
    (
        "(change_5m > 0 or change_15m > 0.5) and not change_1h < -0.5",
        lambda a, b, c: (ref.compare(a, ">", 0) | ref.compare(b, ">", 0.5)) & ~ref.compare(c, "<", -0.5),
    ),
    ("not (-0.5 <= change_1h <= 0.5)", lambda a, b, c: ~(ref.compare(c, ">=", -0.5) & ref.compare(c, "<=", 0.5))),
    (
        "change_5m > 0 or not (change_15m > 0 and change_1h > 0)",
        lambda a, b, c: ref.compare(a, ">", 0) | ~(ref.compare(b, ">", 0) & ref.compare(c, ">", 0)),
    ),
    ("not not change_5m < change_15m", lambda a, b, c: ref.compare(a, "<", b)),
]


@pytest.mark.parametrize(("text", "expected"), LOGIC_CASES, ids=[case[0] for case in LOGIC_CASES])
def test_logic_is_three_valued_like_pandas_nullable_booleans(logic_context, text, expected):
    context, frame = logic_context
    want = ref.unknown_false(expected(frame["change_5m"], frame["change_15m"], frame["change_1h"]))
    got = condition_compile(text).evaluate(context)
    assert got.tolist() == want.tolist()
    assert 0 < want.sum() < len(want)  # the case separates rows


def test_a_missing_value_never_fires_negated_or_not(logic_context):
    context, frame = logic_context
    missing = frame["change_5m"].isna().to_numpy()
    for text in ("change_5m > 0", "not change_5m > 0", "not (change_5m > 0)", "not not change_5m > 0"):
        assert not condition_compile(text).evaluate(context)[missing].any(), text


def test_symbol_lists_literal_and_parameter(logic_context):
    context, _ = logic_context
    symbols = pd.Series(context.symbols)
    inside = condition_compile('symbol in ["S1USDT", "S3USDT"]').evaluate(context)
    assert inside.tolist() == symbols.isin(["S1USDT", "S3USDT"]).tolist()
    outside = condition_compile("symbol not in skipped", parameters={"skipped": ("S2USDT",)}).evaluate(context)
    assert outside.tolist() == (~symbols.isin(["S2USDT"])).tolist()
    both = condition_compile('change_5m > 0 and symbol not in ["S0USDT"]').evaluate(context)
    expected = ref.unknown_false(ref.compare(pd.Series(context.metrics["change_5m"]), ">", 0)) & ~symbols.isin(
        ["S0USDT"]
    )
    assert both.tolist() == expected.tolist()


def test_existing_rules_of_plain_condition_lists_are_unchanged(frames):
    """A list of conditions still means all of them: the same alerts as one condition joined with `and`."""
    part = {s: frames[s] for s in ("BTCUSDT", "SOLUSDT")}
    listed = compile_rule(["change_5m > 0.2", "vol_5m > vol_15m / 2"], rule_type="listed")
    joined = compile_rule(["change_5m > 0.2 and vol_5m > vol_15m / 2"], rule_type="joined")
    result = backtest_run(frames=part, rules=[listed, joined], cooldown_minutes=0)
    assert fired(result, "listed") == fired(result, "joined") != {}


# --- compile errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("held_within(nope, 10)", "nope"),
        ("held_within(bottom_hunter, 2000)", "2000"),
        ("held_within(bottom_hunter)", "held_within"),
        ("held_within(big_bull_5m, 10)", "big_bull_5m"),  # reads change_1d: nothing left to look back over
        ("held_within(surge_42, 10)", "surge_42"),  # uses held_within itself
        ("held_within(whale_accumulation, 10)", "whale_accumulation"),  # reads an indicator
        ("BTCUSDT.rsi_14_1h > 50", "BTCUSDT.rsi_14_1h"),
        ("btcusdt.change_1h > 0", "btcusdt.change_1h"),
        ('symbol in ["btc"]', '"btc"'),
        ("symbol in [1]", "1"),
        ("change_1h in [1]", "change_1h"),
        ("symbol > 1", "symbol"),
        ("change_1h > 0 or", "or"),
        ("change_14d > 1" + "0" * 400, "1" + "0" * 19),
        ("change_1h > 0 and 1" + "0" * 400 + " > 1", "1" + "0" * 19),
        ("change_1h > 1e308 * 10", "1e308 * 10"),
    ],
)
def test_bad_conditions_are_refused_naming_the_token(text, token):
    with pytest.raises(ConditionError) as raised:
        condition_compile(text, held_rules=RESOLVER)
    assert token in raised.value.token or raised.value.token in token, raised.value.token
    assert raised.value.token in str(raised.value)


def test_huge_integer_parameters_are_a_validation_error_not_an_overflow():
    with pytest.raises(ConditionError) as raised:
        parameters_validate({"limit": 10**400})
    assert raised.value.token == "limit"
    with pytest.raises(RuleError) as raised:
        rule_compile(rule_type="r", conditions=["change_1h > limit"], parameters={"limit": 10**400})
    assert raised.value.field == "parameters" and raised.value.token == "limit"
    for bad in ([1, 2], ["btcusdt"], ["BTCUSDT", None]):
        with pytest.raises(ConditionError):
            parameters_validate({"skipped": bad})
    with pytest.raises(ConditionError) as raised:
        condition_compile("change_1h > skipped", parameters={"skipped": ("BTCUSDT",)})
    assert raised.value.token == "skipped"


@pytest.mark.django_db
def test_the_admin_refuses_a_bad_rule_naming_the_token(admin_client):
    from apps.alerts.models import AlertRule

    form = {
        "rule_type": "my_rule",
        "name": "Mine",
        "description": "",
        "category": "bull",
        "timeframe": "5m",
        "enabled": "on",
        "cooldown_minutes": 5,
        "parameters": '{"n": 30}',
    }
    for conditions, token in [
        ("held_within(no_such_rule, n)", "no_such_rule"),
        ("change_1h > 0 or BTCUSDT.rsi_14_1h > 1", "BTCUSDT.rsi_14_1h"),
        ("not change_1h >> 1", ">>"),
        ("change_1h > 1" + "0" * 400, "1000"),
    ]:
        response = admin_client.post("/admin/alerts/alertrule/add/", {**form, "conditions": conditions})
        assert response.status_code == 200
        assert token in html.unescape(response.content.decode()), conditions
    assert not AlertRule.objects.filter(rule_type="my_rule").exists()
    good = 'held_within(bottom_hunter, n) and (change_5m < -1 or change_7d < -5)\nsymbol not in ["XMRUSDT"]'
    response = admin_client.post("/admin/alerts/alertrule/add/", {**form, "conditions": good})
    assert response.status_code == 302
    assert AlertRule.objects.get(rule_type="my_rule").conditions == good.split("\n")


# --- daily changes -----------------------------------------------------------------------------------------------


def test_daily_changes_match_pandas_daily_bars(frames):
    part = {s: frames[s] for s in ("BTCUSDT", "LAYERUSDT", "XMRUSDT")}
    rule = compile_rule(["change_3d > -1000", "change_7d > -1000"])
    result = backtest_run(frames=part, rules=[rule], cooldown_minutes=0)
    for symbol, frame in part.items():
        candles = ref.dense(frame)
        want = {days: ref.daily_change(candles, days) for days in (3, 7)}
        expected = ref.fired_minutes(candles, want[3].notna() & want[7].notna())
        assert fired(result).get(symbol, set()) == expected and expected, symbol
        got = result.alerts[result.alerts["symbol"] == symbol].set_index("candle_open_time")
        for days in (3, 7):
            np.testing.assert_allclose(got[f"change_{days}d"], want[days].loc[got.index], rtol=1e-12)


def test_a_symbol_without_enough_daily_bars_gets_no_value(frames):
    """The bundled data spans 8 days: no symbol has the bar of 14 or 30 days ago, so nothing fires on them."""
    part = {s: frames[s] for s in ("BTCUSDT", "ETHUSDT")}
    for text in ("change_14d > -1000", "change_30d < 1000", "not change_14d > 0", "not (-10 <= change_14d <= -5)"):
        result = backtest_run(frames=part, rules=[compile_rule([text])], cooldown_minutes=0)
        assert result.alerts.empty, text


def test_live_daily_changes_read_the_seeded_daily_bars(frames, redis_client):
    """Live, the older daily bars come from the bar store the warm-up seeds; a symbol not seeded has no value."""
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    minute = int(frames["BTCUSDT"]["open_time"].iloc[-1]) - 300 * MINUTE_MS
    history = [
        c
        for s in symbols
        for c in frame_candles(
            s, frames[s][frames[s]["open_time"].between(minute - (LONGEST_WINDOW - 1) * MINUTE_MS, minute)]
        )
    ]
    candles_store(redis_client, history, mark_closed=False)
    seed_history(redis_client, {s: frames[s] for s in symbols[:2]}, minute // DAY_MS * DAY_MS - MINUTE_MS)
    block = candles_matrix(redis_client, symbols, end_minute_ms=minute, length=LONGEST_WINDOW)
    rules = [compile_rule(["change_3d > 0", "change_7d > 0", "change_14d > 0"])]
    load = LiveValues(redis_client, minute_ms=minute, symbols=symbols, block=block)
    got = load(None, tuple(rules[0].daily))
    for i, symbol in enumerate(symbols):
        candles = ref.dense(frames[symbol])
        for days in (3, 7, 14):
            want = ref.daily_change(candles, days).loc[minute] if i < 2 else np.nan
            assert got[f"change_{days}d"][i] == pytest.approx(want, rel=1e-12, nan_ok=True), (symbol, days)
    assert np.isfinite(got["change_7d"][:2]).all() and np.isnan(got["change_14d"]).all()


# --- reference symbols -------------------------------------------------------------------------------------------


def test_reference_symbol_metrics_match_pandas_at_the_same_minute(frames):
    part = {s: frames[s] for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "ENAUSDT")}
    btc = part["BTCUSDT"]
    gaps = btc["open_time"].iloc[[3000, 3001, 3002, 6000]].tolist()  # minutes where BTCUSDT has no candle
    part["BTCUSDT"] = btc[~btc["open_time"].isin(gaps)].reset_index(drop=True)
    rule = compile_rule(["change_1h - BTCUSDT.change_1h >= 0.5", "BTCUSDT.close > 0"])
    result = backtest_run(frames=part, rules=[rule], cooldown_minutes=0)
    btc_metrics = ref.window_metrics(ref.dense(part["BTCUSDT"]))
    for symbol, frame in part.items():
        candles = ref.dense(frame)
        mine = ref.window_metrics(candles)
        theirs = btc_metrics.reindex(candles.index)
        fires = ref.compare(mine["change_1h"] - theirs["change_1h"], ">=", 0.5) & ref.compare(theirs["close"], ">", 0)
        expected = ref.fired_minutes(candles, fires)
        assert fired(result).get(symbol, set()) == expected, symbol
        assert not expected & set(gaps)
    assert sum(len(v) for v in fired(result).values()) > 20


# --- held_within -------------------------------------------------------------------------------------------------


def bottom_hunter_holds(candles: pd.DataFrame) -> pd.Series:
    m = ref.window_metrics(candles)
    return ref.unknown_false(
        ref.compare(m["change_1h"], "<", -0.7)
        & ref.compare(m["change_15m"], "<", -0.6)
        & ref.compare(m["change_5m"], ">", 0.5)
        & ref.compare(m["vol_5m"], ">", m["vol_15m"] / 2)
        & ref.compare(m["vol_5m"], ">", m["vol_1h"] / 8)
    )


@pytest.mark.parametrize("n", [1, 30, 720])
def test_held_within_matches_a_rolling_window_of_the_named_rule(frames, n):
    # Three days of the two symbols where bottom_hunter holds early (days 0 and 2): every case, at a bearable cost.
    part = {s: frames[s].iloc[: 3 * 1440] for s in ("ENAUSDT", "LAYERUSDT")}
    rule = compile_rule([f"held_within(bottom_hunter, {n})"])
    negated = compile_rule([f"not held_within(bottom_hunter, {n})"], rule_type="negated")
    result = backtest_run(frames=part, rules=[rule, negated], cooldown_minutes=0)
    total = 0
    for symbol, frame in part.items():
        candles = ref.dense(frame)
        held = ref.held_within(bottom_hunter_holds(candles), n)
        assert fired(result).get(symbol, set()) == ref.fired_minutes(candles, held), symbol
        assert fired(result, "negated").get(symbol, set()) == ref.fired_minutes(candles, ~held), symbol
        total += int(held.sum())
    assert total > 0


def test_a_rules_block_minutes_cover_its_windows_runs_held_spans_and_timeframe():
    def minutes(conditions: list[str], timeframe: str = "1m") -> int:
        rule = rule_compile(
            rule_type="probe", conditions=conditions, parameters={}, timeframe=timeframe, held_rules=RESOLVER
        )
        return rules_block_minutes([rule])

    assert minutes(["close > 0"]) == 1
    assert minutes(["change_15m > 0"]) == 15
    assert minutes(["min_n(close, 120) > 0", "change_5m > 0"]) == 120
    assert minutes(["held_within(bottom_hunter, 30)"]) == 30 + 60  # bottom_hunter reads change_1h
    assert minutes(["change_5m > 0"], timeframe="4h") == 240  # the alert's change is the timeframe's

    # The window metrics read: the rule's own (not the reference symbol's, loaded apart), and its timeframe's.
    rule = compile_rule(["change_5m > 0", "BTCUSDT.change_1h > 0", "close > 0"])
    assert rules_window_metric_names([rule]) == {"change_5m"}
    four_hours = rule_compile(rule_type="probe", conditions=["vol_15m > 0"], parameters={}, timeframe="4h")
    assert rules_window_metric_names([rule, four_hours]) == {"change_5m", "vol_15m", "vol_4h", "change_4h"}


def test_held_within_at_the_boundary_minutes(frames):
    """Held at minute s: true at t = s + 1 (s = t - 1) and t = s + n (s = t - n), false at t = s and t = s + n + 1."""
    n = 45
    symbol, s = None, None
    for name in sorted(frames):
        holds = bottom_hunter_holds(ref.dense(frames[name]))
        minutes = holds.index[holds].to_numpy()
        for m in minutes:
            if not ((minutes > m - (n + 2) * MINUTE_MS) & (minutes < m + (n + 2) * MINUTE_MS) & (minutes != m)).any():
                symbol, s = name, int(m)
                break
        if symbol:
            break
    assert symbol is not None, "no isolated bottom_hunter minute in the bundled data"
    rule = compile_rule([f"held_within(bottom_hunter, {n})"])
    result = backtest_run(
        frames={symbol: frames[symbol]},
        rules=[rule],
        start_ms=s - 2 * MINUTE_MS,
        end_ms=s + (n + 2) * MINUTE_MS,
        cooldown_minutes=0,
    )
    got = fired(result).get(symbol, set())
    assert s + MINUTE_MS in got and s + n * MINUTE_MS in got
    assert s not in got and s + (n + 1) * MINUTE_MS not in got and s - MINUTE_MS not in got
    assert got == {s + k * MINUTE_MS for k in range(1, n + 1)}


def test_the_warm_up_seeds_enough_daily_bars_for_the_longest_change(settings):
    """The collector seeds INDICATOR_BARS bars of every interval, 1d included, into a ring of that many slots:
    change_30d needs the current bar and the 30 before it."""
    from apps.metrics.daily import DAILY_METRICS

    assert "1d" in BAR_INTERVALS
    assert settings.INDICATOR_BARS >= max(DAILY_METRICS.values()) + 1
