"""Synthetic candle sequences for rule tests: segments of steady moves at a steady quote volume."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from apps.collector.candles import FIELD_INDEX, FIELDS, MINUTE_MS
from apps.metrics.windows import LONGEST_WINDOW

START_MS = 1_700_000_040_000 // MINUTE_MS * MINUTE_MS


@dataclass(frozen=True)
class Segment:
    minutes: int
    change_pct: float  # over the whole segment, compounded evenly per candle
    quote_volume: float  # per candle
    wick: float = 0.0  # high/low beyond the body, as a fraction of the price


def candles_from_segments(segments: list[Segment], *, start_price: float = 100.0) -> np.ndarray:
    """An (fields, minutes) array: each candle opens at the previous close."""
    rows = []
    price = start_price
    for segment in segments:
        step = (1 + segment.change_pct / 100) ** (1 / segment.minutes)
        levels = price * step ** np.arange(segment.minutes + 1)
        # The segment's last close lands exactly on its target, so its move is exactly change_pct.
        levels[-1] = price * (1 + segment.change_pct / 100)
        rows += [(levels[i], levels[i + 1], segment) for i in range(segment.minutes)]
        price = levels[-1]
    out = np.zeros((len(FIELDS), len(rows)))
    for m, (open_, close, segment) in enumerate(rows):
        high = max(open_, close) * (1 + segment.wick)
        low = min(open_, close) * (1 - segment.wick)
        values = {
            "open_time": START_MS + m * MINUTE_MS,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": segment.quote_volume / close,
            "quote_volume": segment.quote_volume,
            "trades": 10,
            "taker_buy_volume": 0.0,
            "taker_buy_quote_volume": 0.0,
        }
        for name, value in values.items():
            out[FIELD_INDEX[name], m] = value
    return out


def block_of(sequences: list[np.ndarray], *, length: int = LONGEST_WINDOW) -> np.ndarray:
    """Stack sequences as rows of a (fields, rows, length) block, right-aligned so each ends at minute t.

    Minutes before a sequence starts are NaN, as the store returns minutes it never received. Every sequence
    is re-timed so its last candle opens at the same minute t.
    """
    block = np.full((len(FIELDS), len(sequences), length), np.nan)
    end_ms = START_MS + (length - 1) * MINUTE_MS
    for row, sequence in enumerate(sequences):
        n = sequence.shape[1]
        part = sequence.copy()
        part[FIELD_INDEX["open_time"]] = end_ms - (n - 1 - np.arange(n)) * MINUTE_MS
        block[:, row, length - n :] = part
    return block
