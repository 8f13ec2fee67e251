"""The web client's catalogue rules (the ten built-in rows after the original sixteen) against pandas.

Each rule runs through the backtest (the live rule code) from its stored definition, with its own parameters or,
where the bundled data never fires it, looser ones (parameters are data); the expected alert minutes come from an
independent pandas reading of the rule's definition in docs/rules.md (tests/alerts/pandas_reference.py). Rules over
change_14d get two weeks of flat history in front of the bundled data, at a chosen price level, so the 14-day
change has a value and the chosen sign.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from apps.alerts.backtest import backtest_run, frames_from_files
from apps.alerts.builtin_rules import BUILTIN_RULES
from apps.alerts.engine import rule_compile, rules_resolver

from . import pandas_reference as ref
from .test_rule_language import bottom_hunter_holds

CATALOGUE = {rule["rule_type"]: rule for rule in BUILTIN_RULES[16:]}
RESOLVER = rules_resolver({rule["rule_type"]: rule for rule in BUILTIN_RULES})
DAY_MINUTES = 1440


@pytest.fixture(scope="module")
def frames(bundled_data_dir) -> dict[str, pd.DataFrame]:
    return frames_from_files([bundled_data_dir])


def with_flat_history(frame: pd.DataFrame, level: float, days: int = 16) -> pd.DataFrame:
    """`days` of flat candles at `level` x the first open before the frame, one unit of volume a minute."""
    first = int(frame["open_time"].iloc[0])
    times = first - np.arange(days * DAY_MINUTES, 0, -1) * ref.MINUTE_MS
    price = float(frame["open"].iloc[0]) * level
    flat = pd.DataFrame({"open_time": times})
    for name in ("open", "high", "low", "close"):
        flat[name] = price
    flat["volume"] = 1.0
    flat["quote_volume"] = price
    flat["trades"] = 1.0
    flat["taker_buy_volume"] = 0.5
    flat["taker_buy_quote_volume"] = price / 2
    flat["quote_volume_estimated"] = False
    return pd.concat([flat, frame[flat.columns]], ignore_index=True)


def catalogue_rule(rule_type: str, **overrides):
    rule = CATALOGUE[rule_type]
    return rule_compile(
        rule_type=rule_type,
        conditions=rule["conditions"],
        parameters={**rule["parameters"], **overrides},
        held_rules=RESOLVER,
    )


class Reading:
    """What the pandas definitions read for one symbol: window metrics, RSI 14 on 15m bars at given minutes,
    BTCUSDT's window metrics at the same minutes, the 14-day change and the held bottom_hunter."""

    def __init__(self, frame: pd.DataFrame, btc: pd.DataFrame | None = None) -> None:
        self.candles = ref.dense(frame)
        self.m = ref.window_metrics(self.candles)
        self.btc = None if btc is None else ref.window_metrics(ref.dense(btc)).reindex(self.candles.index)

    def rsi(self, where: pd.Series) -> pd.Series:
        """RSI 14 of the 15m bars, computed at the minutes where `where` holds (NaN elsewhere: not read there)."""
        minutes = where.index[ref.unknown_false(where)].tolist()
        return ref.rsi_15m_at(self.candles, minutes).reindex(self.candles.index)


def c(values, op, other):
    return ref.compare(values, op, other)


def hunter_v2(r: Reading, p: dict, bull: bool) -> pd.Series:
    m = r.m
    if bull:
        base = c(m["change_1h"], "<", p["change_1h_max"]) & c(m["change_15m"], "<", p["change_15m_max"])
        base &= c(m["change_5m"], ">", p["change_5m_min"])
    else:
        base = c(m["change_1h"], ">", p["change_1h_min"]) & c(m["change_15m"], ">", p["change_15m_min"])
        base &= c(m["change_5m"], "<", p["change_5m_max"])
    base &= c(m["vol_5m"], ">", m["vol_15m"] / 2) & c(m["vol_5m"], ">", m["vol_1h"] / 8)
    rsi = r.rsi(base)
    return base & (c(rsi, "<", p["rsi_max"]) if bull else c(rsi, ">", p["rsi_min"]))


def big_60m_v2(r: Reading, p: dict, bull: bool) -> pd.Series:
    m = r.m
    volume = (
        c(m["vol_1h"], ">", p["vol_1h_min"])
        & c(m["vol_8h"], ">", p["vol_8h_min"])
        & c(6 * m["vol_1h"], ">", m["vol_8h"])
        & c(16 * m["vol_1h"], ">", m["vol_1d"])
    )
    relative = m["change_1h"] - r.btc["change_1h"]
    if bull:
        trend = c(m["change_1h"], ">", p["change_1h_min"]) & c(m["change_1d"], "<", p["change_1d_max"])
        trend &= c(m["change_8h"], ">", m["change_1h"]) & c(m["change_1d"], ">", m["change_8h"])
        return trend & volume & c(m["change_1d"], ">", 0) & c(relative, ">=", p["lead_over_btc"])
    trend = c(m["change_1h"], "<", p["change_1h_max"]) & c(m["change_1d"], ">", p["change_1d_min"])
    trend &= c(m["change_8h"], "<", m["change_1h"]) & c(m["change_1d"], "<", m["change_8h"])
    return trend & volume & c(m["change_1d"], "<", 0) & c(relative, "<=", p["lag_behind_btc"])


def whale(r: Reading, p: dict, kind: str) -> pd.Series:
    m = r.m
    spike = c(m["quote_volume"], ">=", p["volume_spike"] * m["vol_1d"] / 1440)
    if kind == "detector":
        body = (m["close"] - m["open"]) / m["open"] * 100
        return spike & c(body, ">", -p["body_max_pct"]) & c(body, "<", p["body_max_pct"])
    rsi = r.rsi(spike)
    if kind == "accumulation":
        return spike & (c(m["change_15m"], ">", 0) | c(rsi, ">", 50))
    return spike & (c(m["change_15m"], "<", 0) | c(rsi, "<", 50))


def flush(r: Reading, p: dict) -> pd.Series:
    m = r.m
    return (
        c(m["change_5m"], "<", p["change_5m_max"])
        & c(m["change_15m"], "<", p["change_15m_max"])
        & c(3 * m["change_5m"], "<", m["change_15m"])
        & c(2 * m["vol_5m"], ">", m["vol_15m"])
    )


def held_bottom_hunter(r: Reading, p: dict) -> pd.Series:
    return ref.held_within(bottom_hunter_holds(r.candles), int(p["held_minutes"])).astype("boolean")


def surge_42(r: Reading, p: dict, symbol: str) -> pd.Series:
    change_14d = ref.daily_change(r.candles, 14)
    mild_slide = c(change_14d, ">=", -10) & c(change_14d, "<=", -5)
    listed = symbol in p["excluded_symbols"]
    return flush(r, p) & held_bottom_hunter(r, p) & ~mild_slide & (not listed)


def knife_catcher(r: Reading, p: dict) -> pd.Series:
    m = r.m
    return flush(r, p) & held_bottom_hunter(r, p) & (c(m["change_1h"], "<", -5) | c(m["change_1d"], "<", -3))


def capitulation_catcher(r: Reading, p: dict) -> pd.Series:
    return flush(r, p) & c(ref.daily_change(r.candles, 14), "<", p["change_14d_max"]) & ~held_bottom_hunter(r, p)


# rule_type -> (parameter overrides, symbols, flat history level by symbol or None, pandas definition)
CASES: dict[str, tuple[dict, list[str], dict[str, float] | None, Callable]] = {
    "bottom_hunter_v2": (
        {"change_1h_max": -0.7, "change_15m_max": -0.6, "change_5m_min": 0.5, "rsi_max": 45},
        ["ENAUSDT", "LAYERUSDT", "SUIUSDT", "AVAXUSDT", "SOLUSDT", "LINKUSDT"],
        None,
        lambda r, p, s: hunter_v2(r, p, True),
    ),
    "top_hunter_v2": (
        {"change_1h_min": 0.4, "change_15m_min": 0.3, "change_5m_max": -0.2, "rsi_min": 50},
        ["ENAUSDT", "LAYERUSDT", "SUIUSDT", "AVAXUSDT"],
        None,
        lambda r, p, s: hunter_v2(r, p, False),
    ),
    "big_bull_60m_v2": (
        {},
        ["ENAUSDT", "LAYERUSDT", "SUIUSDT", "BTCUSDT"],
        None,
        lambda r, p, s: big_60m_v2(r, p, True),
    ),
    "big_bear_60m_v2": (
        {},
        ["ENAUSDT", "LAYERUSDT", "SUIUSDT", "BTCUSDT"],
        None,
        lambda r, p, s: big_60m_v2(r, p, False),
    ),
    "whale_detector": ({}, ["LAYERUSDT", "XMRUSDT"], None, lambda r, p, s: whale(r, p, "detector")),
    "whale_accumulation": ({}, ["LAYERUSDT", "XMRUSDT"], None, lambda r, p, s: whale(r, p, "accumulation")),
    "whale_distribution": ({}, ["LAYERUSDT", "XMRUSDT"], None, lambda r, p, s: whale(r, p, "distribution")),
    "surge_42": (
        # ENAUSDT fires 43 times when not listed.
        {"change_5m_max": -0.4, "change_15m_max": -0.5, "excluded_symbols": ["ENAUSDT"]},
        ["ENAUSDT", "LAYERUSDT", "SUIUSDT", "AVAXUSDT"],
        {"ENAUSDT": 1.0, "LAYERUSDT": 1.08, "SUIUSDT": 1.0, "AVAXUSDT": 1.0},
        surge_42,
    ),
    "knife_catcher": (
        {"change_5m_max": -0.5, "change_15m_max": -0.8},
        ["ENAUSDT", "LAYERUSDT", "SUIUSDT", "AVAXUSDT", "SOLUSDT"],
        None,
        lambda r, p, s: knife_catcher(r, p),
    ),
    "capitulation_catcher": (
        {"change_5m_max": -0.5, "change_15m_max": -0.6},
        ["ENAUSDT", "LAYERUSDT", "SUIUSDT", "AVAXUSDT"],
        {"ENAUSDT": 1.4, "LAYERUSDT": 1.4, "SUIUSDT": 1.0, "AVAXUSDT": 1.4},
        lambda r, p, s: capitulation_catcher(r, p),
    ),
}


def test_the_catalogue_is_complete():
    # Every catalogue rule fires for the screener; which ones a web client user receives is that user's switch.
    assert set(CASES) == set(CATALOGUE)
    assert all(rule.get("enabled", True) for rule in CATALOGUE.values())


@pytest.mark.parametrize("rule_type", list(CASES))
def test_catalogue_rule_fires_where_pandas_says(frames, rule_type):
    overrides, symbols, levels, definition = CASES[rule_type]
    data = {symbol: frames[symbol] for symbol in symbols}
    start_ms = min(int(frame["open_time"].iloc[0]) for frame in data.values())
    if levels:
        data = {symbol: with_flat_history(frame, levels[symbol]) for symbol, frame in data.items()}
    rule = catalogue_rule(rule_type, **overrides)
    parameters = {**CATALOGUE[rule_type]["parameters"], **overrides}
    result = backtest_run(frames=data, rules=[rule], start_ms=start_ms, cooldown_minutes=0)
    got = {s: set(part["candle_open_time"].astype(int)) for s, part in result.alerts.groupby("symbol")}
    btc = frames["BTCUSDT"]
    total = 0
    for symbol, frame in data.items():
        reading = Reading(frame, btc)
        expected = {
            t for t in ref.fired_minutes(reading.candles, definition(reading, parameters, symbol)) if t >= start_ms
        }
        assert got.get(symbol, set()) == expected, (symbol, len(got.get(symbol, ())), len(expected))
        total += len(expected)
    assert total >= 2, f"{rule_type} fired {total} times: the comparison proves little"
