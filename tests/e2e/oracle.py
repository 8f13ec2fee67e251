"""An independent, per-symbol pandas reading of docs/ (windows, indicators, rules): which alerts a data set yields.

Written straight from those definitions with pandas rolling windows, pandas bars and the `ta` library, sharing no
code with the engine.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import ta

WINDOWS = {"5m": 5, "15m": 15, "1h": 60, "8h": 480, "1d": 1440}


def window_frame(candles: pd.DataFrame) -> pd.DataFrame:
    """Per-minute window metrics of one symbol's candles (sorted, gap-free)."""
    out = pd.DataFrame(index=candles.index)
    for name, n in WINDOWS.items():
        opened = candles["open"].shift(n - 1)
        out[f"change_{name}"] = (candles["close"] - opened) / opened * 100
        out[f"vol_{name}"] = candles["quote_volume"].rolling(n).sum()
        out[f"high_{name}"] = candles["high"].rolling(n).max()
        out[f"low_{name}"] = candles["low"].rolling(n).min()
    return out


def rule_masks(c: pd.DataFrame, w: pd.DataFrame) -> dict[str, pd.Series]:
    ch = {k: w[f"change_{k}"] for k in WINDOWS}
    vol = {k: w[f"vol_{k}"] for k in WINDOWS}
    big60_vol = (
        (vol["1h"] > 500_000) & (vol["8h"] > 5_000_000) & (6 * vol["1h"] > vol["8h"]) & (16 * vol["1h"] > vol["1d"])
    )
    big5_vol = (
        (vol["5m"] > 100_000)
        & (vol["1h"] > 1_000_000)
        & (vol["5m"] > vol["15m"] / 3)
        & (vol["5m"] > vol["1h"] / 6)
        & (vol["5m"] > vol["8h"] / 66)
    )
    big15_vol = (
        (vol["15m"] > 400_000) & (vol["1h"] > 1_000_000) & (vol["15m"] > vol["1h"] / 3) & (vol["15m"] > vol["8h"] / 26)
    )
    hunter_vol = (vol["5m"] > vol["15m"] / 2) & (vol["5m"] > vol["1h"] / 8)
    body = c["close"] - c["open"]
    q = c["quote_volume"]
    avg_1m_1d = vol["1d"] / 1440
    # "Heavy" is judged against the 1h average at minute t, for each of the last 3 candles.
    min_q3 = q.rolling(3).min()
    up3 = (body.rolling(3).min() > 0) & (min_q3 >= 2.5 * vol["1h"] / 60)
    down3 = (body.rolling(3).max() < 0) & (min_q3 >= 2.5 * vol["1h"] / 60)
    range_pct = (c["high"] - c["low"]) / c["close"]
    return {
        "big_bull_60m": (ch["1h"] > 1.6) & (ch["1d"] < 15) & (ch["8h"] > ch["1h"]) & (ch["1d"] > ch["8h"]) & big60_vol,
        "big_bear_60m": (ch["1h"] < -1.6)
        & (ch["1d"] > -15)
        & (ch["8h"] < ch["1h"])
        & (ch["1d"] < ch["8h"])
        & big60_vol,
        "pioneer_bull": (ch["5m"] > 1) & (ch["15m"] > 1) & (3 * ch["5m"] > ch["15m"]) & (2 * vol["5m"] > vol["15m"]),
        "pioneer_bear": (ch["5m"] < -1) & (ch["15m"] < -1) & (3 * ch["5m"] < ch["15m"]) & (2 * vol["5m"] > vol["15m"]),
        "big_bull_5m": (ch["5m"] > 0.6) & (ch["1d"] < 15) & (ch["15m"] > ch["5m"]) & (ch["1h"] > ch["15m"]) & big5_vol,
        "big_bear_5m": (ch["5m"] < -0.6)
        & (ch["1d"] > -15)
        & (ch["15m"] < ch["5m"])
        & (ch["1h"] < ch["15m"])
        & big5_vol,
        "big_bull_15m": (ch["15m"] > 1) & (ch["1d"] < 15) & (ch["1h"] > ch["15m"]) & (ch["8h"] > ch["1h"]) & big15_vol,
        "big_bear_15m": (ch["15m"] < -1)
        & (ch["1d"] > -15)
        & (ch["1h"] < ch["15m"])
        & (ch["8h"] < ch["1h"])
        & big15_vol,
        "bottom_hunter": (ch["1h"] < -0.7) & (ch["15m"] < -0.6) & (ch["5m"] > 0.5) & hunter_vol,
        "top_hunter": (ch["1h"] > 0.7) & (ch["15m"] > 0.6) & (ch["5m"] < -0.5) & hunter_vol,
        "bull_whale": (q >= 3.0 * avg_1m_1d) & (c["close"] > c["open"]) & (c["close"] >= 0.98 * w["high_1h"]),
        "bear_whale": (q >= 3.0 * avg_1m_1d) & (c["close"] < c["open"]) & (c["close"] <= 1.02 * w["low_1h"]),
        "bull_volume": up3,
        "bear_volume": down3,
        "flat_1m": range_pct.rolling(10).max() <= 0.001,
        "flat_8h": (w["high_8h"] - w["low_8h"]) / c["close"] <= 0.02,
    }


def predicted_alerts(
    frames: dict[str, pd.DataFrame], *, first_minute_ms: int, last_minute_ms: int, cooldown_minutes: int = 5
) -> set[tuple[str, str, int]]:
    """(symbol, rule_type, minute open ms) of every alert fired in [first, last], cooldown applied from first."""
    alerts: set[tuple[str, str, int]] = set()
    for symbol, candles in frames.items():
        candles = candles.reset_index(drop=True)
        masks = rule_masks(candles, window_frame(candles))
        times = candles["open_time"].to_numpy()
        in_range = (times >= first_minute_ms) & (times <= last_minute_ms)
        for rule_type, mask in masks.items():
            fired_minutes = times[in_range & mask.fillna(False).to_numpy(dtype=bool)]
            last_fired = None
            for minute in fired_minutes:
                if last_fired is not None and minute - last_fired < cooldown_minutes * 60_000:
                    continue
                alerts.add((symbol, rule_type, int(minute)))
                last_fired = minute
    return alerts


# Custom rules naming indicators (docs/rules.md), as stored, and the same conditions read directly below.
INDICATOR_RULES: dict[str, list[str]] = {
    "hot_momentum": ["rsi_14_5m > 78", "macd_hist_15m > 0"],
    "band_breakout": ["close > bb_upper_15m", "rsi_14_1h > 70"],
}
BAR_MINUTES = {"5m": 5, "15m": 15, "1h": 60}


def bar_closes(candles: pd.DataFrame, minute_ms: int, minutes: int, count: int) -> np.ndarray:
    """Closes of the last `count` clock-aligned bars at minute t, the newest being the forming bar of the candles so
    far: each bar's close is its newest candle's, NaN where a bar has no candle or lies before the data."""
    so_far = candles[candles["open_time"] <= minute_ms]
    step = minutes * 60_000
    last_close = so_far.groupby(so_far["open_time"] // step * step)["close"].last()
    opens = minute_ms // step * step - step * np.arange(count)[::-1]
    return last_close.reindex(opens).to_numpy(dtype=float)


def ta_at(closes: np.ndarray) -> dict[str, float]:
    """ta 0.11 on the closes from the first known bar, at the newest bar."""
    series = pd.Series(closes[int(np.argmax(~np.isnan(closes))) :])
    return {
        "rsi_14": ta.momentum.RSIIndicator(series).rsi().iloc[-1],
        "macd_hist": ta.trend.MACD(series).macd_diff().iloc[-1],
        "bb_upper": ta.volatility.BollingerBands(series).bollinger_hband().iloc[-1],
    }


def predicted_indicator_alerts(
    frames: dict[str, pd.DataFrame],
    *,
    first_minute_ms: int,
    last_minute_ms: int,
    count: int,
    cooldown_minutes: int = 5,
) -> dict[tuple[str, str, int], dict[str, float]]:
    """(symbol, rule_type, minute open ms) -> the indicator values read, for every INDICATOR_RULES alert in range."""
    alerts: dict[tuple[str, str, int], dict[str, float]] = {}
    for symbol, candles in frames.items():
        last_fired: dict[str, int] = {}
        minutes = candles["open_time"][candles["open_time"].between(first_minute_ms, last_minute_ms)]
        for minute in minutes.astype(int):
            at = {tf: ta_at(bar_closes(candles, minute, n, count)) for tf, n in BAR_MINUTES.items()}
            close = float(candles.loc[candles["open_time"] == minute, "close"].iloc[0])
            holds = {
                "hot_momentum": at["5m"]["rsi_14"] > 78 and at["15m"]["macd_hist"] > 0,
                "band_breakout": close > at["15m"]["bb_upper"] and at["1h"]["rsi_14"] > 70,
            }
            values = {
                "hot_momentum": {"rsi_14_5m": at["5m"]["rsi_14"], "macd_hist_15m": at["15m"]["macd_hist"]},
                "band_breakout": {"bb_upper_15m": at["15m"]["bb_upper"], "rsi_14_1h": at["1h"]["rsi_14"]},
            }
            for rule_type, fires in holds.items():
                previous = last_fired.get(rule_type)
                if fires and (previous is None or minute - previous >= cooldown_minutes * 60_000):
                    alerts[(symbol, rule_type, minute)] = values[rule_type]
                    last_fired[rule_type] = minute
    return alerts


def alert_counts(alerts: set[tuple[str, str, int]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, rule_type, _ in alerts:
        counts[rule_type] = counts.get(rule_type, 0) + 1
    return dict(sorted(counts.items()))
