"""The condition language: what it accepts, how it evaluates, and errors that name the bad token."""

from __future__ import annotations

import numpy as np
import pytest

from apps.alerts.builtin_rules import BUILTIN_RULES
from apps.alerts.conditions import ConditionError, condition_compile, parameters_validate
from apps.alerts.engine import rule_compile, rule_context, rules_resolver
from apps.metrics.windows import window_metrics

from .factories import Segment, block_of, candles_from_segments


@pytest.fixture(scope="module")
def context():
    # Row 0: 15 candles up 0.1 % each at volume 1000; row 1: the same down.
    up = candles_from_segments([Segment(15, 1.5, 1000)])
    down = candles_from_segments([Segment(15, -1.5, 1000)])
    block = block_of([up, down])
    return rule_context(candles=block, metrics=window_metrics(block))


@pytest.mark.parametrize("rule", BUILTIN_RULES, ids=lambda r: r["rule_type"])
def test_every_builtin_rule_compiles(rule):
    resolver = rules_resolver({r["rule_type"]: r for r in BUILTIN_RULES})
    compiled = rule_compile(
        rule_type=rule["rule_type"], conditions=rule["conditions"], parameters=rule["parameters"], held_rules=resolver
    )
    assert len(compiled.conditions) == len(rule["conditions"])
    assert compiled.inputs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("change_5m > 0", [True, False]),
        ("-change_5m > 0", [False, True]),
        ("change_15m * 2 - 1 > (change_5m + 1) / 2", [True, False]),
        ("0 < vol_15m <= 15000", [True, True]),
        ("0 < vol_15m < 15000", [False, False]),
        ("min_n(body, 15) > 0", [True, False]),
        ("max_n(body, 16) < 0", [False, False]),  # 16 candles needed, 15 present: no value
        ("max_n(quote_volume, k) >= 1000", [True, True]),
        ("close > open", [True, False]),
        ("quote_volume >= 1000", [True, True]),
        ("max_n(range_pct, 3) < 0.002", [True, True]),
    ],
)
def test_conditions_evaluate_over_rows(context, text, expected):
    condition = condition_compile(text, parameters={"k": 3})
    assert condition.evaluate(context).tolist() == expected


def test_parameters_are_substituted_and_inputs_recorded():
    condition = condition_compile("min_n(quote_volume, n) >= ratio * vol_1h / 60", parameters={"n": 3, "ratio": 2.5})
    assert condition.inputs == ("min_n(quote_volume,3)", "vol_1h")
    assert condition.lookback == 3


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("chnage_1h > 1", "chnage_1h"),
        ("change_1h ** 2 > 1", "**"),
        ("change_1h % 2 > 1", "%"),
        ("change_1h != 1", "!="),
        ("__import__('os').system('true') > 1", "__import__('os').system"),
        ("open.__class__ > 1", "open.__class__"),
        ("min_n(foo, 3) > 1", "foo"),
        ("min_n(body, 2.5) > 1", "2.5"),
        ("min_n(body, vol_1h) > 1", "vol_1h"),
        ("min_n(body) > 1", "min_n"),
        ("change_1h > 'a'", "'a'"),
        ("change_1h > True", "True"),
        ("change_1h > 1/0", "1/0"),
        ("1 > 0", "1 > 0"),
    ],
)
def test_errors_name_the_bad_token(text, token):
    with pytest.raises(ConditionError) as raised:
        condition_compile(text, parameters={})
    assert raised.value.token == token
    assert token in str(raised.value)


def test_no_code_is_ever_executed(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(ConditionError):
        condition_compile(f"__import__('pathlib').Path('{marker}').touch() > 0", parameters={})
    assert not marker.exists()


def test_parameters_validate_names_the_key():
    assert parameters_validate({"a": 1, "b": 2.5}) == {"a": 1.0, "b": 2.5}
    for bad, token in [({"a": "x"}, "a"), ({"a": float("nan")}, "a"), ({"1a": 1}, "1a"), ({"close": 1}, "close")]:
        with pytest.raises(ConditionError) as raised:
            parameters_validate(bad)
        assert raised.value.token == token


def test_division_by_a_zero_metric_never_fires(context):
    condition = condition_compile("change_5m / (vol_5m - vol_5m) > 0", parameters={})
    assert condition.evaluate(context).tolist() == [False, False]
    condition = condition_compile("change_5m / (vol_5m - vol_5m) < 0", parameters={})
    assert condition.evaluate(context).tolist() == [False, False]


INDICATORS = ("rsi_14", "macd", "macd_signal", "macd_hist", "bb_upper", "bb_middle", "bb_lower")
INDICATOR_TIMEFRAMES = ("5m", "15m", "1h", "4h", "8h", "1d")


@pytest.mark.parametrize("timeframe", INDICATOR_TIMEFRAMES)
@pytest.mark.parametrize("indicator", INDICATORS)
def test_every_indicator_of_every_timeframe_is_a_name(indicator, timeframe):
    name = f"{indicator}_{timeframe}"
    condition = condition_compile(f"{name} > close * 0.5", parameters={})
    assert condition.inputs == (name, "close")
    assert condition.indicator_timeframes == (timeframe,)
    rule = rule_compile(rule_type="x", conditions=[f"{name} > 0", "change_1h > 0"], parameters={})
    assert rule.indicator_timeframes == (timeframe,)


def test_a_rule_knows_every_indicator_timeframe_it_needs_in_order():
    rule = rule_compile(
        rule_type="x",
        conditions=["rsi_14_1d < 30", "macd_hist_5m > macd_hist_1h", "change_15m > 0", "bb_lower_1h < close"],
        parameters={},
    )
    assert rule.indicator_timeframes == ("5m", "1h", "1d")
    assert rule.inputs == ("rsi_14_1d", "macd_hist_5m", "macd_hist_1h", "change_15m", "bb_lower_1h", "close")
    plain = rule_compile(rule_type="y", conditions=["change_15m > 0", "min_n(body, 3) > 0"], parameters={})
    assert plain.indicator_timeframes == ()


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("rsi_14_2h < 30", "rsi_14_2h"),
        ("rsi_15_1h < 30", "rsi_15_1h"),
        ("change_1h > 0 < macd_1w", "macd_1w"),
        ("bb_upper < close", "bb_upper"),
        ("rsi_14 < 30", "rsi_14"),
        ("max_n(rsi_14_1h, 3) > 1", "rsi_14_1h"),  # an indicator is one value per row, not a candle series
    ],
)
def test_a_misspelt_indicator_is_refused_naming_it(text, token):
    with pytest.raises(ConditionError) as raised:
        condition_compile(text, parameters={})
    assert raised.value.token == token
    assert token in str(raised.value)


def test_a_parameter_may_not_hide_an_indicator():
    with pytest.raises(ConditionError) as raised:
        parameters_validate({"rsi_14_1h": 30})
    assert raised.value.token == "rsi_14_1h"


def test_indicator_conditions_read_the_context_and_never_fire_without_a_value():
    up = candles_from_segments([Segment(15, 1.5, 1000)])
    block = block_of([up, up, up])
    block[:, 2, -1] = float("nan")  # no candle at minute t: no indicator value, as the backtest has no such row
    indicators = {"rsi_14_1h": np.array([25.0, 35.0, 25.0]), "macd_hist_5m": np.array([0.1, -0.1, 0.1])}
    context = rule_context(candles=block, metrics=window_metrics(block), indicators=indicators)
    assert condition_compile("rsi_14_1h < 30", parameters={}).evaluate(context).tolist() == [True, False, False]
    assert condition_compile("macd_hist_5m > 0", parameters={}).evaluate(context).tolist() == [True, False, False]
    without = rule_context(candles=block, metrics=window_metrics(block))
    assert condition_compile("rsi_14_1h < 30", parameters={}).evaluate(without).tolist() == [False] * 3
    assert condition_compile("rsi_14_1h > 30", parameters={}).evaluate(without).tolist() == [False] * 3
