"""The timeframe tables, one per meaning; every table maps a Binance interval name to its length in minutes."""

from __future__ import annotations

# Binance's kline intervals up to a day: what the exchange simulator serves and the compatibility surface builds from
# stored 1m candles (bars aligned on the epoch, as Binance aligns them).
KLINE_INTERVAL_MINUTES: dict[str, int] = {
    "1m": 1,
    "3m": 3,
    "5m": 5,
    "15m": 15,
    "30m": 30,
    "1h": 60,
    "2h": 120,
    "4h": 240,
    "6h": 360,
    "8h": 480,
    "12h": 720,
    "1d": 1440,
}

# The screener's timeframes: the windows of the window metrics, the indicators' bar intervals, the rows of
# metrics_calculated and the entries of a metrics snapshot, in this order.
SCREENER_TIMEFRAMES: dict[str, int] = {"5m": 5, "15m": 15, "1h": 60, "4h": 240, "8h": 480, "1d": 1440}

# The sections of the bar store, in this order (5m bars are built from the 1m ring instead).
BAR_INTERVALS: dict[str, int] = {"15m": 15, "1h": 60, "4h": 240, "8h": 480, "1d": 1440}

# What a rule's `timeframe` may name: the closed minute, or one of the screener's timeframes.
RULE_TIMEFRAMES: tuple[str, ...] = ("1m", *SCREENER_TIMEFRAMES)

# The candle intervals of GET /api/candles and the dashboard's charts.
CANDLE_INTERVALS: tuple[str, ...] = ("1m", *SCREENER_TIMEFRAMES)
