"""Bars the ticks missed, written from the 1m block when a symbol's indicators stage resumes after a gap.

The bar store learns a bar from the ticks of its own minutes: the forming bar is rolled every minute, and the one
before it for REPAIR_MINUTES after it closes. When no indicators stage ran for longer than that (the workers were
down, or a shard skipped ahead after falling more than MAX_CATCH_UP_MINUTES behind), the bars that closed meanwhile
would never reach the store, and a day later, once they left the 1m block, the indicators would read holes there.
So every stage records, per symbol, the newest minute it rolled; the next stage that finds a symbol further behind
than REPAIR_MINUTES also writes the bars of the block that closed after that minute. Bars that began before the
block (a gap longer than the block, or a 1d bar) cannot be rebuilt from it: a collector restart re-seeds them from
the exchange's klines.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import redis as redis_lib
from prometheus_client import Counter

from apps.collector.bars_store import bars_roll
from apps.collector.candles import MINUTE_MS
from screener_project.kernel.redis_keys import bars_rolled_key
from screener_project.kernel.timeframes import BAR_INTERVALS, SCREENER_TIMEFRAMES

from .bars import REPAIR_MINUTES

logger = logging.getLogger(__name__)

BARS_REPAIRED = Counter(
    "screener_bars_repaired_total", "Bars written to the bar store from the 1m block after their ticks were missed"
)
# HSET each symbol's rolled minute unless a newer one is there: a queued older minute may run after a newer one.
_MARK_SCRIPT = """
for i = 1, #ARGV do
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  if not old or tonumber(old) < tonumber(KEYS[2]) then
    redis.call('HSET', KEYS[1], ARGV[i], KEYS[2])
  end
end
return 0
"""


def bars_rolled_get(client: redis_lib.Redis, symbols: Sequence[str]) -> np.ndarray:
    """The newest minute whose bars were rolled, per symbol; NaN for a symbol never rolled (e.g. just warmed up)."""
    if not symbols:
        return np.empty(0)
    return np.array([float(value) if value else np.nan for value in client.hmget(bars_rolled_key(), list(symbols))])


def bars_rolled_mark(client: redis_lib.Redis, symbols: Sequence[str], *, minute_ms: int) -> None:
    """Record that the bars of minute_ms were rolled for these symbols."""
    if symbols:
        client.eval(_MARK_SCRIPT, 2, bars_rolled_key(), minute_ms, *symbols)


def bars_missed_roll(
    client: redis_lib.Redis,
    *,
    symbols: Sequence[str],
    from_block: dict[str, tuple[np.ndarray, int]],
    minute_ms: int,
) -> int:
    """After the stage of minute_ms rolled its bars: write the bars the symbols missed since their previous stage,
    then record minute_ms as rolled. Returns the number of bars written."""
    behind, missed = bars_missed(from_block, previous_ms=bars_rolled_get(client, symbols), minute_ms=minute_ms)
    written = 0
    if missed:
        written = bars_roll(
            client, symbols=[s for s, late in zip(symbols, behind.tolist(), strict=True) if late], bars=missed
        )
        BARS_REPAIRED.inc(written)
        logger.warning(
            "%d bars of %d symbols written from the 1m block: their ticks were missed", written, int(behind.sum())
        )
    bars_rolled_mark(client, symbols, minute_ms=minute_ms)
    return written


def bars_missed(
    from_block: dict[str, tuple[np.ndarray, int]], *, previous_ms: np.ndarray, minute_ms: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The rows (a boolean mask over the block's symbols) that missed stages, and the bars of the block they missed.

    A row missed stages when its previous rolled minute is older than REPAIR_MINUTES before minute_ms; its missed
    bars are those whose last minute is after the oldest such previous minute (the forming bar excluded: it is rolled
    anyway). Rewriting a bar another row already had is harmless: the store keeps one bar per open time.
    """
    with np.errstate(invalid="ignore"):
        behind = minute_ms - previous_ms > REPAIR_MINUTES * MINUTE_MS
    if not behind.any():
        return behind, {}
    since = float(np.nanmin(previous_ms[behind]))
    out: dict[str, np.ndarray] = {}
    for timeframe, (bars, first_ms) in from_block.items():
        if timeframe not in BAR_INTERVALS or bars.shape[2] < 2:
            continue
        step = SCREENER_TIMEFRAMES[timeframe] * MINUTE_MS
        last_minutes = first_ms + step * np.arange(bars.shape[2] - 1) + step - MINUTE_MS
        missed = np.flatnonzero(last_minutes > since)
        if missed.size:
            out[timeframe] = bars[:, behind][:, :, missed[0] : bars.shape[2] - 1]
    return behind, out
