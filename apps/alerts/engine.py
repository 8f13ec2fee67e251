"""Vectorized rule evaluation: every enabled rule over every row of a candle block at once.

A row is a symbol of a shard in the live tick, or a (symbol, minute) window in the backtest; both feed the same
(fields, rows, minutes) block shape, minute t last, so both run exactly this code.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from prometheus_client import Counter

from apps.collector.candles import FIELD_INDEX, MINUTE_MS
from apps.metrics.windows import WINDOWS

from .conditions import (
    Condition,
    ConditionError,
    condition_compile,
    indicator_timeframes_ordered,
    parameters_validate,
)
from .models import AlertRule

logger = logging.getLogger(__name__)

TIMEFRAMES = ("1m", *WINDOWS)

RULES_INVALID = Counter("screener_alert_rules_invalid_total", "Enabled rules skipped because they do not compile")


@dataclass(frozen=True, slots=True)
class CompiledRule:
    rule_type: str
    name: str
    category: str
    timeframe: str
    cooldown_minutes: int
    parameters: Mapping[str, float]
    conditions: tuple[Condition, ...]
    # Metric names and min_n/max_n labels the conditions read, in order: the alert's metadata carries them.
    inputs: tuple[str, ...]
    # Longest run of 1m candles a condition reads directly (window metrics aside).
    lookback: int
    # Timeframes of the indicators the conditions name: the evaluation must supply those (empty: none).
    indicator_timeframes: tuple[str, ...] = ()


class RuleError(ValueError):
    """A rule row that cannot be compiled; `field` is the model field at fault, `token` the bad part."""

    def __init__(self, message: str, *, field: str, token: str = "") -> None:
        super().__init__(message)
        self.field = field
        self.token = token


def rule_compile(
    *,
    rule_type: str,
    conditions: object,
    parameters: object,
    timeframe: str = "1m",
    cooldown_minutes: int = 5,
    name: str = "",
    category: str = "neutral",
) -> CompiledRule:
    """Compile one rule from its stored parts; raises RuleError naming the field and token at fault."""
    if timeframe not in TIMEFRAMES:
        raise RuleError(f"timeframe must be one of {', '.join(TIMEFRAMES)}", field="timeframe", token=str(timeframe))
    try:
        params = parameters_validate(parameters)
    except ConditionError as error:
        raise RuleError(str(error), field="parameters", token=error.token) from None
    if not isinstance(conditions, list) or not conditions:
        raise RuleError("a rule needs a list of at least one condition", field="conditions")
    compiled = []
    for number, text in enumerate(conditions, start=1):
        try:
            compiled.append(condition_compile(text, parameters=params))
        except ConditionError as error:
            raise RuleError(f"condition {number}: {error}", field="conditions", token=error.token) from None
    inputs: list[str] = []
    for condition in compiled:
        inputs += [name for name in condition.inputs if name not in inputs]
    return CompiledRule(
        rule_type=rule_type,
        name=name or rule_type,
        category=category,
        timeframe=timeframe,
        cooldown_minutes=int(cooldown_minutes),
        parameters=params,
        conditions=tuple(compiled),
        inputs=tuple(inputs),
        lookback=max(c.lookback for c in compiled),
        indicator_timeframes=indicator_timeframes_ordered(tf for c in compiled for tf in c.indicator_timeframes),
    )


def rules_indicator_timeframes(rules: Iterable[CompiledRule]) -> tuple[str, ...]:
    """The indicator timeframes any of the rules needs; empty when none names an indicator (the usual case)."""
    return indicator_timeframes_ordered(tf for rule in rules for tf in rule.indicator_timeframes)


# Compiled rules by their full content, so a tick re-parses only rules that changed. Keyed by content rather than
# updated_at, which a queryset update() does not touch.
_COMPILED: dict[str, CompiledRule] = {}
_COMPILED_MAX = 512


def _rule_parts(rule: AlertRule) -> dict:
    return {
        "rule_type": rule.rule_type,
        "conditions": rule.conditions,
        "parameters": rule.parameters,
        "timeframe": rule.timeframe,
        "cooldown_minutes": rule.cooldown_minutes,
        "name": rule.name,
        "category": rule.category,
    }


def rules_compile(rules: Iterable[AlertRule]) -> list[CompiledRule]:
    """Compile rule rows; a row that does not compile is logged, counted and skipped, never fatal."""
    out = []
    for rule in rules:
        parts = _rule_parts(rule)
        cache_key = json.dumps(parts, sort_keys=True, default=str)
        cached = _COMPILED.get(cache_key)
        if cached is not None:
            out.append(cached)
            continue
        try:
            compiled = rule_compile(**parts)
            if len(_COMPILED) >= _COMPILED_MAX:
                _COMPILED.clear()
            _COMPILED[cache_key] = compiled
            out.append(compiled)
        except RuleError as error:
            RULES_INVALID.inc()
            logger.error("alert rule %s skipped: %s: %s", rule.rule_type, error.field, error)
    return out


def rules_load() -> list[CompiledRule]:
    """The enabled rules as stored now; read at every tick, so an admin edit applies at the next one."""
    return rules_compile(AlertRule.objects.filter(enabled=True).order_by("id"))


@dataclass(eq=False)
class RuleContext:
    """The inputs of one evaluation: a (fields, rows, minutes) candle block, its window metrics, and the
    indicators (`rsi_14_1h`, ...) the rules name, when any does."""

    candles: np.ndarray
    metrics: Mapping[str, np.ndarray]
    indicators: Mapping[str, np.ndarray] = field(default_factory=dict)
    _cache: dict[object, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def rows(self) -> int:
        return self.candles.shape[1]

    def value(self, name: str) -> np.ndarray:
        """A window metric, an indicator, or a field of the newest candle (minute t)."""
        found = self.metrics.get(name)
        if found is not None:
            return found
        if name in FIELD_INDEX:
            return self.candles[FIELD_INDEX[name], :, -1]
        found = self.indicators.get(name)
        if found is not None:
            return found
        # A window longer than the block, or an indicator nobody supplied, has no value: NaN, so nothing that
        # needs it fires.
        return np.full(self.rows, np.nan)

    def series(self, name: str, n: int) -> np.ndarray:
        """The last n minutes of a per-candle series, (rows, n); only that tail is computed."""
        candles = self.candles[:, :, -n:]
        with np.errstate(all="ignore"):
            if name == "body":
                return candles[FIELD_INDEX["close"]] - candles[FIELD_INDEX["open"]]
            if name == "range_pct":
                return (candles[FIELD_INDEX["high"]] - candles[FIELD_INDEX["low"]]) / candles[FIELD_INDEX["close"]]
            return candles[FIELD_INDEX[name]]

    def reduce(self, function: str, series: str, n: int) -> np.ndarray:
        """min or max over the last n candles; NaN when any of them is missing or the block is shorter."""
        cache_key = (function, series, n)
        found = self._cache.get(cache_key)
        if found is not None:
            return found
        if n > self.candles.shape[2]:
            found = np.full(self.rows, np.nan)
        else:
            tail = self.series(series, n)
            found = tail.min(axis=1) if function == "min_n" else tail.max(axis=1)
        self._cache[cache_key] = found
        return found

    def input_value(self, label: str) -> np.ndarray:
        """The values of a rule input (a metric name or a min_n/max_n label) over the rows."""
        if label.endswith(")"):
            function, rest = label.split("(", 1)
            series, n = rest[:-1].split(",")
            return self.reduce(function, series, int(n))
        return self.value(label)

    def timeframe_values(self, timeframe: str) -> tuple[np.ndarray, np.ndarray]:
        """(quote volume, change %) over a rule's timeframe: its window, or the newest candle for 1m."""
        if timeframe in WINDOWS:
            return self.value(f"vol_{timeframe}"), self.value(f"change_{timeframe}")
        open_, close = self.value("open"), self.value("close")
        with np.errstate(all="ignore"):
            return self.value("quote_volume"), (close - open_) / open_ * 100


def cooldown_suppresses(*, previous_ms: int | None, minute_ms: int, cooldown_minutes: int) -> bool:
    """An alert at minute t is suppressed when the pair fired at a minute in (t - cooldown, t): docs/rules.md."""
    if previous_ms is None:
        return False
    return minute_ms - cooldown_minutes * MINUTE_MS < previous_ms < minute_ms


def rule_context(
    *, candles: np.ndarray, metrics: dict[str, np.ndarray], indicators: Mapping[str, np.ndarray] | None = None
) -> RuleContext:
    """Wrap a candles_matrix block, its window_metrics and the indicators the rules need for rules_evaluate.

    A row without a candle at minute t gets no indicator value: its forming bar may still have a close (an earlier
    minute's), but a symbol that did not trade at t is not evaluated at t (the backtest has no row for it).
    """
    if candles.ndim != 3 or candles.shape[0] != len(FIELD_INDEX):
        raise ValueError(f"candles must be a (fields, rows, minutes) block, got shape {candles.shape}")
    if not indicators:
        return RuleContext(candles=candles, metrics=metrics)
    traded = ~np.isnan(candles[FIELD_INDEX["close"], :, -1])
    masked = {name: np.where(traded, values, np.nan) for name, values in indicators.items()}
    return RuleContext(candles=candles, metrics=metrics, indicators=masked)


def rules_evaluate(rules: Iterable[CompiledRule], context: RuleContext) -> dict[str, np.ndarray]:
    """rule_type -> boolean array over the context's rows: True where every condition holds."""
    out: dict[str, np.ndarray] = {}
    for rule in rules:
        fired = np.ones(context.rows, dtype=bool)
        for condition in rule.conditions:
            fired &= condition.evaluate(context)
            if not fired.any():
                break
        out[rule.rule_type] = fired
    return out
