"""The condition language of alert rules: one comparison of arithmetic expressions, parsed safely.

A condition such as `change_1h > change_1h_min` or `min_n(quote_volume, 3) >= volume_ratio * vol_1h / 60` is
parsed with Python's `ast` module (never eval) and only these nodes are accepted: a comparison (<, <=, >, >=,
chained allowed), + - * /, unary minus, parentheses, numbers, names and the calls `min_n(series, n)` /
`max_n(series, n)`. Names resolve in this order:

1. the rule's own parameters (numbers, substituted when the rule is compiled);
2. window metrics (`change_1h`, `vol_8h`, ... see apps.metrics.windows.window_metric_names());
3. indicators at minute t, `<indicator>_<timeframe>` (`rsi_14_1h`, `macd_hist_15m`, `bb_lower_4h`, ...
   see INDICATOR_METRICS), on the timeframe's clock-aligned bars, the newest being the forming bar;
4. the newest candle's own fields (`open`, `high`, `low`, `close`, `volume`, `quote_volume`, `trades`).
Metrics and indicators are defined in docs/windows-and-indicators.md.

The first argument of min_n/max_n names a per-candle series (SERIES below); `n` is an expression of numbers and
parameters only, an integer from 1 to LONGEST_WINDOW. Compiled conditions evaluate to a boolean array over the
rows of a RuleContext (a shard's symbols, or a backtest's (symbol, minute) windows); NaN compares false.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Protocol

import numpy as np

from apps.metrics.indicators import INDICATOR_NAMES
from apps.metrics.shard_bars import INDICATOR_METRICS, INDICATOR_TIMEFRAMES
from apps.metrics.windows import LONGEST_WINDOW, window_metric_names

MAX_CONDITION_LENGTH = 500
MAX_DEPTH = 32

CANDLE_FIELDS = ("open", "high", "low", "close", "volume", "quote_volume", "trades")
# Per-candle series usable in min_n/max_n; body and range_pct are derived from the candle's prices.
SERIES = ("open", "high", "low", "close", "volume", "quote_volume", "body", "range_pct")
FUNCTIONS = ("min_n", "max_n")

_COMPARE: dict[type[ast.cmpop], tuple[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]] = {
    ast.Lt: ("<", operator.lt),
    ast.LtE: ("<=", operator.le),
    ast.Gt: (">", operator.gt),
    ast.GtE: (">=", operator.ge),
}
_ARITHMETIC: dict[type[ast.operator], tuple[str, Callable]] = {
    ast.Add: ("+", operator.add),
    ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", operator.mul),
    ast.Div: ("/", lambda left, right: _divide(left, right)),
}


def _divide(left: np.ndarray | float, right: np.ndarray | float) -> np.ndarray:
    # A division by zero has no value (NaN), so a condition over it never holds, rather than comparing infinity.
    right = np.asarray(right, dtype=np.float64)
    return np.where(right == 0, np.nan, np.asarray(left, dtype=np.float64) / np.where(right == 0, 1.0, right))


class ConditionError(ValueError):
    """A condition that cannot be compiled; `token` is the offending name, operator or text."""

    def __init__(self, message: str, *, token: str = "") -> None:
        super().__init__(message)
        self.token = token


class Context(Protocol):
    """What a compiled condition reads; apps.alerts.engine.RuleContext implements it."""

    def value(self, name: str) -> np.ndarray: ...

    def reduce(self, function: str, series: str, n: int) -> np.ndarray: ...


@cache
def metric_names() -> frozenset[str]:
    return frozenset(window_metric_names())


def reserved_names() -> frozenset[str]:
    """Names a parameter may not take, since a parameter would hide them (series names are only read inside
    min_n/max_n, so a parameter may share one, as flat_8h's `range_pct` does)."""
    return metric_names() | frozenset(INDICATOR_METRICS) | frozenset(CANDLE_FIELDS) | frozenset(FUNCTIONS)


def _unknown_name_hint(name: str) -> str:
    """A pointer to the indicator names when an unknown name looks like one (`rsi_14_2h`, `rsi_15_1h`)."""
    if name.split("_", 1)[0] not in {indicator.split("_", 1)[0] for indicator in INDICATOR_NAMES}:
        return ""
    return (
        f" (indicators are <indicator>_<timeframe> with indicator in {', '.join(INDICATOR_NAMES)}"
        f" and timeframe in {', '.join(INDICATOR_TIMEFRAMES)})"
    )


# --- compiled form ------------------------------------------------------------------------------------------------


class Node:
    def evaluate(self, context: Context) -> np.ndarray | float:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Number(Node):
    value: float

    def evaluate(self, context: Context) -> float:
        return self.value


@dataclass(frozen=True, slots=True)
class Metric(Node):
    """A window metric, an indicator or a field of the newest candle: one value per row."""

    name: str

    def evaluate(self, context: Context) -> np.ndarray:
        return context.value(self.name)


@dataclass(frozen=True, slots=True)
class Reduce(Node):
    """min_n / max_n of a per-candle series over the last n candles."""

    function: str
    series: str
    n: int

    @property
    def label(self) -> str:
        return f"{self.function}({self.series},{self.n})"

    def evaluate(self, context: Context) -> np.ndarray:
        return context.reduce(self.function, self.series, self.n)


@dataclass(frozen=True, slots=True)
class Negate(Node):
    operand: Node

    def evaluate(self, context: Context) -> np.ndarray | float:
        return -self.operand.evaluate(context)


@dataclass(frozen=True, slots=True)
class Arithmetic(Node):
    symbol: str
    function: Callable = field(compare=False)
    left: Node
    right: Node

    def evaluate(self, context: Context) -> np.ndarray | float:
        # Constants are folded at compile time, so at least one operand is an array here.
        return self.function(self.left.evaluate(context), self.right.evaluate(context))


@dataclass(frozen=True, slots=True)
class Condition:
    """One compiled comparison (possibly chained)."""

    text: str
    operands: tuple[Node, ...]
    comparisons: tuple[tuple[str, Callable], ...]
    # Metric names and min_n/max_n labels the condition reads, in order of appearance.
    inputs: tuple[str, ...]
    # Longest run of candles the condition reads (0 when it reads window metrics only).
    lookback: int
    # Timeframes of the indicators the condition reads, in the order of INDICATOR_TIMEFRAMES (empty: none).
    indicator_timeframes: tuple[str, ...] = ()

    def evaluate(self, context: Context) -> np.ndarray:
        with np.errstate(all="ignore"):
            values = [operand.evaluate(context) for operand in self.operands]
            result: np.ndarray | None = None
            for (_, compare), left, right in zip(self.comparisons, values, values[1:], strict=False):
                outcome = np.asarray(compare(left, right), dtype=bool)
                result = outcome if result is None else result & outcome
        assert result is not None
        return result


# --- parsing --------------------------------------------------------------------------------------------------------


def _token(node: ast.AST, text: str) -> str:
    return ast.get_source_segment(text, node) or type(node).__name__


class _Compiler:
    def __init__(self, text: str, parameters: Mapping[str, float]) -> None:
        self.text = text
        self.parameters = parameters
        self.inputs: list[str] = []
        self.lookback = 0
        self.indicator_timeframes: set[str] = set()

    def fail(self, message: str, node: ast.AST | None = None, token: str = "") -> ConditionError:
        token = token or (_token(node, self.text) if node is not None else "")
        return ConditionError(f"{message} in condition {self.text!r}", token=token)

    def note(self, label: str) -> None:
        if label not in self.inputs:
            self.inputs.append(label)

    def expression(self, node: ast.AST, depth: int = 0) -> Node:
        if depth > MAX_DEPTH:
            raise self.fail("expression nested too deeply", node)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise self.fail(f"{_token(node, self.text)!r} is not a number", node)
            value = finite_float(node.value)
            if value is None:
                raise self.fail(f"{_token(node, self.text)[:40]!r} is not a finite number in range", node)
            return Number(value)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                operand = self.expression(node.operand, depth + 1)
                return Number(-operand.value) if isinstance(operand, Number) else Negate(operand)
            if isinstance(node.op, ast.UAdd):
                return self.expression(node.operand, depth + 1)
            raise self.fail(f"unsupported unary operator in {_token(node, self.text)!r}", node)
        if isinstance(node, ast.BinOp):
            if type(node.op) not in _ARITHMETIC:
                token = _operator_token(node, self.text)
                raise self.fail(f"unsupported operator {token!r} (use + - * /)", node, token=token)
            symbol, function = _ARITHMETIC[type(node.op)]
            left = self.expression(node.left, depth + 1)
            right = self.expression(node.right, depth + 1)
            if isinstance(left, Number) and isinstance(right, Number):
                if symbol == "/" and right.value == 0:
                    raise self.fail(f"division by zero in {_token(node, self.text)!r}", node)
                folded = finite_float(function(left.value, right.value))
                if folded is None:
                    raise self.fail(f"{_token(node, self.text)[:40]!r} is not a finite number in range", node)
                return Number(folded)
            return Arithmetic(symbol, function, left, right)
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        if isinstance(node, ast.Compare):
            raise self.fail("a comparison cannot be nested inside an expression", node)
        raise self.fail(f"unsupported syntax {_token(node, self.text)!r}", node)

    def name(self, node: ast.Name) -> Node:
        name = node.id
        if name in self.parameters:
            return Number(float(self.parameters[name]))
        if name in metric_names() or name in CANDLE_FIELDS:
            self.note(name)
            return Metric(name)
        if name in INDICATOR_METRICS:
            self.note(name)
            self.indicator_timeframes.add(INDICATOR_METRICS[name][1])
            return Metric(name)
        if name in FUNCTIONS:
            raise self.fail(f"{name} must be called as {name}(series, n)", node, token=name)
        raise self.fail(f"unknown name {name!r}{_unknown_name_hint(name)}", node, token=name)

    def call(self, node: ast.Call, depth: int) -> Node:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise self.fail(
                f"unknown function {_token(node.func, self.text)!r} (allowed: {', '.join(FUNCTIONS)})", node.func
            )
        function = node.func.id
        if node.keywords or len(node.args) != 2:
            raise self.fail(f"{function} takes exactly two arguments: {function}(series, n)", node, token=function)
        series_node, n_node = node.args
        if not isinstance(series_node, ast.Name) or series_node.id not in SERIES:
            raise self.fail(
                f"unknown series {_token(series_node, self.text)!r} (allowed: {', '.join(SERIES)})", series_node
            )
        n = self.expression(n_node, depth + 1)
        if not isinstance(n, Number):
            raise self.fail(
                f"the length of {function}, {_token(n_node, self.text)!r}, must be a number or parameter", n_node
            )
        if not float(n.value).is_integer() or not 1 <= n.value <= LONGEST_WINDOW:
            raise self.fail(
                f"the length of {function} must be an integer from 1 to {LONGEST_WINDOW}, got {n.value:g}", n_node
            )
        reduce = Reduce(function, series_node.id, int(n.value))
        self.note(reduce.label)
        self.lookback = max(self.lookback, reduce.n)
        return reduce


def _operator_token(node: ast.BinOp, text: str) -> str:
    names = {
        ast.Pow: "**",
        ast.Mod: "%",
        ast.FloorDiv: "//",
        ast.BitAnd: "&",
        ast.BitOr: "|",
        ast.BitXor: "^",
        ast.LShift: "<<",
        ast.RShift: ">>",
        ast.MatMult: "@",
    }
    return names.get(type(node.op), _token(node, text))


def condition_compile(text: str, *, parameters: Mapping[str, float] | None = None) -> Condition:
    """Parse and validate one condition; raises ConditionError naming the bad token."""
    parameters = parameters or {}
    if not isinstance(text, str) or not text.strip():
        raise ConditionError("a condition must be a non-empty text", token=str(text))
    if len(text) > MAX_CONDITION_LENGTH:
        raise ConditionError(f"a condition is limited to {MAX_CONDITION_LENGTH} characters", token=text[:40])
    text = text.strip()
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as error:
        offset = (error.offset or 1) - 1
        token = text[offset : offset + 10] or text
        raise ConditionError(f"syntax error near {token!r} in condition {text!r}", token=token) from None
    compiler = _Compiler(text, parameters)
    body = tree.body
    if not isinstance(body, ast.Compare):
        if not isinstance(body, (ast.BoolOp, ast.Lambda)):
            compiler.expression(body)  # reports a bad operator or name first, which says more
        raise compiler.fail("a condition must be a comparison (<, <=, >, >=)", body)
    comparisons = []
    for op in body.ops:
        if type(op) not in _COMPARE:
            symbol = {
                ast.Eq: "==",
                ast.NotEq: "!=",
                ast.Is: "is",
                ast.IsNot: "is not",
                ast.In: "in",
                ast.NotIn: "not in",
            }.get(type(op), type(op).__name__)
            raise compiler.fail(f"unsupported comparison {symbol!r} (use <, <=, >, >=)", token=symbol)
        comparisons.append(_COMPARE[type(op)])
    operands = tuple(compiler.expression(node) for node in (body.left, *body.comparators))
    if not compiler.inputs:
        raise compiler.fail("a condition must read at least one metric", token=text)
    return Condition(
        text=text,
        operands=operands,
        comparisons=tuple(comparisons),
        inputs=tuple(compiler.inputs),
        lookback=compiler.lookback,
        indicator_timeframes=indicator_timeframes_ordered(compiler.indicator_timeframes),
    )


def indicator_timeframes_ordered(timeframes: Iterable[str]) -> tuple[str, ...]:
    """Indicator timeframes in their canonical order (5m first), without repeats."""
    wanted = set(timeframes)
    return tuple(tf for tf in INDICATOR_TIMEFRAMES if tf in wanted)


def parameters_validate(parameters: object) -> dict[str, float]:
    """Check a rule's parameters: an object of identifier -> finite number; raises ConditionError naming the key."""
    if not isinstance(parameters, Mapping):
        raise ConditionError("parameters must be an object of name -> number", token="parameters")
    out: dict[str, float] = {}
    for name, value in parameters.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ConditionError(f"parameter name {name!r} is not a valid identifier", token=str(name))
        if name in reserved_names():
            raise ConditionError(f"parameter {name!r} would hide the metric of the same name", token=name)
        number = None if isinstance(value, bool) or not isinstance(value, (int, float)) else finite_float(value)
        if number is None:
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
            raise ConditionError(f"parameter {name!r} must be a finite number, got {shown}", token=name)
        out[name] = number
    return out


def finite_float(value: int | float) -> float | None:
    """The value as a finite float, or None when it is infinite, NaN or an integer too large for a float."""
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None
