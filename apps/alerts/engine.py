"""Vectorized rule evaluation: every enabled rule over every row of a candle block at once.

A row is a symbol of a shard in the live tick, or a (symbol, minute) window in the backtest; both feed the same
(fields, rows, minutes) block shape, minute t last, so both run exactly this code.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from prometheus_client import Counter

from apps.collector.candles import FIELD_INDEX, MINUTE_MS
from apps.metrics.windows import window_metric_names, window_metrics, window_minutes
from screener_project.kernel.timeframes import RULE_TIMEFRAMES, SCREENER_TIMEFRAMES

from .conditions import (
    SYMBOL_NAME,
    Condition,
    ConditionError,
    Held,
    HeldRule,
    HeldRules,
    condition_compile,
    deferred_name,
    held_rule_types,
    indicator_timeframes_ordered,
    parameters_validate,
)
from .models import AlertRule

logger = logging.getLogger(__name__)


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
    # Reference-symbol metrics (`BTCUSDT.change_1h`) and daily changes (`change_7d`) the evaluation must supply.
    references: tuple[str, ...] = ()
    daily: tuple[str, ...] = ()


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
    held_rules: HeldRules | None = None,
) -> CompiledRule:
    """Compile one rule from its stored parts; raises RuleError naming the field and token at fault.

    `held_rules` resolves the rules named by held_within (rules_resolver gives one over the stored rules).
    """
    if timeframe not in RULE_TIMEFRAMES:
        raise RuleError(
            f"timeframe must be one of {', '.join(RULE_TIMEFRAMES)}", field="timeframe", token=str(timeframe)
        )
    try:
        params = parameters_validate(parameters)
    except ConditionError as error:
        raise RuleError(str(error), field="parameters", token=error.token) from None
    if not isinstance(conditions, list) or not conditions:
        raise RuleError("a rule needs a list of at least one condition", field="conditions")
    compiled = []
    for number, text in enumerate(conditions, start=1):
        try:
            compiled.append(condition_compile(text, parameters=params, held_rules=held_rules))
        except ConditionError as error:
            raise RuleError(f"condition {number}: {error}", field="conditions", token=error.token) from None
    inputs: list[str] = []
    for condition in compiled:
        # Numbers only: the alert's metadata and the backtest's columns carry them (a symbol list or held_within
        # is true by the time a rule fires).
        inputs += [
            name
            for name in condition.inputs
            if name not in inputs and name != SYMBOL_NAME and not name.startswith("held_within(")
        ]
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
        references=tuple(dict.fromkeys(label for c in compiled for label in c.references)),
        daily=tuple(dict.fromkeys(label for c in compiled for label in c.daily)),
    )


def _nested(rule_type: str) -> HeldRule:
    raise ConditionError("a rule that held_within names cannot use held_within itself", token=rule_type)


def rules_resolver(definitions: Mapping[str, Mapping]) -> HeldRules:
    """held_within's view of other rules: rule_type -> its compiled conditions, from their stored parts
    (conditions, parameters), whether enabled or not."""

    def resolve(rule_type: str) -> HeldRule:
        parts = definitions.get(rule_type)
        if parts is None:
            raise ConditionError(f"no rule {rule_type!r}", token=rule_type)
        try:
            params = parameters_validate(parts.get("parameters") or {})
            conditions = parts.get("conditions")
            if not isinstance(conditions, list) or not conditions:
                raise ConditionError(f"rule {rule_type!r} has no conditions", token=rule_type)
            compiled = tuple(condition_compile(text, parameters=params, held_rules=_nested) for text in conditions)
        except ConditionError as error:
            raise ConditionError(f"rule {rule_type!r} does not compile: {error}", token=rule_type) from None
        return HeldRule(rule_type, compiled)

    return resolve


def rules_stored_resolver() -> HeldRules:
    """rules_resolver over the rules as stored now."""
    return rules_resolver(
        {r["rule_type"]: r for r in AlertRule.objects.values("rule_type", "conditions", "parameters")}
    )


def rules_indicator_timeframes(rules: Iterable[CompiledRule]) -> tuple[str, ...]:
    """The indicator timeframes any of the rules needs; empty when none names an indicator (the usual case)."""
    return indicator_timeframes_ordered(tf for rule in rules for tf in rule.indicator_timeframes)


def rules_block_minutes(rules: Iterable[CompiledRule]) -> int:
    """How many of the newest minutes of the 1m block evaluating these rules reads: their windows (the rule's
    timeframe included, for the alert's change), min_n/max_n runs and held_within spans. A block trimmed to that
    many gives the same values: every window is reduced over the same minutes."""
    minutes = [1]
    for rule in rules:
        minutes += [rule.lookback, window_minutes(f"change_{rule.timeframe}")]
        minutes += [window_minutes(label) for label in rule.inputs]
        minutes += [held.n + held.span for condition in rule.conditions for held in condition.held]
    return max(minutes)


def rules_window_metric_names(rules: Iterable[CompiledRule]) -> frozenset[str]:
    """The window metrics evaluating these rules reads: their inputs, and the volume and change of each rule's
    timeframe (an alert's change_pct)."""
    names: set[str] = set()
    for rule in rules:
        names.update(rule.inputs)
        names.update((f"vol_{rule.timeframe}", f"change_{rule.timeframe}"))
    return frozenset(names & set(window_metric_names()))


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


def rules_compile(rules: Iterable[AlertRule], *, others: Iterable[AlertRule] = ()) -> list[CompiledRule]:
    """Compile rule rows; a row that does not compile is logged, counted and skipped, never fatal.

    held_within resolves names among `rules` and `others` (the disabled rows, which it may name as well).
    """
    rules = list(rules)
    definitions = {rule.rule_type: _rule_parts(rule) for rule in [*others, *rules]}
    resolver = rules_resolver(definitions)
    out = []
    for rule in rules:
        parts = _rule_parts(rule)
        # The rules held_within names are part of what this one means: an edit to them recompiles it.
        named = {name: definitions.get(name) for name in held_rule_types(rule.conditions)}
        cache_key = json.dumps([parts, named], sort_keys=True, default=str)
        cached = _COMPILED.get(cache_key)
        if cached is not None:
            out.append(cached)
            continue
        try:
            compiled = rule_compile(**parts, held_rules=resolver)
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
    rows = list(AlertRule.objects.order_by("id"))
    return rules_compile([r for r in rows if r.enabled], others=[r for r in rows if not r.enabled])


# (row indices of a context, or None for all its rows; names) -> {name: values over those rows}: loads the values
# that are not part of the block (indicators, daily changes, reference symbols' metrics) for just those rows.
ValuesLoad = Callable[[np.ndarray | None, tuple[str, ...]], Mapping[str, np.ndarray]]


@dataclass(eq=False)
class RuleContext:
    """The inputs of one evaluation: a (fields, rows, minutes) candle block, its window metrics, the rows' symbols,
    and the values the rules name beyond those: indicators (`rsi_14_1h`), daily changes (`change_7d`) and reference
    symbols' metrics (`BTCUSDT.change_1h`), given (`indicators`) or loaded on demand by `loader`, for only the rows a
    rule still needs them for. A row without a candle at minute t has none of them (see rule_context)."""

    candles: np.ndarray
    metrics: Mapping[str, np.ndarray]
    indicators: Mapping[str, np.ndarray] = field(default_factory=dict)
    symbols: np.ndarray | None = None
    loader: ValuesLoad | None = None
    _cache: dict[object, np.ndarray] = field(default_factory=dict, repr=False)
    # Values loaded for every row (masked), and for row subsets by (rows, names).
    _loaded: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _loaded_rows: dict[tuple, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)

    @property
    def rows(self) -> int:
        return self.candles.shape[1]

    def value(self, name: str) -> np.ndarray:
        """A window metric, a given or loaded value, or a field of the newest candle (minute t)."""
        found = self.metrics.get(name)
        if found is not None:
            return found
        if name in FIELD_INDEX:
            return self.candles[FIELD_INDEX[name], :, -1]
        found = self.indicators.get(name)
        if found is not None:
            return found
        if self.loader is not None and deferred_name(name):
            return self.load(None, (name,))[name]
        # A window longer than the block, or a value nobody supplied, has no value: NaN, so nothing that needs it
        # fires.
        return np.full(self.rows, np.nan)

    def _traded(self, rows: np.ndarray | None) -> np.ndarray:
        close = self.candles[FIELD_INDEX["close"], :, -1]
        return ~np.isnan(close if rows is None else close[rows])

    def load(self, rows: np.ndarray | None, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Deferred values over some rows (None: all), loading only what is not loaded yet; NaN where the row has
        no candle at t or nothing can supply the name."""
        count = self.rows if rows is None else len(rows)
        have = {name: self.indicators[name] for name in names if name in self.indicators}
        have |= {name: self._loaded[name] for name in names if name in self._loaded and name not in have}
        if rows is not None:
            have = {name: values[rows] for name, values in have.items()}
            cached = self._loaded_rows.get((rows.tobytes(), tuple(names)))
            if cached is not None:
                return cached
        missing = tuple(name for name in names if name not in have)
        if missing and self.loader is not None and count:
            traded = self._traded(rows)
            got = {name: np.where(traded, values, np.nan) for name, values in self.loader(rows, missing).items()}
            if rows is None:
                self._loaded.update(got)
            have |= {name: got[name] for name in missing if name in got}
        out = {name: have.get(name, np.full(count, np.nan)) for name in names}
        if rows is not None:
            self._loaded_rows[(rows.tobytes(), tuple(names))] = out
        return out

    def series(self, name: str, n: int) -> np.ndarray:
        """The last n minutes of a per-candle series, (rows, n); only that tail is computed."""
        return _series(self.candles[:, :, -n:], name)

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

    def symbol_in(self, symbols: frozenset[str]) -> np.ndarray:
        if self.symbols is None:
            raise ValueError("this evaluation has no symbols, which a symbol list needs")
        return np.fromiter((s in symbols for s in self.symbols.tolist()), dtype=bool, count=self.rows)

    def held(self, held: Held) -> np.ndarray:
        """held_within: the named rule's conditions held at some minute s, t - n <= s < t, from this block."""
        cache_key = ("held", held.rule_type, held.n, held.span)
        found = self._cache.get(cache_key)
        if found is not None:
            return found
        span, n = held.span, held.n
        if n + span > self.candles.shape[2]:
            found = np.zeros(self.rows, dtype=bool)
        else:
            # Minutes t - n - span + 1 .. t - 1, as n sliding windows of `span` minutes: window k ends at t - n + k.
            tail = self.candles[:, :, -(n + span) : -1]
            windows = np.lib.stride_tricks.sliding_window_view(tail, span, axis=2)  # (F, rows, n, span), a view
            read = {label for condition in held.conditions for label in condition.inputs}
            lagged = LaggedContext(windows=windows, metrics=window_metrics(windows, names=read), symbols=self.symbols)
            holds = np.ones((self.rows, n), dtype=bool)
            for condition in held.conditions:
                holds &= condition.evaluate(lagged)
                if not holds.any():
                    break
            found = holds.any(axis=1)
        self._cache[cache_key] = found
        return found

    def subset(self, rows: np.ndarray, names: Sequence[str] = (), *, minutes: int | None = None) -> RuleContext:
        """The same evaluation restricted to some rows (an index array), with the deferred `names` loaded for
        just those rows; `minutes` keeps only the newest minutes of the block (what a condition reads directly),
        since window metrics come along already computed."""
        candles = self.candles if minutes is None else self.candles[:, :, -max(minutes, 1) :]
        return RuleContext(
            candles=candles[:, rows],
            metrics={name: values[rows] for name, values in self.metrics.items()},
            indicators=self.load(rows, names) if names else {},
            symbols=None if self.symbols is None else self.symbols[rows],
        )

    def values_at(self, rows: np.ndarray, labels: Sequence[str]) -> dict[str, np.ndarray]:
        """The values of rule inputs over some rows only (what a fired alert records); deferred values are loaded
        for those rows alone."""
        loaded = self.load(rows, [label for label in labels if deferred_name(label)])
        return {label: loaded[label] if label in loaded else self.input_value(label)[rows] for label in labels}

    def input_value(self, label: str) -> np.ndarray:
        """The values of a rule input (a metric name or a min_n/max_n label) over the rows."""
        if label.endswith(")"):
            function, rest = label.split("(", 1)
            series, n = rest[:-1].split(",")
            return self.reduce(function, series, int(n))
        return self.value(label)

    def timeframe_values(self, timeframe: str) -> tuple[np.ndarray, np.ndarray]:
        """(quote volume, change %) over a rule's timeframe: its window, or the newest candle for 1m."""
        if timeframe in SCREENER_TIMEFRAMES:
            return self.value(f"vol_{timeframe}"), self.value(f"change_{timeframe}")
        open_, close = self.value("open"), self.value("close")
        with np.errstate(all="ignore"):
            return self.value("quote_volume"), (close - open_) / open_ * 100


def _series(candles: np.ndarray, name: str) -> np.ndarray:
    """A per-candle series of a block, over its last axis (minutes)."""
    with np.errstate(all="ignore"):
        if name == "body":
            return candles[FIELD_INDEX["close"]] - candles[FIELD_INDEX["open"]]
        if name == "range_pct":
            return (candles[FIELD_INDEX["high"]] - candles[FIELD_INDEX["low"]]) / candles[FIELD_INDEX["close"]]
        return candles[FIELD_INDEX[name]]


@dataclass(eq=False)
class LaggedContext:
    """What held_within evaluates the named rule on: each row at each of the n minutes before t, as (rows, n)
    arrays, from (fields, rows, n, span) sliding windows of the 1m block."""

    windows: np.ndarray
    metrics: Mapping[str, np.ndarray]
    symbols: np.ndarray | None

    @property
    def rows(self) -> int:
        return self.windows.shape[1]

    @property
    def shape(self) -> tuple[int, int]:
        return self.windows.shape[1], self.windows.shape[2]

    def value(self, name: str) -> np.ndarray:
        found = self.metrics.get(name)
        if found is not None:
            return found
        if name in FIELD_INDEX:
            return self.windows[FIELD_INDEX[name], :, :, -1]
        return np.full(self.shape, np.nan)

    def reduce(self, function: str, series: str, n: int) -> np.ndarray:
        tail = _series(self.windows[..., -n:], series)
        return tail.min(axis=-1) if function == "min_n" else tail.max(axis=-1)

    def symbol_in(self, symbols: frozenset[str]) -> np.ndarray:
        if self.symbols is None:
            raise ValueError("this evaluation has no symbols, which a symbol list needs")
        inside = np.fromiter((s in symbols for s in self.symbols.tolist()), dtype=bool, count=self.rows)
        return np.broadcast_to(inside[:, None], self.shape)

    def held(self, held: Held) -> np.ndarray:
        raise ValueError("held_within cannot be nested")  # refused when the rule is compiled


def cooldown_suppresses(*, previous_ms: int | None, minute_ms: int, cooldown_minutes: int) -> bool:
    """An alert at minute t is suppressed when the pair fired at a minute in (t - cooldown, t): docs/rules.md."""
    if previous_ms is None:
        return False
    return minute_ms - cooldown_minutes * MINUTE_MS < previous_ms < minute_ms


def rule_context(
    *,
    candles: np.ndarray,
    metrics: dict[str, np.ndarray],
    indicators: Mapping[str, np.ndarray] | None = None,
    symbols: Sequence[str] | np.ndarray | None = None,
    loader: ValuesLoad | None = None,
) -> RuleContext:
    """Wrap a candles_matrix block, its window_metrics, the rows' symbols and the values the rules name beyond
    them (given as `indicators`, or loaded on demand by `loader`) for rules_evaluate.

    A row without a candle at minute t gets none of those values: its forming bar may still have a close (an earlier
    minute's), but a symbol that did not trade at t is not evaluated at t (the backtest has no row for it).
    """
    if candles.ndim != 3 or candles.shape[0] != len(FIELD_INDEX):
        raise ValueError(f"candles must be a (fields, rows, minutes) block, got shape {candles.shape}")
    rows = None if symbols is None else np.asarray(symbols, dtype=object)
    if rows is not None and len(rows) != candles.shape[1]:
        raise ValueError(f"{len(rows)} symbols for {candles.shape[1]} rows")
    masked: dict[str, np.ndarray] = {}
    if indicators:
        traded = ~np.isnan(candles[FIELD_INDEX["close"], :, -1])
        masked = {name: np.where(traded, values, np.nan) for name, values in indicators.items()}
    return RuleContext(candles=candles, metrics=metrics, indicators=masked, symbols=rows, loader=loader)


# Below this share of rows still standing, a deferred condition loads its values for those rows only.
SUBSET_BELOW = 0.5


def rules_evaluate(rules: Iterable[CompiledRule], context: RuleContext) -> dict[str, np.ndarray]:
    """rule_type -> boolean array over the context's rows: True where every condition holds.

    A condition that reads a deferred value (an indicator, a daily change, a reference symbol) or looks back with
    held_within is evaluated only on the rows every earlier condition left standing, and its values are loaded for
    those rows only; while every row is still standing they are loaded for all rows, once for every rule.
    """
    out: dict[str, np.ndarray] = {}
    for rule in rules:
        fired = np.ones(context.rows, dtype=bool)
        for condition in rule.conditions if context.rows else ():
            deferred = condition.deferred
            # held_within always on the standing rows; deferred values for all rows (shared with the indicators
            # stage) when most still stand.
            if condition.held or (deferred and fired.mean() < SUBSET_BELOW):
                rows = np.flatnonzero(fired)
                minutes = None if condition.held else condition.lookback
                fired[rows] = condition.evaluate(context.subset(rows, deferred, minutes=minutes))
            else:
                if deferred:
                    context.load(None, deferred)
                fired &= condition.evaluate(context)
            if not fired.any():
                break
        out[rule.rule_type] = fired
    return out
