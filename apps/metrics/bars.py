"""Clock-aligned bars (UTC boundaries, as on Binance charts) for a whole shard at once.

At minute t the bars of a timeframe are the last K opening on its grid, the newest being the forming bar: the 1m
candles from its open up to t. Bars that start inside the 1m block are aggregated from it, coarser from finer
(1m -> 5m -> 15m -> 1h -> 4h -> 8h -> 1d, each boundary being one of the finer grid), so the work shrinks at every
level; older bars come from the bar store. Arrays follow the candle block's layout: (len(FIELDS), symbols, bars),
oldest first, a bar no candle of which is known being NaN throughout.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import redis as redis_lib

from apps.collector.bars_store import bars_matrices
from apps.collector.candles import FIELD_INDEX, FIELDS, MINUTE_MS
from screener_project.kernel.compiled import compiled
from screener_project.kernel.timeframes import BAR_INTERVALS, SCREENER_TIMEFRAMES

_OPEN, _HIGH, _LOW, _CLOSE = (FIELD_INDEX[f] for f in ("open", "high", "low", "close"))
_TIME = FIELD_INDEX["open_time"]
# The summed fields are the last five columns of FIELDS, so a slice (a view) selects them.
_SUMS = slice(FIELD_INDEX["volume"], FIELD_INDEX["taker_buy_quote_volume"] + 1)
_SUMS_START, _SUMS_STOP = _SUMS.start, _SUMS.stop
assert FIELDS[_SUMS] == ("volume", "quote_volume", "trades", "taker_buy_volume", "taker_buy_quote_volume")


def _fold(groups: np.ndarray, op: np.ufunc) -> np.ndarray:
    """Reduce the last (short: 2 to 5) axis by chaining `op` over its slices, much faster than a strided reduce."""
    out = groups[..., 0].copy()
    for j in range(1, groups.shape[-1]):
        op(out, groups[..., j], out=out)
    return out


def _reduce(groups: np.ndarray) -> np.ndarray:
    """(F, n, bars, r) groups of finer bars -> (F, n, bars); a group with no finer bar at all is NaN."""
    f, n, count, _ = groups.shape
    out = np.empty((f, n, count))
    closes = groups[_CLOSE]
    if not np.isnan(closes).any():
        out[_OPEN] = groups[_OPEN, :, :, 0]
        out[_CLOSE] = closes[:, :, -1]
        out[_HIGH] = _fold(groups[_HIGH], np.maximum)
        out[_LOW] = _fold(groups[_LOW], np.minimum)
        out[_SUMS] = _fold(groups[_SUMS], np.add)
        return out
    valid = ~np.isnan(closes)
    first_valid = valid.argmax(axis=2)[:, :, None]
    last_valid = (valid.shape[2] - 1 - valid[:, :, ::-1].argmax(axis=2))[:, :, None]
    out[_OPEN] = np.take_along_axis(groups[_OPEN], first_valid, axis=2)[:, :, 0]
    out[_CLOSE] = np.take_along_axis(closes, last_valid, axis=2)[:, :, 0]
    out[_HIGH] = _fold(groups[_HIGH], np.fmax)
    out[_LOW] = _fold(groups[_LOW], np.fmin)
    out[_SUMS] = _fold(np.nan_to_num(groups[_SUMS], nan=0.0), np.add)
    out[:, ~valid.any(axis=2)] = np.nan
    return out


@compiled
def _reduce_groups(fine: np.ndarray, ratio: int, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """_reduce of every group of `ratio` consecutive fine bars (the last group may be shorter) in one pass.

    Same result as _reduce, operation for operation: open of the first and close of the last bar with a close,
    NaN-skipping max and min, sums left to right with missing bars as 0, a group without any close all NaN. The
    open_time row is left for the caller.
    """
    fields, n, m = fine.shape
    count = out.shape[2]
    for s in range(n):
        for g in range(count):
            base = g * ratio
            size = min(ratio, m - base)
            first, last = -1, -1
            for j in range(size):
                if not np.isnan(fine[_CLOSE, s, base + j]):
                    if first < 0:
                        first = j
                    last = j
            if first < 0:
                for f in range(fields):
                    out[f, s, g] = np.nan
                continue
            out[_OPEN, s, g] = fine[_OPEN, s, base + first]
            out[_CLOSE, s, g] = fine[_CLOSE, s, base + last]
            high, low = fine[_HIGH, s, base], fine[_LOW, s, base]
            for j in range(1, size):
                x = fine[_HIGH, s, base + j]
                if np.isnan(high) or x > high:  # np.fmax: a NaN side gives the other
                    high = x if not np.isnan(x) else high
                y = fine[_LOW, s, base + j]
                if np.isnan(low) or y < low:
                    low = y if not np.isnan(y) else low
            out[_HIGH, s, g], out[_LOW, s, g] = high, low
            for f in range(_SUMS_START, _SUMS_STOP):
                total = fine[f, s, base]
                total = 0.0 if np.isnan(total) else total
                for j in range(1, size):
                    x = fine[f, s, base + j]
                    total = total + (0.0 if np.isnan(x) else x)
                out[f, s, g] = total


def _aggregate(fine: np.ndarray, fine_first_ms: int, fine_minutes: int, minutes: int) -> tuple[np.ndarray, int]:
    """Bars of `minutes` from consecutive finer bars (the first opening at fine_first_ms), only those opening in.

    Returns (bars, open ms of the first bar). The newest bar may be partial (the forming bar).
    """
    step = minutes * MINUTE_MS
    ratio = minutes // fine_minutes
    first_ms = -(-fine_first_ms // step) * step  # first boundary at or after the first fine bar
    fine = fine[:, :, (first_ms - fine_first_ms) // (fine_minutes * MINUTE_MS) :]
    f, n, m = fine.shape
    full = m // ratio
    if fine_minutes == 1:  # the big level (a day of minutes): one compiled pass over the block
        out = np.empty((f, n, -(-m // ratio)))
        _reduce_groups(fine, ratio, out)
    else:
        # Views, not copies: splitting the minute axis into (bars, ratio) needs no data movement.
        parts = [_reduce(fine[:, :, : full * ratio].reshape(f, n, full, ratio))]
        if m % ratio:
            parts.append(_reduce(fine[:, :, full * ratio :][:, :, None, :]))
        out = np.concatenate(parts, axis=2) if len(parts) > 1 else parts[0]
    known = ~np.isnan(out[_CLOSE])
    out[_TIME] = np.where(known, first_ms + np.arange(out.shape[2]) * step, np.nan)
    return out, first_ms


def bars_from_block(block: np.ndarray, *, end_minute_ms: int) -> dict[str, tuple[np.ndarray, int]]:
    """Every bar of each timeframe that opens inside the 1m block: `{tf: (bars, open ms of the first)}`."""
    first_ms = end_minute_ms - (block.shape[2] - 1) * MINUTE_MS
    out: dict[str, tuple[np.ndarray, int]] = {}
    fine, fine_first, fine_minutes = block, first_ms, 1
    for timeframe, minutes in SCREENER_TIMEFRAMES.items():
        fine, fine_first = _aggregate(fine, fine_first, fine_minutes, minutes)
        fine_minutes = minutes
        out[timeframe] = (fine, fine_first)
    return out


def bars_shard(
    client: redis_lib.Redis,
    block: np.ndarray,
    symbols: Sequence[str],
    *,
    end_minute_ms: int,
    count: int,
    from_block: dict[str, tuple[np.ndarray, int]] | None = None,
) -> dict[str, np.ndarray]:
    """The last `count` bars of every timeframe at minute end_minute_ms: `{tf: (len(FIELDS), symbols, count)}`.

    Bars opening inside the block come from it, older ones from the bar store (one round trip for all timeframes).
    """
    from_block = from_block if from_block is not None else bars_from_block(block, end_minute_ms=end_minute_ms)
    needs: dict[str, int] = {}
    last_open: dict[str, int] = {}
    for timeframe, (bars, first_ms) in from_block.items():
        missing = count - bars.shape[2]
        if missing > 0 and timeframe in BAR_INTERVALS:
            needs[timeframe] = missing
            last_open[timeframe] = first_ms - SCREENER_TIMEFRAMES[timeframe] * MINUTE_MS
    history = bars_matrices(client, symbols, last_open_ms=last_open, count=needs) if needs else {}
    out: dict[str, np.ndarray] = {}
    for timeframe, (bars, _) in from_block.items():
        if timeframe in history:
            bars = np.concatenate([history[timeframe], bars], axis=2)
        elif bars.shape[2] < count:
            pad = np.full((len(FIELDS), len(symbols), count - bars.shape[2]), np.nan)
            bars = np.concatenate([pad, bars], axis=2)
        out[timeframe] = bars[:, :, -count:]
    return out


def closes_shard(
    client: redis_lib.Redis,
    symbols: Sequence[str],
    *,
    from_block: dict[str, tuple[np.ndarray, int]],
    count: int,
) -> dict[str, np.ndarray]:
    """The closes of the last `count` bars of every timeframe, `{tf: (symbols, count)}`: what bars_shard returns in
    its close row, without building the other fields of the stored history (the indicators need only closes)."""
    needs: dict[str, int] = {}
    last_open: dict[str, int] = {}
    for timeframe, (bars, first_ms) in from_block.items():
        missing = count - bars.shape[2]
        if missing > 0 and timeframe in BAR_INTERVALS:
            needs[timeframe] = missing
            last_open[timeframe] = first_ms - SCREENER_TIMEFRAMES[timeframe] * MINUTE_MS
    history = bars_matrices(client, symbols, last_open_ms=last_open, count=needs, close_only=True) if needs else {}
    out: dict[str, np.ndarray] = {}
    for timeframe, (bars, _) in from_block.items():
        closes = bars[_CLOSE]
        if timeframe in history:
            closes = np.concatenate([history[timeframe], closes], axis=1)
        elif closes.shape[1] < count:
            closes = np.concatenate([np.full((len(symbols), count - closes.shape[1]), np.nan), closes], axis=1)
        out[timeframe] = closes[:, -count:]
    return out


# For this many minutes after a bar closes, the ticks re-write it (it is still inside the block), which completes it
# in the store if the tick of its last minute was missed; later it is left alone.
REPAIR_MINUTES = 10


def bars_to_roll(from_block: dict[str, tuple[np.ndarray, int]], *, end_minute_ms: int) -> dict[str, np.ndarray]:
    """What the bar store should receive after the tick of minute end_minute_ms: the forming bar of each stored
    interval, and in the first REPAIR_MINUTES of a bar the one before it.

    The forming bar is written every minute, so a bar is complete in the store as soon as its last minute is
    processed.
    """
    out = {}
    for timeframe, (bars, first_ms) in from_block.items():
        if timeframe not in BAR_INTERVALS or bars.shape[2] == 0:
            continue
        forming_open = first_ms + (bars.shape[2] - 1) * SCREENER_TIMEFRAMES[timeframe] * MINUTE_MS
        recent = end_minute_ms - forming_open < REPAIR_MINUTES * MINUTE_MS
        out[timeframe] = bars[:, :, -2:] if recent else bars[:, :, -1:]
    return out
