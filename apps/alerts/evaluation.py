"""Evaluating minute t for a set of rows: block -> window metrics -> rule context -> rules_evaluate, in one place.

A row is one (symbol, minute t) window of a (fields, rows, LONGEST_WINDOW) block shaped like candles_matrix's
(missing minutes NaN, minute t last). Every evaluation of the rules goes through `rows_evaluate`: the live tick
(whole shards, or the symbols of a shard that closed t so far), the near-real-time pass (a block ending in the
forming candle), the backtest (a chunk of one symbol's minutes) and bench_tick. What differs between them is only
where the block comes from and the loader of deferred inputs (indicators, daily changes, reference symbols);
`minute_evaluate_live` is the live form: the block read from the candle ring and the live loader.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np
import redis as redis_lib

from apps.collector.store import candles_matrix
from apps.metrics.windows import LONGEST_WINDOW, window_metrics
from screener_project.kernel.stages import stage

from .engine import CompiledRule, RuleContext, ValuesLoad, rule_context, rules_evaluate, rules_load
from .rule_inputs import BlockLoad, LiveValues

Observe = Callable[[str, float], None]


@dataclass
class Evaluation:
    """What evaluating a block produced: the rules applied, the block and its window metrics, the rule context
    (rows' values, for the alerts' metadata) and fired, rule_type -> (rows,) bool."""

    rules: list[CompiledRule]
    block: np.ndarray
    metrics: dict[str, np.ndarray]
    context: RuleContext
    fired: dict[str, np.ndarray]


def rows_evaluate(
    rules: Sequence[CompiledRule] | None,
    *,
    block: np.ndarray,
    symbols: Sequence[str] | np.ndarray,
    loader: ValuesLoad | None,
    timings: dict[str, float] | None = None,
    observe: Observe | None = None,
    metric_names: Collection[str] | None = None,
) -> Evaluation:
    """Evaluate `rules` (None: the enabled rules, loaded here) on every row of `block` (row i is symbols[i] at its
    minute t); timed as "window_metrics" and "rules" in `timings` when given, each observed once. `metric_names`
    limits the window metrics to those (the backtest's rules_window_metric_names); the live tick computes them
    all, as the indicators stage stores them."""
    timings = {} if timings is None else timings
    with stage("window_metrics", timings, observe=observe):
        metrics = window_metrics(block, names=metric_names)
    with stage("rules", timings, observe=observe):
        rules = rules_load() if rules is None else list(rules)
        context = rule_context(candles=block, metrics=metrics, symbols=symbols, loader=loader)
        fired = rules_evaluate(rules, context)
    return Evaluation(rules=list(rules), block=block, metrics=metrics, context=context, fired=fired)


def minute_evaluate_live(
    client: redis_lib.Redis,
    *,
    minute_ms: int,
    symbols: Sequence[str],
    rules: Sequence[CompiledRule] | None = None,
    block: np.ndarray | None = None,
    block_load: BlockLoad | None = None,
    timings: dict[str, float] | None = None,
    observe: Observe | None = None,
) -> tuple[Evaluation, LiveValues]:
    """Evaluate minute t for `symbols` from Redis: their block from the candle ring (unless `block` is given),
    the enabled rules (unless `rules` are given), deferred inputs from the live loader (whose `block_load` reads
    other symbols' blocks, default the ring). Returns the evaluation and the loader (its `bars`, when indicators
    were computed for every row, serve the indicators stage). Timed as "load", "window_metrics", "rules"."""
    timings = {} if timings is None else timings
    symbols = list(symbols)
    if block is None:
        with stage("load", timings, observe=observe):
            block = candles_matrix(client, symbols, end_minute_ms=minute_ms, length=LONGEST_WINDOW)
    # Indicators, daily changes and reference symbols: loaded for the rows a rule reaches them with.
    values = LiveValues(client, minute_ms=minute_ms, symbols=symbols, block=block, block_load=block_load)
    evaluation = rows_evaluate(rules, block=block, symbols=symbols, loader=values, timings=timings, observe=observe)
    return evaluation, values
