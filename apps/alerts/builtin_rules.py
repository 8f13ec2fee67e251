"""The sixteen built-in rules (docs/rules.md) as data: conditions over named metrics, with named default parameters.

A condition is a comparison written in a tiny arithmetic language (apps.alerts.conditions parses it without
eval): names are rule parameters first, then metrics. Metrics are the window metrics `<metric>_<window>` of
docs/windows-and-indicators.md (`change_1h`, `vol_8h`, ...), the newest candle's fields (`open`, `high`, `low`, `close`,
`volume`, `quote_volume`), and `min_n(series, n)` / `max_n(series, n)` over the last n candles of a per-candle
series (`body` = close - open, `quote_volume`, `range_pct` = (high - low) / close, `high`, `low`, ...).
"""

from __future__ import annotations

BIG_60M_VOLUME = [
    "vol_1h > vol_1h_min",
    "vol_8h > vol_8h_min",
    "6 * vol_1h > vol_8h",
    "16 * vol_1h > vol_1d",
]
BIG_5M_VOLUME = [
    "vol_5m > vol_5m_min",
    "vol_1h > vol_1h_min",
    "vol_5m > vol_15m / 3",
    "vol_5m > vol_1h / 6",
    "vol_5m > vol_8h / 66",
]
BIG_15M_VOLUME = [
    "vol_15m > vol_15m_min",
    "vol_1h > vol_1h_min",
    "vol_15m > vol_1h / 3",
    "vol_15m > vol_8h / 26",
]
HUNTER_VOLUME = ["vol_5m > vol_15m / 2", "vol_5m > vol_1h / 8"]

BUILTIN_RULES: list[dict] = [
    {
        "rule_type": "big_bull_60m",
        "name": "Big Bull 60m",
        "category": "bull",
        "timeframe": "1h",
        "description": "Strong 1h rise inside a rising 8h and 1d trend, on heavy 1h volume.",
        "parameters": {"change_1h_min": 1.6, "change_1d_max": 15, "vol_1h_min": 500_000, "vol_8h_min": 5_000_000},
        "conditions": [
            "change_1h > change_1h_min",
            "change_1d < change_1d_max",
            "change_8h > change_1h",
            "change_1d > change_8h",
            *BIG_60M_VOLUME,
        ],
    },
    {
        "rule_type": "big_bear_60m",
        "name": "Big Bear 60m",
        "category": "bear",
        "timeframe": "1h",
        "description": "Strong 1h fall inside a falling 8h and 1d trend, on heavy 1h volume.",
        "parameters": {"change_1h_max": -1.6, "change_1d_min": -15, "vol_1h_min": 500_000, "vol_8h_min": 5_000_000},
        "conditions": [
            "change_1h < change_1h_max",
            "change_1d > change_1d_min",
            "change_8h < change_1h",
            "change_1d < change_8h",
            *BIG_60M_VOLUME,
        ],
    },
    {
        "rule_type": "pioneer_bull",
        "name": "Pioneer Bull",
        "category": "bull",
        "timeframe": "5m",
        "description": "An early 5m push that leads the 15m move, with 5m volume dominating.",
        "parameters": {"change_5m_min": 1, "change_15m_min": 1},
        "conditions": [
            "change_5m > change_5m_min",
            "change_15m > change_15m_min",
            "3 * change_5m > change_15m",
            "2 * vol_5m > vol_15m",
        ],
    },
    {
        "rule_type": "pioneer_bear",
        "name": "Pioneer Bear",
        "category": "bear",
        "timeframe": "5m",
        "description": "An early 5m drop that leads the 15m move, with 5m volume dominating.",
        "parameters": {"change_5m_max": -1, "change_15m_max": -1},
        "conditions": [
            "change_5m < change_5m_max",
            "change_15m < change_15m_max",
            "3 * change_5m < change_15m",
            "2 * vol_5m > vol_15m",
        ],
    },
    {
        "rule_type": "big_bull_5m",
        "name": "Big Bull 5m",
        "category": "bull",
        "timeframe": "5m",
        "description": "A sharp 5m rise on outsized 5m volume within a rising hour.",
        "parameters": {"change_5m_min": 0.6, "change_1d_max": 15, "vol_5m_min": 100_000, "vol_1h_min": 1_000_000},
        "conditions": [
            "change_5m > change_5m_min",
            "change_1d < change_1d_max",
            "change_15m > change_5m",
            "change_1h > change_15m",
            *BIG_5M_VOLUME,
        ],
    },
    {
        "rule_type": "big_bear_5m",
        "name": "Big Bear 5m",
        "category": "bear",
        "timeframe": "5m",
        "description": "A sharp 5m fall on outsized 5m volume within a falling hour.",
        "parameters": {"change_5m_max": -0.6, "change_1d_min": -15, "vol_5m_min": 100_000, "vol_1h_min": 1_000_000},
        "conditions": [
            "change_5m < change_5m_max",
            "change_1d > change_1d_min",
            "change_15m < change_5m",
            "change_1h < change_15m",
            *BIG_5M_VOLUME,
        ],
    },
    {
        "rule_type": "big_bull_15m",
        "name": "Big Bull 15m",
        "category": "bull",
        "timeframe": "15m",
        "description": "A strong 15m rise on heavy 15m volume within a rising 1h and 8h.",
        "parameters": {"change_15m_min": 1, "change_1d_max": 15, "vol_15m_min": 400_000, "vol_1h_min": 1_000_000},
        "conditions": [
            "change_15m > change_15m_min",
            "change_1d < change_1d_max",
            "change_1h > change_15m",
            "change_8h > change_1h",
            *BIG_15M_VOLUME,
        ],
    },
    {
        "rule_type": "big_bear_15m",
        "name": "Big Bear 15m",
        "category": "bear",
        "timeframe": "15m",
        "description": "A strong 15m fall on heavy 15m volume within a falling 1h and 8h.",
        "parameters": {"change_15m_max": -1, "change_1d_min": -15, "vol_15m_min": 400_000, "vol_1h_min": 1_000_000},
        "conditions": [
            "change_15m < change_15m_max",
            "change_1d > change_1d_min",
            "change_1h < change_15m",
            "change_8h < change_1h",
            *BIG_15M_VOLUME,
        ],
    },
    {
        "rule_type": "bottom_hunter",
        "name": "Bottom Hunter",
        "category": "bull",
        "timeframe": "5m",
        "description": "A 5m bounce after a falling 15m and 1h, on rising volume.",
        "parameters": {"change_1h_max": -0.7, "change_15m_max": -0.6, "change_5m_min": 0.5},
        "conditions": [
            "change_1h < change_1h_max",
            "change_15m < change_15m_max",
            "change_5m > change_5m_min",
            *HUNTER_VOLUME,
        ],
    },
    {
        "rule_type": "top_hunter",
        "name": "Top Hunter",
        "category": "bear",
        "timeframe": "5m",
        "description": "A 5m rejection after a rising 15m and 1h, on rising volume.",
        "parameters": {"change_1h_min": 0.7, "change_15m_min": 0.6, "change_5m_max": -0.5},
        "conditions": [
            "change_1h > change_1h_min",
            "change_15m > change_15m_min",
            "change_5m < change_5m_max",
            *HUNTER_VOLUME,
        ],
    },
    {
        "rule_type": "bull_whale",
        "name": "Bull Whale",
        "category": "bull",
        "timeframe": "1m",
        "description": "One green candle with a volume spike, closing near the 1h high.",
        "parameters": {"volume_spike": 3.0, "price_support": 0.02},
        "conditions": [
            "quote_volume >= volume_spike * vol_1d / 1440",
            "close > open",
            "close >= (1 - price_support) * high_1h",
        ],
    },
    {
        "rule_type": "bear_whale",
        "name": "Bear Whale",
        "category": "bear",
        "timeframe": "1m",
        "description": "One red candle with a volume spike, closing near the 1h low.",
        "parameters": {"volume_spike": 3.0, "price_support": 0.02},
        "conditions": [
            "quote_volume >= volume_spike * vol_1d / 1440",
            "close < open",
            "close <= (1 + price_support) * low_1h",
        ],
    },
    {
        "rule_type": "bull_volume",
        "name": "Bull Volume",
        "category": "bull",
        "timeframe": "1m",
        "description": "Consecutive green candles, each on heavy volume against the 1h average.",
        "parameters": {"volume_ratio": 2.5, "consecutive_candles": 3},
        "conditions": [
            "min_n(body, consecutive_candles) > 0",
            "min_n(quote_volume, consecutive_candles) >= volume_ratio * vol_1h / 60",
        ],
    },
    {
        "rule_type": "bear_volume",
        "name": "Bear Volume",
        "category": "bear",
        "timeframe": "1m",
        "description": "Consecutive red candles, each on heavy volume against the 1h average.",
        "parameters": {"volume_ratio": 2.5, "consecutive_candles": 3},
        "conditions": [
            "max_n(body, consecutive_candles) < 0",
            "min_n(quote_volume, consecutive_candles) >= volume_ratio * vol_1h / 60",
        ],
    },
    {
        "rule_type": "flat_1m",
        "name": "Flat 1m",
        "category": "neutral",
        "timeframe": "1m",
        "description": "Every recent 1m candle has a very narrow range.",
        "parameters": {"volatility_threshold": 0.001, "duration_minutes": 10},
        "conditions": ["max_n(range_pct, duration_minutes) <= volatility_threshold"],
    },
    {
        "rule_type": "flat_8h",
        "name": "Flat 8h",
        "category": "neutral",
        "timeframe": "8h",
        "description": "The price has stayed inside a narrow band for hours.",
        "parameters": {"range_pct": 0.02, "duration_hours": 8},
        "conditions": [
            "(max_n(high, duration_hours * 60) - min_n(low, duration_hours * 60)) / close <= range_pct",
        ],
    },
]
