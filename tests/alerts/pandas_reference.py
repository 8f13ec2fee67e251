"""Independent pandas computations of what the rules read, from the definitions in docs/, not from the engine's code.

Everything works on one symbol's candles reindexed to a dense minute grid (a missing minute is a NaN row), with
pandas rolling windows, resampled daily bars and the `ta` library's RSI.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import ta

MINUTE_MS = 60_000
DAY_MS = 1440 * MINUTE_MS
WINDOWS = {"5m": 5, "15m": 15, "1h": 60, "4h": 240, "8h": 480, "1d": 1440}


def dense(frame: pd.DataFrame) -> pd.DataFrame:
    """The candles indexed by open time (ms) on every minute from the first to the last, NaN where missing."""
    indexed = frame.set_index("open_time")
    grid = np.arange(indexed.index.min(), indexed.index.max() + MINUTE_MS, MINUTE_MS)
    return indexed.reindex(grid)[["open", "high", "low", "close", "volume", "quote_volume"]]


def window_metrics(candles: pd.DataFrame) -> pd.DataFrame:
    """change_<w> and vol_<w> per minute: the last N candles, no value unless all N are present."""
    out = pd.DataFrame(index=candles.index)
    present = candles["close"].notna().astype(float)
    for window, n in WINDOWS.items():
        whole = present.rolling(n, min_periods=n).sum() == n
        first_open = candles["open"].shift(n - 1)
        out[f"change_{window}"] = ((candles["close"] - first_open) / first_open * 100).where(whole)
        out[f"vol_{window}"] = candles["quote_volume"].rolling(n, min_periods=n).sum().where(whole)
        out[f"high_{window}"] = candles["high"].rolling(n, min_periods=n).max().where(whole)
        out[f"low_{window}"] = candles["low"].rolling(n, min_periods=n).min().where(whole)
    for name in ("open", "high", "low", "close", "quote_volume"):
        out[name] = candles[name]
    return out


def daily_change(candles: pd.DataFrame, days: int) -> pd.Series:
    """(close - open of the 1d bar opened `days` days before the current one) / that open * 100."""
    day = candles.index // DAY_MS
    day_open = candles["open"].groupby(day).first()  # first candle with a value in each day
    back = pd.Series(day - days, index=candles.index).map(day_open)
    return (candles["close"] - back) / back * 100


def rsi_15m_at(candles: pd.DataFrame, minutes: list[int], *, bars: int = 200) -> pd.Series:
    """RSI 14 of the 15m bars at each minute t: the last `bars` bars, the newest being the forming one (closing at
    t's close), as `ta` computes it on the closes from the symbol's first bar on."""
    closes = candles["close"].dropna()
    bar = closes.index // (15 * MINUTE_MS)
    out = {}
    for minute in minutes:
        upto = closes[closes.index <= minute]
        series = upto.groupby(bar[: len(upto)]).last().iloc[-bars:]
        out[minute] = ta.momentum.RSIIndicator(series.reset_index(drop=True), window=14, fillna=False).rsi().iloc[-1]
    return pd.Series(out, dtype=float)


def held_within(holds: pd.Series, n: int) -> pd.Series:
    """True at t when `holds` was true at some minute s with t - n <= s < t."""
    return holds.astype(float).shift(1).rolling(n, min_periods=1).max().fillna(0).astype(bool)


def unknown_false(mask: pd.Series) -> pd.Series:
    return mask.fillna(False).astype(bool)


def compare(values: pd.Series, op: str, other: float | pd.Series) -> pd.Series:
    """A comparison in three-valued logic: pandas' nullable boolean, NA where either side is missing."""
    result = {"<": values < other, "<=": values <= other, ">": values > other, ">=": values >= other}[op]
    missing = values.isna()
    if isinstance(other, pd.Series):
        missing |= other.isna()
    return result.astype("boolean").mask(missing, pd.NA)


def fired_minutes(candles: pd.DataFrame, fires: pd.Series) -> set[int]:
    """Minutes with a candle where a rule fires (a minute without one is never evaluated)."""
    fires = unknown_false(fires) & candles["close"].notna()
    return set(fires.index[fires].tolist())
