"""RSI 14, MACD (12, 26, 9) and Bollinger Bands (20, 2) over a (rows x K) close matrix, vectorized across rows.

Reference semantics are the `ta` library (0.11, fillna=False) applied to each row's closes, the oldest first. ta builds
on pandas' ewm(adjust=False) and rolling(); the recursion below is pandas' own (ewma in window/aggregations.pyx),
operation for operation, so results agree with ta to the last bit or nearly. A row may start with NaN (a symbol
with fewer than K bars of history): it then equals ta on the closes from its first bar on. A NaN inside a row (a bar
that never arrived) is treated as ta treats it.
"""

from __future__ import annotations

import numpy as np

from screener_project.kernel.compiled import compiled

RSI_WINDOW = 14
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
BB_WINDOW, BB_DEV = 20, 2.0


def _first_valid(values: np.ndarray) -> np.ndarray:
    valid = ~np.isnan(values)
    return np.where(valid.any(axis=1), valid.argmax(axis=1), values.shape[1])


@compiled
def _ewm_steps(columns: np.ndarray, alpha: np.ndarray, last_only: bool) -> np.ndarray:  # pragma: no cover - compiled
    """The recursion of _ewm_clean, compiled, over a (steps, rows) array: one step of every row at a time.

    Rows are independent, so the inner loop over them pipelines (a row's own steps form a chain of dependent
    divisions). Same operations in the same order as pandas (no fast-math: no reassociation, no fused
    multiply-add), so results are bit-identical to pandas' ewm.
    """
    steps, rows = columns.shape
    old_wt = 1.0 * (1.0 - alpha)
    denominator = old_wt + alpha
    weighted = columns[0].copy()
    out = np.empty((1 if last_only else steps, rows))
    if not last_only:
        out[0] = weighted
    for i in range(1, steps):
        for r in range(rows):
            cur = columns[i, r]
            updated = (old_wt[r] * weighted[r] + alpha[r] * cur) / denominator[r]
            # pandas skips the update when the value equals the average (no drift on constant series).
            weighted[r] = updated if weighted[r] != cur else weighted[r]
        if not last_only:
            out[i] = weighted
    if last_only:
        out[0] = weighted
    return out


def _ewm_clean(x: np.ndarray, alpha: np.ndarray, min_periods: np.ndarray, *, last_only: bool = False) -> np.ndarray:
    """pandas ewm(adjust=False).mean() of rows without NaN: old_wt is always 1 * (1 - alpha).

    With last_only, only the newest value of each row (shape (rows,)), which saves writing the whole series.
    """
    columns = np.ascontiguousarray(x.T, dtype=np.float64)
    out = _ewm_steps(columns, np.ascontiguousarray(alpha, dtype=np.float64), last_only)
    if last_only:
        return np.where(len(columns) >= min_periods, out[0], np.nan)
    out[np.arange(len(columns))[:, None] < min_periods[None, :] - 1] = np.nan
    return out.T


def _ewm_general(x: np.ndarray, alpha: np.ndarray, min_periods: np.ndarray) -> np.ndarray:
    """pandas ewm(adjust=False, ignore_na=False).mean() with NaN anywhere."""
    factor = 1.0 - alpha
    columns = np.ascontiguousarray(x.T)
    out = np.empty_like(columns)
    weighted = columns[0].copy()
    nobs = (~np.isnan(weighted)).astype(np.int64)
    old_wt = np.ones(len(weighted))
    out[0] = np.where(nobs >= min_periods, weighted, np.nan)
    for i in range(1, len(columns)):
        cur = columns[i]
        observed = ~np.isnan(cur)
        nobs += observed
        started = ~np.isnan(weighted)
        old_wt = np.where(started, old_wt * factor, old_wt)
        with np.errstate(invalid="ignore"):
            updated = (old_wt * weighted + alpha * cur) / (old_wt + alpha)
        weighted = np.where(started & observed & (weighted != cur), updated, weighted)
        old_wt = np.where(started & observed, 1.0, old_wt)
        weighted = np.where(~started & observed, cur, weighted)
        out[i] = np.where(nobs >= min_periods, weighted, np.nan)
    return out.T


def ewm_mean(
    values: np.ndarray, *, com: float | np.ndarray, min_periods: int | np.ndarray, last_only: bool = False
) -> np.ndarray:
    """Row-wise pandas `ewm(com=com, min_periods=min_periods, adjust=False).mean()`; com and min_periods may vary
    by row, so several series of one shard share one pass over the bars. last_only: just the newest column."""
    rows_count = values.shape[0]
    alpha = 1.0 / (1.0 + np.broadcast_to(np.asarray(com, dtype=np.float64), (rows_count,)))
    min_periods = np.broadcast_to(np.asarray(min_periods, dtype=np.int64), (rows_count,))
    if values.size == 0:
        return np.full(rows_count if last_only else values.shape, np.nan)
    if not np.isnan(values).any():  # the usual shard: every row has its K values
        return _ewm_clean(values, alpha, min_periods, last_only=last_only)
    first = _first_valid(values)
    after_start = np.arange(values.shape[1])[None, :] >= first[:, None]
    clean = ~(np.isnan(values) & after_start).any(axis=1)
    starts = np.unique(first[clean])
    if last_only and clean.all() and len(starts) == 1 and starts[0] < values.shape[1]:
        return _ewm_clean(values[:, starts[0] :], alpha, min_periods, last_only=True)
    out = np.full(values.shape, np.nan)
    if clean.all() and len(starts) == 1 and starts[0] < values.shape[1]:  # the usual shard: one slice, no copies
        out[:, starts[0] :] = _ewm_clean(values[:, starts[0] :], alpha, min_periods)
        return out[:, -1] if last_only else out
    # Rows that only start late are the clean recursion on their tail; group them by start to stay vectorized.
    for start in starts:
        if start >= values.shape[1]:
            continue
        rows = np.flatnonzero(clean & (first == start))
        out[rows, start:] = _ewm_clean(values[rows, start:], alpha[rows], min_periods[rows])
    dirty = np.flatnonzero(~clean)
    if len(dirty):
        out[dirty] = _ewm_general(values[dirty], alpha[dirty], min_periods[dirty])
    return out[:, -1] if last_only else out


def _rsi_directions(close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    diff = np.full(close.shape, np.nan)
    diff[:, 1:] = close[:, 1:] - close[:, :-1]
    with np.errstate(invalid="ignore"):
        up = np.where(diff > 0, diff, 0.0)
        down = -np.where(diff < 0, diff, 0.0)
    # ta turns the NaN first difference into 0; before a row's first close there is no series at all.
    if np.isnan(close[:, 0]).any():
        leading = np.arange(close.shape[1])[None, :] < _first_valid(close)[:, None]
        up[leading] = np.nan
        down[leading] = np.nan
    return up, down


def _rsi_from(ema_up: np.ndarray, ema_down: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 100 - (100 / (1 + ema_up / ema_down))
    return np.where(ema_down == 0, 100.0, value)


def _rsi_com(window: int) -> float:
    return (1 - 1 / window) / (1 / window)  # pandas' conversion of alpha = 1 / window


def _span_com(span: int) -> float:
    return (span - 1) / 2


def rsi(close: np.ndarray, window: int = RSI_WINDOW) -> np.ndarray:
    """ta.momentum.RSIIndicator(close, window).rsi() per row."""
    up, down = _rsi_directions(close)
    emas = ewm_mean(np.concatenate([up, down]), com=_rsi_com(window), min_periods=window)
    return _rsi_from(emas[: len(close)], emas[len(close) :])


def macd(
    close: np.ndarray, fast: int = MACD_FAST, slow: int = MACD_SLOW, signal: int = MACD_SIGNAL
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(line, signal, histogram) as ta.trend.MACD(close, slow, fast, signal).macd(), .macd_signal(), .macd_diff()."""
    n = len(close)
    com = np.repeat([_span_com(fast), _span_com(slow)], n)
    emas = ewm_mean(np.concatenate([close, close]), com=com, min_periods=np.repeat([fast, slow], n))
    line = emas[:n] - emas[n:]
    signal_line = ewm_mean(line, com=_span_com(signal), min_periods=signal)
    return line, signal_line, line - signal_line


def bollinger_last(
    close: np.ndarray, window: int = BB_WINDOW, dev: float = BB_DEV
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(upper, middle, lower) at the last column, as ta.volatility.BollingerBands(close, window, dev) there.

    NaN when any of the last `window` closes is missing (ta's min_periods = window).
    """
    tail = close[:, -window:]
    if tail.shape[1] < window:
        nan = np.full(len(close), np.nan)
        return nan, nan.copy(), nan.copy()
    middle = tail.mean(axis=1)
    std = np.sqrt(((tail - middle[:, None]) ** 2).mean(axis=1))
    # pandas' rolling variance is exactly 0 on a constant window; the two-pass mean may leave a 1e-17 residue.
    std = np.where(tail.max(axis=1) == tail.min(axis=1), 0.0, std)
    return middle + dev * std, middle, middle - dev * std


INDICATOR_NAMES = ("rsi_14", "macd", "macd_signal", "macd_hist", "bb_upper", "bb_middle", "bb_lower")


def _alpha(com: float) -> float:
    return float(1.0 / (1.0 + np.float64(com)))  # as ewm_mean derives it


@compiled
def _ewm_step(weighted: float, cur: float, alpha: float) -> float:  # pragma: no cover - compiled
    old_wt = 1.0 * (1.0 - alpha)
    if weighted == cur:  # pandas leaves the average alone when it equals the value
        return weighted
    return (old_wt * weighted + alpha * cur) / (old_wt + alpha)


@compiled
def _rsi_macd_steps(
    columns: np.ndarray,
    starts: np.ndarray,
    rsi_alpha: float,
    fast_alpha: float,
    slow_alpha: float,
    signal_alpha: float,
    signal_start: int,
) -> np.ndarray:  # pragma: no cover - compiled
    """RSI's up and down averages, MACD's line and signal line at the newest bar of (bars, rows) closes, each row
    without NaN from its bar `starts[r]` on (before it, no bar at all), in one pass over the bars: the recursions of
    ewm_mean and _rsi_directions, step for step, so the values are bit-identical to the general path. Returns
    (4, rows): up average, down average, line, signal; the caller blanks what is too short to have a value."""
    steps, rows = columns.shape
    out = np.full((4, rows), np.nan)
    for r in range(rows):
        start = starts[r]
        if start >= steps:
            continue
        previous = columns[start, r]
        up_w, down_w = 0.0, -0.0  # the first difference is NaN, which ta turns into 0 (down is -0.0 there)
        fast_w, slow_w = previous, previous
        line, signal_w = 0.0, 0.0
        for i in range(start + 1, steps):
            cur = columns[i, r]
            diff = cur - previous
            previous = cur
            up_w = _ewm_step(up_w, diff if diff > 0 else 0.0, rsi_alpha)
            down_w = _ewm_step(down_w, -(diff if diff < 0 else 0.0), rsi_alpha)
            fast_w = _ewm_step(fast_w, cur, fast_alpha)
            slow_w = _ewm_step(slow_w, cur, slow_alpha)
            if i - start >= signal_start:
                line = fast_w - slow_w
                signal_w = line if i - start == signal_start else _ewm_step(signal_w, line, signal_alpha)
        out[0, r], out[1, r], out[2, r], out[3, r] = up_w, down_w, line, signal_w
    return out


def _indicators_last_clean(close: np.ndarray, starts: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """indicators_last for rows without NaN from their first bar `starts[r]` on (all from 0 when not given)."""
    rows, bars = close.shape
    starts = np.zeros(rows, dtype=np.int64) if starts is None else starts.astype(np.int64)
    columns = np.ascontiguousarray(close.T, dtype=np.float64)
    up, down, line, signal = _rsi_macd_steps(
        columns,
        starts,
        _alpha(_rsi_com(RSI_WINDOW)),
        _alpha(_span_com(MACD_FAST)),
        _alpha(_span_com(MACD_SLOW)),
        _alpha(_span_com(MACD_SIGNAL)),
        MACD_SLOW - 1,  # the line's first value: the slow average's min_periods
    )
    # The min_periods of ewm_mean, counted in bars from each row's first: RSI 14, the slow average 26, the signal
    # line 9 values of the line after that.
    length = bars - starts
    rsi_value = np.where(length >= RSI_WINDOW, _rsi_from(up, down), np.nan)
    line = np.where(length >= MACD_SLOW, line, np.nan)
    signal = np.where(length >= MACD_SLOW + MACD_SIGNAL - 1, signal, np.nan)
    upper, middle, lower = bollinger_last(close)
    return {
        "rsi_14": rsi_value,
        "macd": line,
        "macd_signal": signal,
        "macd_hist": line - signal,
        "bb_upper": upper,
        "bb_middle": middle,
        "bb_lower": lower,
    }


def indicators_last(close: np.ndarray) -> dict[str, np.ndarray]:
    """Every indicator at the newest bar of each row: `{"rsi_14": array over rows, ...}`.

    Rows whose only NaN are leading (a symbol, or a timeframe, with fewer than K bars of history) take the compiled
    pass from their first bar; only rows with a missing bar after their first go through the general passes.
    """
    if not close.size:
        return _indicators_last_general(close)
    missing = np.isnan(close)
    if not missing.any():
        return _indicators_last_clean(close)  # the usual shard: one compiled pass
    first = _first_valid(close)
    gappy = (missing & (np.arange(close.shape[1])[None, :] >= first[:, None])).any(axis=1)
    if not gappy.any():
        return _indicators_last_clean(close, first)
    if gappy.all():
        return _indicators_last_general(close)
    clean = _indicators_last_clean(close[~gappy], first[~gappy])
    general = _indicators_last_general(close[gappy])
    out = {}
    for name in INDICATOR_NAMES:
        values = np.empty(len(close))
        values[~gappy] = clean[name]
        values[gappy] = general[name]
        out[name] = values
    return out


def _indicators_last_general(close: np.ndarray) -> dict[str, np.ndarray]:
    # Shared passes: RSI's up and down averages (newest value only), MACD's fast and slow averages (whole series,
    # for the signal line), then the signal line (newest value only).
    n = len(close)
    up, down = _rsi_directions(close)
    rsi_emas = ewm_mean(np.concatenate([up, down]), com=_rsi_com(RSI_WINDOW), min_periods=RSI_WINDOW, last_only=True)
    com = np.repeat([_span_com(MACD_FAST), _span_com(MACD_SLOW)], n)
    periods = np.repeat([MACD_FAST, MACD_SLOW], n)
    emas = ewm_mean(np.concatenate([close, close]), com=com, min_periods=periods)
    line = emas[:n] - emas[n:]
    signal_last = ewm_mean(line, com=_span_com(MACD_SIGNAL), min_periods=MACD_SIGNAL, last_only=True)
    upper, middle, lower = bollinger_last(close)
    return {
        "rsi_14": _rsi_from(rsi_emas[:n], rsi_emas[n:]),
        "macd": line[:, -1],
        "macd_signal": signal_last,
        "macd_hist": line[:, -1] - signal_last,
        "bb_upper": upper,
        "bb_middle": middle,
        "bb_lower": lower,
    }
