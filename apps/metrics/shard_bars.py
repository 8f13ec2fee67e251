"""A shard's bars and indicators at minute t, computed once per minute and shared by the two stages that need them.

Rules that name an indicator (`rsi_14_1h < 30`, see apps.alerts.conditions) need some of the indicators before the
alerts; the indicators stage (apps.metrics.services) needs all of them after the alerts. Both work on a ShardBars:
the bars of the shard's 1m block (always built, the bar store is rolled forward from them), the closes of the last
K bars of each timeframe loaded so far (bars from the block, older ones from the bar store) and the indicators
computed so far. Each stage asks only for the timeframes it lacks, so nothing is loaded or computed twice, and a
tick whose rules name no indicator does none of this before its alerts. (Rules that need an indicator for a few
symbols only build a small ShardBars of those symbols instead: apps.alerts.rule_inputs.LiveValues.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import redis as redis_lib
from django.conf import settings

from screener_project.kernel.timeframes import SCREENER_TIMEFRAMES

from .bars import bars_from_block, closes_shard
from .indicators import INDICATOR_NAMES, indicators_last

# The name a rule condition uses -> (indicator, timeframe): `rsi_14_1h` is RSI 14 on 1h bars at minute t.
INDICATOR_METRICS: dict[str, tuple[str, str]] = {
    f"{name}_{timeframe}": (name, timeframe) for timeframe in SCREENER_TIMEFRAMES for name in INDICATOR_NAMES
}


def indicators_by_timeframe(closes: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """`{tf: {indicator: (rows,)}}` from `{tf: (rows, K)}` closes, all timeframes in one indicators_last pass.

    Each row's values depend on its own closes only, so they do not depend on which timeframes or rows share the
    pass (the backtest batches rows differently from a live shard and gets the same numbers)."""
    if not closes:
        return {}
    timeframes = list(closes)
    rows = closes[timeframes[0]].shape[0]
    values = indicators_last(np.concatenate([closes[tf] for tf in timeframes]))
    return {
        tf: {name: values[name][i * rows : (i + 1) * rows] for name in INDICATOR_NAMES}
        for i, tf in enumerate(timeframes)
    }


def indicator_metrics(
    indicators: Mapping[str, Mapping[str, np.ndarray]], timeframes: Iterable[str]
) -> dict[str, np.ndarray]:
    """`{"<indicator>_<tf>": (rows,)}` for the given timeframes, the names rule conditions read."""
    return {f"{name}_{tf}": indicators[tf][name] for tf in timeframes for name in INDICATOR_NAMES}


@dataclass
class ShardBars:
    """Bars of a shard at minute t (`from_block`, as bars_from_block gives them), and what was derived so far:
    `closes[tf]` (symbols, K) and `indicators[tf][name]` (symbols,) of the timeframes asked for."""

    minute_ms: int
    symbols: list[str]
    from_block: dict[str, tuple[np.ndarray, int]]
    closes: dict[str, np.ndarray] = field(default_factory=dict)
    indicators: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def closes_load(self, client: redis_lib.Redis, timeframes: Iterable[str]) -> None:
        """Load the closes of the timeframes not loaded yet (one bar-store round trip when any needs history)."""
        missing = [tf for tf in timeframes if tf not in self.closes]
        if missing:
            subset = {tf: self.from_block[tf] for tf in missing}
            self.closes.update(closes_shard(client, self.symbols, from_block=subset, count=settings.INDICATOR_BARS))

    def indicators_compute(self, timeframes: Iterable[str]) -> None:
        """Compute the indicators of the timeframes not computed yet; their closes must be loaded."""
        missing = [tf for tf in timeframes if tf not in self.indicators]
        if missing:
            self.indicators.update(indicators_by_timeframe({tf: self.closes[tf] for tf in missing}))

    def metrics(self, client: redis_lib.Redis, timeframes: Sequence[str]) -> dict[str, np.ndarray]:
        """`{"<indicator>_<tf>": (symbols,)}` for these timeframes, loading and computing only what is missing."""
        self.closes_load(client, timeframes)
        self.indicators_compute(timeframes)
        return indicator_metrics(self.indicators, timeframes)

    def rows(self, keep: np.ndarray) -> ShardBars:
        """The same for the symbols where the boolean mask `keep` holds."""
        return ShardBars(
            minute_ms=self.minute_ms,
            symbols=[symbol for symbol, kept in zip(self.symbols, keep.tolist(), strict=True) if kept],
            from_block={tf: (bars[:, keep], first_ms) for tf, (bars, first_ms) in self.from_block.items()},
            closes={tf: closes[keep] for tf, closes in self.closes.items()},
            indicators={tf: {n: v[keep] for n, v in values.items()} for tf, values in self.indicators.items()},
        )


def shard_bars(*, minute_ms: int, symbols: Sequence[str], block: np.ndarray) -> ShardBars:
    """The bars of a shard's (fields, symbols, minutes) 1m block ending at minute t; nothing loaded yet."""
    return ShardBars(minute_ms, list(symbols), bars_from_block(block, end_minute_ms=minute_ms))
