"""The condition language of alert rules: comparisons of arithmetic expressions joined by and / or / not, parsed safely.

A condition such as `change_1h > change_1h_min`, `(change_15m > 0 or rsi_14_15m > 50)` or
`symbol not in ["XMRUSDT"]` is parsed with Python's `ast` module (never eval) and only these nodes are accepted:
comparisons (<, <=, >, >=, chained allowed), `and`, `or`, `not`, + - * /, unary minus, parentheses, numbers, names,
`SYMBOL.metric` (a reference symbol), `symbol in [...]` / `symbol not in [...]` (or a list parameter), and the calls
`min_n(series, n)`, `max_n(series, n)` and `held_within(rule_type, n)`. Names resolve in this order:

1. the rule's own parameters (numbers or symbol lists, substituted when the rule is compiled);
2. window metrics (`change_1h`, `vol_8h`, ... see apps.metrics.windows.window_metric_names());
3. the long windows from daily bars (`change_3d`, `change_7d`, `change_14d`, `change_30d`, apps.metrics.daily);
4. indicators at minute t, `<indicator>_<timeframe>` (`rsi_14_1h`, `macd_hist_15m`, `bb_lower_4h`, ...
   see INDICATOR_METRICS), on the timeframe's clock-aligned bars, the newest being the forming bar;
5. the newest candle's own fields (`open`, `high`, `low`, `close`, `volume`, `quote_volume`, `trades`).
Metrics and indicators are defined in docs/windows-and-indicators.md, the language in docs/rules.md.

Logic is three-valued: a comparison that reads a missing value (NaN) is unknown, `not` of unknown is unknown,
`x and y` is false when either is false, `x or y` true when either is true; a condition holds only when it is true,
so a missing value never makes a rule fire, negated or not. Compiled conditions evaluate to a boolean array over
the rows of a RuleContext (a shard's symbols, or a backtest's (symbol, minute) windows).
"""

from __future__ import annotations

import ast
import math
import operator
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Protocol

import numpy as np

from apps.metrics.daily import DAILY_METRICS
from apps.metrics.indicators import INDICATOR_NAMES
from apps.metrics.shard_bars import INDICATOR_METRICS
from apps.metrics.windows import LONGEST_WINDOW, window_metric_names, window_minutes
from screener_project.kernel.timeframes import SCREENER_TIMEFRAMES

MAX_CONDITION_LENGTH = 500
MAX_DEPTH = 32
MAX_SYMBOL_LIST = 500

CANDLE_FIELDS = ("open", "high", "low", "close", "volume", "quote_volume", "trades")
# Per-candle series usable in min_n/max_n; body and range_pct are derived from the candle's prices.
SERIES = ("open", "high", "low", "close", "volume", "quote_volume", "body", "range_pct")
FUNCTIONS = ("min_n", "max_n", "held_within")
SYMBOL_NAME = "symbol"
# A reference symbol (`BTCUSDT.change_1h`) or a symbol in a list: exchange symbols are upper-case letters and digits.
SYMBOL_PATTERN = re.compile(r"^[A-Z0-9]{2,30}$")

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
_COMPARE_NAMES = {ast.Eq: "==", ast.NotEq: "!=", ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in"}


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

    @property
    def rows(self) -> int: ...

    def value(self, name: str) -> np.ndarray: ...

    def reduce(self, function: str, series: str, n: int) -> np.ndarray: ...

    def symbol_in(self, symbols: frozenset[str]) -> np.ndarray: ...

    def held(self, held: Held) -> np.ndarray: ...


@cache
def metric_names() -> frozenset[str]:
    return frozenset(window_metric_names())


def reserved_names() -> frozenset[str]:
    """Names a parameter may not take, since a parameter would hide them (series names are only read inside
    min_n/max_n, so a parameter may share one, as flat_8h's `range_pct` does)."""
    return (
        metric_names()
        | frozenset(DAILY_METRICS)
        | frozenset(INDICATOR_METRICS)
        | frozenset(CANDLE_FIELDS)
        | frozenset(FUNCTIONS)
        | {SYMBOL_NAME}
    )


def _unknown_name_hint(name: str) -> str:
    """A pointer to the indicator names when an unknown name looks like one (`rsi_14_2h`, `rsi_15_1h`)."""
    if name.split("_", 1)[0] not in {indicator.split("_", 1)[0] for indicator in INDICATOR_NAMES}:
        return ""
    return (
        f" (indicators are <indicator>_<timeframe> with indicator in {', '.join(INDICATOR_NAMES)}"
        f" and timeframe in {', '.join(SCREENER_TIMEFRAMES)})"
    )


# --- compiled form ------------------------------------------------------------------------------------------------


class Node(ABC):
    """A numeric expression: a value per row (or one for all rows)."""

    @abstractmethod
    def evaluate(self, context: Context) -> np.ndarray | float: ...


@dataclass(frozen=True, slots=True)
class Number(Node):
    value: float

    def evaluate(self, context: Context) -> float:
        return self.value


@dataclass(frozen=True, slots=True)
class Metric(Node):
    """A window metric, a daily change, an indicator, a reference symbol's metric (`BTCUSDT.change_1h`) or a field
    of the newest candle: one value per row."""

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


# Boolean nodes give (true, false) masks; a row in neither is unknown (it read a missing value).
Truth = tuple[np.ndarray, np.ndarray]


class Logic(ABC):
    """A condition: which rows are true and which false (the rest unknown)."""

    @abstractmethod
    def truth(self, context: Context) -> Truth: ...

    def holds(self, context: Context) -> np.ndarray:
        """The true mask alone: what a condition needs unless a `not` asks for the false one too."""
        return self.truth(context)[0]


def _shape(context: Context, mask: np.ndarray | bool) -> np.ndarray:
    return np.broadcast_to(np.asarray(mask, dtype=bool), _rows_shape(context)).copy()


def _rows_shape(context: Context) -> tuple[int, ...]:
    shape = getattr(context, "shape", None)
    return shape if shape is not None else (context.rows,)


@dataclass(frozen=True, slots=True)
class Comparison(Logic):
    """A comparison, possibly chained (`0 < x < 1`: every link must hold); unknown where a link reads NaN."""

    operands: tuple[Node, ...]
    comparisons: tuple[tuple[str, Callable], ...]

    def truth(self, context: Context) -> Truth:
        values = [operand.evaluate(context) for operand in self.operands]
        true = false = None
        for (_, compare), left, right in zip(self.comparisons, values, values[1:], strict=False):
            holds = np.asarray(compare(left, right), dtype=bool)
            known = ~(np.isnan(left) | np.isnan(right))
            fails = known & ~holds
            true = holds if true is None else true & holds
            false = fails if false is None else false | fails
        assert true is not None and false is not None
        return _shape(context, true), _shape(context, false)

    def holds(self, context: Context) -> np.ndarray:
        # NaN compares false, so the true mask needs no missing-value bookkeeping.
        values = [operand.evaluate(context) for operand in self.operands]
        true = None
        for (_, compare), left, right in zip(self.comparisons, values, values[1:], strict=False):
            holds = np.asarray(compare(left, right), dtype=bool)
            true = holds if true is None else true & holds
        assert true is not None
        return true


@dataclass(frozen=True, slots=True)
class SymbolIn(Logic):
    """`symbol in [...]` / `symbol not in [...]`: never unknown, a row always has its symbol."""

    symbols: frozenset[str]
    negated: bool

    def truth(self, context: Context) -> Truth:
        inside = context.symbol_in(self.symbols)
        return (~inside, inside.copy()) if self.negated else (inside.copy(), ~inside)


@dataclass(frozen=True, slots=True)
class Held(Logic):
    """`held_within(rule_type, n)`: the named rule's conditions held at some minute s with t - n <= s < t.

    The named rule is compiled into this node (its current parameters, enabled or not, cooldown ignored); `span` is
    the longest run of candles it reads at one minute, so the 1m block must hold n + span - 1 minutes before t.
    Never unknown: false where no such minute exists.
    """

    rule_type: str
    n: int
    conditions: tuple[Condition, ...] = field(compare=False)
    span: int = 1

    def truth(self, context: Context) -> Truth:
        held = context.held(self)
        return held, ~held


@dataclass(frozen=True, slots=True)
class Not(Logic):
    operand: Logic

    def truth(self, context: Context) -> Truth:
        true, false = self.operand.truth(context)
        return false, true

    def holds(self, context: Context) -> np.ndarray:
        return self.operand.truth(context)[1]


@dataclass(frozen=True, slots=True)
class And(Logic):
    operands: tuple[Logic, ...]

    def truth(self, context: Context) -> Truth:
        true, false = self.operands[0].truth(context)
        for operand in self.operands[1:]:
            t, f = operand.truth(context)
            true &= t
            false |= f
        return true, false

    def holds(self, context: Context) -> np.ndarray:
        true = self.operands[0].holds(context).copy()
        for operand in self.operands[1:]:
            true &= operand.holds(context)
        return true


@dataclass(frozen=True, slots=True)
class Or(Logic):
    operands: tuple[Logic, ...]

    def truth(self, context: Context) -> Truth:
        true, false = self.operands[0].truth(context)
        for operand in self.operands[1:]:
            t, f = operand.truth(context)
            true |= t
            false &= f
        return true, false

    def holds(self, context: Context) -> np.ndarray:
        true = self.operands[0].holds(context).copy()
        for operand in self.operands[1:]:
            true |= operand.holds(context)
        return true


@dataclass(frozen=True, slots=True)
class Condition:
    """One compiled condition: a comparison, a symbol list test, held_within, or and / or / not of them."""

    text: str
    logic: Logic
    # Metric names and min_n/max_n labels the condition reads, in order of appearance.
    inputs: tuple[str, ...]
    # Longest run of candles the condition reads (0 when it reads window metrics only).
    lookback: int
    # Timeframes of the indicators the condition reads, in the order of SCREENER_TIMEFRAMES (empty: none).
    indicator_timeframes: tuple[str, ...] = ()
    # Reference-symbol metrics (`BTCUSDT.change_1h`) and daily changes (`change_7d`) it reads.
    references: tuple[str, ...] = ()
    daily: tuple[str, ...] = ()
    # held_within nodes: evaluated only on the rows still candidates, as they cost more than a comparison.
    held: tuple[Held, ...] = ()
    # The names it reads that are loaded on demand (indicators, daily changes, reference symbols).
    deferred: tuple[str, ...] = ()

    def evaluate(self, context: Context) -> np.ndarray:
        """True where the condition holds (unknown counts as not holding)."""
        with np.errstate(all="ignore"):
            return self.logic.holds(context)


@dataclass(frozen=True, slots=True)
class HeldRule:
    """What held_within needs of the rule it names: its compiled conditions and the candles they read."""

    rule_type: str
    conditions: tuple[Condition, ...]


# rule_type -> HeldRule, or a ConditionError naming what is wrong with it.
HeldRules = Callable[[str], HeldRule]


def deferred_name(name: str) -> bool:
    """A name whose values are loaded on demand, for the rows that still need them: an indicator, a daily change
    or a reference symbol's metric (everything else comes from the block and its window metrics)."""
    return name in INDICATOR_METRICS or name in DAILY_METRICS or "." in name


# --- parsing --------------------------------------------------------------------------------------------------------


def _token(node: ast.AST, text: str) -> str:
    return ast.get_source_segment(text, node) or type(node).__name__


class _Compiler:
    def __init__(
        self, text: str, parameters: Mapping[str, float | tuple[str, ...]], held_rules: HeldRules | None
    ) -> None:
        self.text = text
        self.parameters = parameters
        self.held_rules = held_rules
        self.inputs: list[str] = []
        self.lookback = 0
        self.indicator_timeframes: set[str] = set()
        self.references: list[str] = []
        self.daily: list[str] = []
        self.held: list[Held] = []

    def fail(self, message: str, node: ast.AST | None = None, token: str = "") -> ConditionError:
        token = token or (_token(node, self.text) if node is not None else "")
        return ConditionError(f"{message} in condition {self.text!r}", token=token)

    def note(self, label: str) -> None:
        if label not in self.inputs:
            self.inputs.append(label)

    # Boolean level: and / or / not, comparisons, symbol lists, held_within.
    def logic(self, node: ast.AST, depth: int = 0) -> Logic:
        if depth > MAX_DEPTH:
            raise self.fail("expression nested too deeply", node)
        if isinstance(node, ast.BoolOp):
            operands = tuple(self.logic(value, depth + 1) for value in node.values)
            return And(operands) if isinstance(node.op, ast.And) else Or(operands)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return Not(self.logic(node.operand, depth + 1))
        if isinstance(node, ast.Compare):
            return self.compare(node, depth)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "held_within":
            return self.held_within(node, depth)
        if isinstance(node, ast.Lambda):
            raise self.fail(f"unsupported syntax {_token(node, self.text)!r}", node)
        self.expression(node, depth)  # reports a bad operator or name first, which says more
        raise self.fail("a condition must be a comparison (<, <=, >, >=), and/or/not of them, or held_within", node)

    def compare(self, node: ast.Compare, depth: int) -> Logic:
        if len(node.ops) == 1 and isinstance(node.ops[0], (ast.In, ast.NotIn)):
            return self.symbol_in(node)
        comparisons = []
        for op in node.ops:
            if type(op) not in _COMPARE:
                symbol = _COMPARE_NAMES.get(type(op), type(op).__name__)
                hint = " (only `symbol in [...]` and `symbol not in [...]`)" if symbol in ("in", "not in") else ""
                raise self.fail(f"unsupported comparison {symbol!r}{hint} (use <, <=, >, >=)", token=symbol)
            comparisons.append(_COMPARE[type(op)])
        operands = tuple(self.expression(operand, depth + 1) for operand in (node.left, *node.comparators))
        if all(isinstance(operand, Number) for operand in operands):
            raise self.fail("a comparison must read at least one metric", node)
        return Comparison(operands, tuple(comparisons))

    def symbol_in(self, node: ast.Compare) -> Logic:
        negated = isinstance(node.ops[0], ast.NotIn)
        if not isinstance(node.left, ast.Name) or node.left.id != SYMBOL_NAME:
            raise self.fail(f"only `{SYMBOL_NAME}` can be tested against a list", node.left)
        right = node.comparators[0]
        if isinstance(right, ast.Name) and right.id in self.parameters:
            symbols = self.parameters[right.id]
            if not isinstance(symbols, tuple):
                raise self.fail(f"parameter {right.id!r} is a number, not a symbol list", right, token=right.id)
        elif isinstance(right, (ast.List, ast.Tuple, ast.Set)):
            if len(right.elts) > MAX_SYMBOL_LIST:
                raise self.fail(f"a symbol list is limited to {MAX_SYMBOL_LIST} symbols", right)
            symbols = []
            for element in right.elts:
                if not (isinstance(element, ast.Constant) and isinstance(element.value, str)):
                    raise self.fail("a symbol list holds quoted symbols", element)
                if not SYMBOL_PATTERN.match(element.value):
                    raise self.fail(f"{element.value!r} is not a symbol (upper-case letters and digits)", element)
                symbols.append(element.value)
            symbols = tuple(symbols)
        else:
            raise self.fail("expected a list of symbols or a list parameter", right)
        self.note(SYMBOL_NAME)
        return SymbolIn(frozenset(symbols), negated)

    def held_within(self, node: ast.Call, depth: int) -> Logic:
        usage = "held_within(rule_type, n)"
        if node.keywords or len(node.args) != 2:
            raise self.fail(f"held_within takes exactly two arguments: {usage}", node, token="held_within")
        name_node, n_node = node.args
        if isinstance(name_node, ast.Name):
            rule_type = name_node.id
        elif isinstance(name_node, ast.Constant) and isinstance(name_node.value, str):
            rule_type = name_node.value
        else:
            raise self.fail(f"the first argument of {usage} names a rule", name_node)
        if self.held_rules is None:
            raise self.fail("held_within needs the other rules, which are not available here", node.func)
        try:
            named = self.held_rules(rule_type)
        except ConditionError as error:
            raise self.fail(f"held_within: {error}", name_node, token=rule_type) from None
        span = 1
        for condition in named.conditions:
            bad = condition.indicator_timeframes or condition.references or condition.daily or condition.held
            if bad:
                raise self.fail(
                    f"held_within can look back over window metrics, candle fields, min_n/max_n and symbol lists "
                    f"only, and rule {rule_type!r} reads more",
                    name_node,
                    token=rule_type,
                )
            span = max(span, condition.lookback, *(window_minutes(label) for label in condition.inputs))
        limit = LONGEST_WINDOW - span
        if limit < 1:
            raise self.fail(
                f"rule {rule_type!r} reads {span} minutes at a time, which leaves nothing of the 1m block to look "
                "back over",
                name_node,
                token=rule_type,
            )
        n = self.expression(n_node, depth + 1)
        if not isinstance(n, Number) or not float(n.value).is_integer() or not 1 <= n.value <= limit:
            raise self.fail(
                f"n of held_within({rule_type}, n) must be an integer from 1 to {limit} (the 1m block holds "
                f"{LONGEST_WINDOW} minutes and {rule_type} reads {span} at a time)",
                n_node,
            )
        held = Held(rule_type, int(n.value), named.conditions, span)
        self.held.append(held)
        self.note(f"held_within({rule_type},{held.n})")
        return held

    # Arithmetic level.
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
        if isinstance(node, ast.Attribute):
            return self.reference(node)
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
        if isinstance(node, (ast.Compare, ast.BoolOp)) or (
            isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)
        ):
            raise self.fail("a comparison cannot be nested inside an expression", node)
        raise self.fail(f"unsupported syntax {_token(node, self.text)!r}", node)

    def name(self, node: ast.Name) -> Node:
        name = node.id
        if name in self.parameters:
            value = self.parameters[name]
            if isinstance(value, tuple):
                raise self.fail(f"parameter {name!r} is a symbol list, usable only after `symbol in`", node)
            return Number(value)
        if name in metric_names() or name in CANDLE_FIELDS:
            self.note(name)
            return Metric(name)
        if name in DAILY_METRICS:
            self.note(name)
            if name not in self.daily:
                self.daily.append(name)
            return Metric(name)
        if name in INDICATOR_METRICS:
            self.note(name)
            self.indicator_timeframes.add(INDICATOR_METRICS[name][1])
            return Metric(name)
        if name in FUNCTIONS:
            raise self.fail(f"{name} must be called as {name}(...)", node, token=name)
        if name == SYMBOL_NAME:
            raise self.fail("`symbol` is only tested with `in` / `not in` a list", node, token=name)
        raise self.fail(f"unknown name {name!r}{_unknown_name_hint(name)}", node, token=name)

    def reference(self, node: ast.Attribute) -> Node:
        """`BTCUSDT.change_1h`: a window metric or candle field of another symbol at the same minute."""
        token = _token(node, self.text)
        if not isinstance(node.value, ast.Name) or not SYMBOL_PATTERN.match(node.value.id):
            raise self.fail(f"unsupported syntax {token!r}", node)
        if node.attr not in metric_names() and node.attr not in CANDLE_FIELDS:
            raise self.fail(
                f"{node.attr!r} of a reference symbol must be a window metric or a candle field", node, token=token
            )
        label = f"{node.value.id}.{node.attr}"
        self.note(label)
        if label not in self.references:
            self.references.append(label)
        return Metric(label)

    def call(self, node: ast.Call, depth: int) -> Node:
        if not isinstance(node.func, ast.Name) or node.func.id not in ("min_n", "max_n"):
            if isinstance(node.func, ast.Name) and node.func.id == "held_within":
                raise self.fail("held_within is a condition, not a number", node, token="held_within")
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


def condition_compile(
    text: str,
    *,
    parameters: Mapping[str, float | tuple[str, ...]] | None = None,
    held_rules: HeldRules | None = None,
) -> Condition:
    """Parse and validate one condition; raises ConditionError naming the bad token.

    `held_rules` resolves the rule a `held_within(rule_type, n)` names; without it held_within is refused.
    """
    parameters = parameters or {}
    if not isinstance(text, str) or not text.strip():
        raise ConditionError("a condition must be a non-empty text", token=str(text)[:40])
    if len(text) > MAX_CONDITION_LENGTH:
        raise ConditionError(f"a condition is limited to {MAX_CONDITION_LENGTH} characters", token=text[:40])
    text = text.strip()
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError) as error:  # ValueError: an integer literal beyond Python's digit limit
        offset = (getattr(error, "offset", None) or 0) if isinstance(error, SyntaxError) else 0
        # Without a position (a condition that ends too early, such as `x > 0 or`), the last word is the culprit.
        token = text[offset - 1 : offset + 9] if offset > 0 else text.split()[-1][:20]
        raise ConditionError(f"syntax error near {token!r} in condition {text!r}", token=token) from None
    compiler = _Compiler(text, parameters, held_rules)
    logic = compiler.logic(tree.body)
    if not compiler.inputs:
        raise compiler.fail("a condition must read at least one metric", token=text)
    return Condition(
        text=text,
        logic=logic,
        inputs=tuple(compiler.inputs),
        lookback=compiler.lookback,
        indicator_timeframes=indicator_timeframes_ordered(compiler.indicator_timeframes),
        references=tuple(compiler.references),
        daily=tuple(compiler.daily),
        held=tuple(compiler.held),
        deferred=tuple(name for name in compiler.inputs if deferred_name(name)),
    )


def indicator_timeframes_ordered(timeframes: Iterable[str]) -> tuple[str, ...]:
    """Indicator timeframes in their canonical order (5m first), without repeats."""
    wanted = set(timeframes)
    return tuple(tf for tf in SCREENER_TIMEFRAMES if tf in wanted)


def held_rule_types(conditions: object) -> list[str]:
    """The rule types the texts name in held_within(...), for resolving them before compiling."""
    if not isinstance(conditions, list):
        return []
    found: list[str] = []
    for text in conditions:
        if isinstance(text, str):
            for name in re.findall(r"held_within\s*\(\s*['\"]?([A-Za-z0-9_-]+)", text):
                if name not in found:
                    found.append(name)
    return found


def parameters_validate(parameters: object) -> dict[str, float | tuple[str, ...]]:
    """Check a rule's parameters: an object of identifier -> finite number or list of symbols; raises
    ConditionError naming the key."""
    if not isinstance(parameters, Mapping):
        raise ConditionError("parameters must be an object of name -> number", token="parameters")
    out: dict[str, float | tuple[str, ...]] = {}
    for name, value in parameters.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ConditionError(f"parameter name {name!r} is not a valid identifier", token=str(name)[:40])
        if name in reserved_names():
            raise ConditionError(f"parameter {name!r} would hide the metric of the same name", token=name)
        if isinstance(value, list):
            if len(value) > MAX_SYMBOL_LIST or not all(
                isinstance(item, str) and SYMBOL_PATTERN.match(item) for item in value
            ):
                raise ConditionError(
                    f"parameter {name!r} must be a number or a list of at most {MAX_SYMBOL_LIST} symbols "
                    "(upper-case letters and digits)",
                    token=name,
                )
            out[name] = tuple(value)
            continue
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
