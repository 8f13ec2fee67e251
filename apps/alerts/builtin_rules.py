"""The built-in rules (docs/rules.md) as data: conditions over named metrics, with named default parameters.

A condition is written in a small language (apps.alerts.conditions parses it without eval): comparisons of
arithmetic over names, joined by and / or / not. Names are rule parameters first, then metrics: the window metrics
`<metric>_<window>` of docs/windows-and-indicators.md (`change_1h`, `vol_8h`, ...), the daily changes (`change_14d`),
indicators (`rsi_14_15m`), the newest candle's fields (`open`, `high`, `low`, `close`, `volume`, `quote_volume`),
another symbol's metrics at the same minute (`BTCUSDT.change_1h`), and `min_n(series, n)` / `max_n(series, n)` over
the last n candles of a per-candle series (`body` = close - open, `quote_volume`, `range_pct` = (high - low) / close,
`high`, `low`, ...); `held_within(rule_type, n)` and `symbol not in [...]` are conditions of their own.

The first sixteen rows are the screener's original rules; the ten after them complete the web client's catalogue.
Every row starts enabled: which of them a user of the web client receives is that user's switch, starting from the
client's own defaults (apps.api.compat.rule_catalogue).
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
# A minute's volume against the day's average minute.
WHALE_VOLUME = "quote_volume >= volume_spike * vol_1d / 1440"
# The fast drop that surge_42, knife_catcher and capitulation_catcher start from (numbers from parameters).
FLUSH = [
    "change_5m < change_5m_max",
    "change_15m < change_15m_max",
    "3 * change_5m < change_15m",
    "2 * vol_5m > vol_15m",
]

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

BIG_BULL_60M = next(rule for rule in BUILTIN_RULES if rule["rule_type"] == "big_bull_60m")
BIG_BEAR_60M = next(rule for rule in BUILTIN_RULES if rule["rule_type"] == "big_bear_60m")

BUILTIN_RULES += [
    {
        "rule_type": "bottom_hunter_v2",
        "name": "Bottom Hunter V2",
        "category": "bull",
        "timeframe": "5m",
        "description": "A 5m bounce after a deeper 15m and 1h fall, on rising volume, with the 15m RSI oversold.",
        "parameters": {"change_1h_max": -1.5, "change_15m_max": -1.0, "change_5m_min": 0.7, "rsi_max": 35},
        "conditions": [
            "change_1h < change_1h_max",
            "change_15m < change_15m_max",
            "change_5m > change_5m_min",
            *HUNTER_VOLUME,
            "rsi_14_15m < rsi_max",
        ],
    },
    {
        "rule_type": "top_hunter_v2",
        "name": "Top Hunter V2",
        "category": "bear",
        "timeframe": "5m",
        "description": "A 5m rejection after a stronger 15m and 1h rise, on rising volume, the 15m RSI overbought.",
        "parameters": {"change_1h_min": 1.5, "change_15m_min": 1.0, "change_5m_max": -0.7, "rsi_min": 65},
        "conditions": [
            "change_1h > change_1h_min",
            "change_15m > change_15m_min",
            "change_5m < change_5m_max",
            *HUNTER_VOLUME,
            "rsi_14_15m > rsi_min",
        ],
    },
    {
        "rule_type": "big_bull_60m_v2",
        "name": "Big Bull 60m V2",
        "category": "bull",
        "timeframe": "1h",
        "description": "Big Bull 60m on a green day, outrunning BTCUSDT's hour.",
        "parameters": {**BIG_BULL_60M["parameters"], "lead_over_btc": 0.5},
        "conditions": [
            *BIG_BULL_60M["conditions"],
            "change_1d > 0",
            "change_1h - BTCUSDT.change_1h >= lead_over_btc",
        ],
    },
    {
        "rule_type": "big_bear_60m_v2",
        "name": "Big Bear 60m V2",
        "category": "bear",
        "timeframe": "1h",
        "description": "Big Bear 60m on a red day, falling faster than BTCUSDT's hour.",
        "parameters": {**BIG_BEAR_60M["parameters"], "lag_behind_btc": -0.5},
        "conditions": [
            *BIG_BEAR_60M["conditions"],
            "change_1d < 0",
            "change_1h - BTCUSDT.change_1h <= lag_behind_btc",
        ],
    },
    {
        "rule_type": "whale_detector",
        "name": "Whale Detector",
        "category": "neutral",
        "timeframe": "1m",
        "description": "One candle with a volume spike that barely moved the price: size absorbed.",
        "parameters": {"volume_spike": 5.0, "body_max_pct": 0.3},
        "conditions": [WHALE_VOLUME, "-body_max_pct < (close - open) / open * 100 < body_max_pct"],
    },
    {
        "rule_type": "whale_accumulation",
        "name": "Whale Accumulation",
        "category": "bull",
        "timeframe": "1m",
        "description": "A volume spike while the 15m move or momentum points up.",
        "parameters": {"volume_spike": 5.0},
        "conditions": [WHALE_VOLUME, "change_15m > 0 or rsi_14_15m > 50"],
    },
    {
        "rule_type": "whale_distribution",
        "name": "Whale Distribution",
        "category": "bear",
        "timeframe": "1m",
        "description": "A volume spike while the 15m move or momentum points down.",
        "parameters": {"volume_spike": 5.0},
        "conditions": [WHALE_VOLUME, "change_15m < 0 or rsi_14_15m < 50"],
    },
    {
        "rule_type": "surge_42",
        "name": "Surge 42",
        "category": "bull",
        "timeframe": "5m",
        "description": "A fast 5m flush within 12 hours of a Bottom Hunter signal, outside a mild two-week slide.",
        "parameters": {
            "change_5m_max": -1,
            "change_15m_max": -1,
            "held_minutes": 720,
            "excluded_symbols": ["XMRUSDT"],
        },
        "conditions": [
            *FLUSH,
            "held_within(bottom_hunter, held_minutes)",
            "not (-10 <= change_14d <= -5)",
            "symbol not in excluded_symbols",
        ],
    },
    {
        "rule_type": "knife_catcher",
        "name": "Knife Catcher",
        "category": "bull",
        "timeframe": "5m",
        "description": "A sharp 5m flush within 12 hours of a Bottom Hunter signal, in a falling hour or day.",
        "parameters": {"change_5m_max": -1.5, "change_15m_max": -2.5, "held_minutes": 720},
        "conditions": [
            *FLUSH,
            "held_within(bottom_hunter, held_minutes)",
            "change_1h < -5 or change_1d < -3",
        ],
    },
    {
        "rule_type": "capitulation_catcher",
        "name": "Capitulation Catcher",
        "category": "bull",
        "timeframe": "5m",
        "description": "A sharp 5m flush after a two-week collapse, with no Bottom Hunter signal in the last 12 hours.",
        "parameters": {"change_5m_max": -1.5, "change_15m_max": -2.5, "change_14d_max": -20, "held_minutes": 720},
        "conditions": [
            *FLUSH,
            "change_14d < change_14d_max",
            "not held_within(bottom_hunter, held_minutes)",
        ],
    },
]
