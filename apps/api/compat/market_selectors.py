"""Reads behind the market endpoints of the compatibility surface (apps/api/compat/README.md), in the client's shapes.

Metrics and tickers come from the Redis snapshot the indicators stage writes (one round trip); klines from stored
1m candles (aggregated in SQL as GET /api/candles does) with older bars from the Redis bar history; alerts from
alert_history.
"""

from __future__ import annotations

import gzip
import logging
import threading
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
import orjson

from apps.alerts.models import AlertHistory, AlertRule
from apps.alerts.selectors import alert_payload
from apps.api.selectors import candle_rows
from apps.collector.bars_store import bar_count, bars_matrices
from apps.collector.candles import FIELD_INDEX, MINUTE_MS
from apps.metrics.models import MetricsCalculated
from apps.metrics.selectors import SNAPSHOT_FIELDS
from screener_project.kernel.clock import iso_utc
from screener_project.kernel.redis_keys import active_symbols_key, redis_client, snapshot_key
from screener_project.kernel.timeframes import BAR_INTERVALS, KLINE_INTERVAL_MINUTES, SCREENER_TIMEFRAMES

from .base import rule_id
from .rule_catalogue import CLIENT_RULE_TYPES, send_all_rules

logger = logging.getLogger(__name__)

# Binance kline intervals the stored 1m candles can build (bars aligned on the epoch, as Binance aligns them up to 1d).
KLINE_INTERVALS: dict[str, timedelta] = {
    name: timedelta(minutes=minutes) for name, minutes in KLINE_INTERVAL_MINUTES.items()
}
_FIBONACCI = (("r3", "fib_r3"), ("r2", "fib_r2"), ("r1", "fib_r1"), ("pivot", "fib_pivot"), ("s1", "fib_s1"),
              ("s2", "fib_s2"), ("s3", "fib_s3"))  # fmt: skip


# --- numbers as Binance writes them -----------------------------------------------------------------------------


def binance_number(value: float) -> str:
    """A decimal string without exponent, at most 8 decimals, no trailing zeros ("97531.2", "0.00001201").

    The shortest text that reads back as the same double (the exchange's own digits for a stored price), so sums
    show no float noise; without the symbol's tick size, Binance's zero padding cannot be reproduced.
    """
    text = repr(round(value, 8))
    if "e" in text:
        text = format(Decimal(text), "f")
    text = text.removesuffix(".0")
    return "0" if text == "-0" else text


# --- snapshot ---------------------------------------------------------------------------------------------------


class _FragmentCache:
    """The body of a list endpoint built from per-symbol fragments of the snapshot.

    symbol -> (snapshot body, its JSON fragment in the client's shape): a body unchanged since the last poll (the
    snapshot changes once a minute, the client polls every 2 s) is neither parsed nor encoded again; while no
    fragment changed, the whole response (and its gzip) is reused as it is.
    """

    def __init__(self, build) -> None:
        self._build = build
        self._entries: dict[str, tuple[bytes, bytes | None]] = {}
        self._body: bytes | None = None
        self._gzipped: bytes | None = None
        self._lock = threading.Lock()

    def body(self, bodies: dict[str, bytes], *, gzipped: bool = False) -> bytes:
        with self._lock:
            entries = self._entries
            changed = self._body is None or len(bodies) != len(entries)
            fresh: dict[str, tuple[bytes, bytes | None]] = {}
            for symbol in sorted(bodies):
                body = bodies[symbol]
                cached = entries.get(symbol)
                if cached is None or cached[0] != body:
                    cached = (body, self._build(symbol, body))
                    changed = True
                fresh[symbol] = cached
            self._entries = fresh  # symbols gone from the snapshot leave the cache too
            if changed:
                self._body = b"[" + b",".join(f for _, f in fresh.values() if f is not None) + b"]"
                self._gzipped = None
            if not gzipped:
                return self._body
            if self._gzipped is None:
                # Level 1: a few ms once a minute, and the 2-second poll's ~1.7 MB (500 symbols) shrinks ~4x.
                self._gzipped = gzip.compress(self._body, compresslevel=1, mtime=0)
            return self._gzipped

    def clear(self) -> None:
        with self._lock:
            self._entries, self._body, self._gzipped = {}, None, None


def snapshot_bodies() -> dict[str, bytes]:
    """symbol -> raw snapshot body, for the symbols being collected (every symbol when none is: the collector is
    down, so the last known values are shown). One Redis round trip."""
    pipe = redis_client().pipeline(transaction=False)
    pipe.hgetall(snapshot_key())
    pipe.smembers(active_symbols_key())
    raw, active = pipe.execute()
    bodies = {name.decode(): body for name, body in raw.items()}
    if active:
        keep = {name.decode() for name in active}
        bodies = {symbol: body for symbol, body in bodies.items() if symbol in keep}
    return bodies


def _loads(symbol: str, body: bytes) -> dict | None:
    try:
        found = orjson.loads(body)
    except ValueError:
        logger.warning("Unreadable metrics snapshot of %s", symbol)
        return None
    return found if isinstance(found, dict) and isinstance(found.get("timeframes"), dict) else None


def _timeframe_entry(values: dict, time: str | None) -> dict:
    get = values.get
    return {
        "time": time,
        "open": get("open"),
        "high": get("high"),
        "low": get("low"),
        "close": get("close"),
        "volume": get("volume"),
        "price_change": get("change_pct"),
        "vcp": get("vcp"),
        "rsi_14": get("rsi_14"),
        "macd": get("macd"),
        "macd_signal": get("macd_signal"),
        "bb_upper": get("bb_upper"),
        "bb_middle": get("bb_middle"),
        "bb_lower": get("bb_lower"),
        "fibonacci": {name: get(field) for name, field in _FIBONACCI},
    }


def metrics_entry(snapshot: dict) -> dict:
    """One symbol of GET {p}/api/metrics/: every timeframe present (nulls where unknown), `time` the snapshot's."""
    timeframes = snapshot.get("timeframes") or {}
    time = snapshot.get("timestamp")
    return {
        "symbol": snapshot.get("symbol"),
        "timeframes": {tf: _timeframe_entry(timeframes.get(tf) or {}, time) for tf in SCREENER_TIMEFRAMES},
    }


def _metrics_fragment(symbol: str, body: bytes) -> bytes | None:
    snapshot = _loads(symbol, body)
    # orjson writes NaN as null.
    return None if snapshot is None else orjson.dumps(metrics_entry({**snapshot, "symbol": symbol}))


def _metrics_from_database() -> list[dict]:
    """The newest minute of metrics_calculated, for when the snapshot is gone (Redis flushed or restarted)."""
    newest = MetricsCalculated.objects.order_by("-time").values_list("time", flat=True).first()
    if newest is None:
        return []
    # Rows are stamped with minute t's open; the snapshot (and so `time`) with its close.
    timestamp = iso_utc(newest + timedelta(minutes=1))
    snapshots: dict[str, dict] = {}
    for row in MetricsCalculated.objects.filter(time=newest).values("symbol", "timeframe", *SNAPSHOT_FIELDS):
        symbol = row.pop("symbol")
        entry = snapshots.setdefault(symbol, {"symbol": symbol, "timestamp": timestamp, "timeframes": {}})
        entry["timeframes"][row.pop("timeframe")] = row
    return [metrics_entry(snapshots[symbol]) for symbol in sorted(snapshots)]


def metrics_all_json(*, gzipped: bool = False) -> bytes:
    """The body of GET {p}/api/metrics/: a JSON array, one object per active symbol, by symbol."""
    bodies = snapshot_bodies()
    if not bodies:
        found = orjson.dumps(_metrics_from_database())
        return gzip.compress(found, compresslevel=1) if gzipped else found
    return _metrics_cache.body(bodies, gzipped=gzipped)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return float(value)


def ticker_entry(symbol: str, snapshot: dict) -> dict | None:
    """A Binance 24 h ticker from the 1d window of a snapshot; None while the symbol has less than a day of history."""
    day = (snapshot.get("timeframes") or {}).get("1d") or {}
    open_, high, low, close = (_number(day.get(name)) for name in ("open", "high", "low", "close"))
    quote_volume, vwap, change = _number(day.get("volume")), _number(day.get("vwap")), _number(day.get("change_pct"))
    if None in (open_, high, low, close, quote_volume) or not open_:
        return None
    if change is None:
        change = (close - open_) / open_ * 100
    ticker = {
        "symbol": symbol,
        "priceChange": binance_number(close - open_),
        "priceChangePercent": f"{change:.3f}",
        "weightedAvgPrice": binance_number(vwap if vwap is not None else close),
        "lastPrice": binance_number(close),
        "openPrice": binance_number(open_),
        "highPrice": binance_number(high),
        "lowPrice": binance_number(low),
        "volume": binance_number(quote_volume / vwap if vwap else 0.0),
        "quoteVolume": binance_number(quote_volume),
    }
    close_ms = _iso_ms(snapshot.get("timestamp"))
    if close_ms is not None:
        ticker["openTime"] = close_ms - 1440 * MINUTE_MS
        ticker["closeTime"] = close_ms - 1
    trades = _number(day.get("trades"))
    if trades is not None:
        ticker["count"] = int(trades)
    return ticker


def _iso_ms(value: object) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def _ticker_fragment(symbol: str, body: bytes) -> bytes | None:
    snapshot = _loads(symbol, body)
    ticker = None if snapshot is None else ticker_entry(symbol, snapshot)
    return None if ticker is None else orjson.dumps(ticker)


def tickers_all_json(*, gzipped: bool = False) -> bytes:
    """The body of GET {p}/api/tickers: a JSON array of 24 h tickers of the active symbols with a day of history."""
    return _tickers_cache.body(snapshot_bodies(), gzipped=gzipped)


_metrics_cache = _FragmentCache(_metrics_fragment)
_tickers_cache = _FragmentCache(_ticker_fragment)


def caches_clear() -> None:
    """Forget the encoded fragments (tests: a new snapshot with the same bytes never happens in production)."""
    _metrics_cache.clear()
    _tickers_cache.clear()


# --- alerts -----------------------------------------------------------------------------------------------------


def rule_descriptions() -> dict[str, str]:
    """rule_type -> what the client shows for it: the rule's description, else its name."""
    return {
        rule_type: description or name
        for rule_type, name, description in AlertRule.objects.values_list("rule_type", "name", "description")
    }


def compat_alert(alert: dict, descriptions: dict[str, str]) -> dict:
    """An /api alert object (alert_payload, docs/api.md) in the client's shape."""
    alert_type = str(alert.get("alert_type", ""))
    return {
        "id": alert.get("id"),
        "symbol": alert.get("symbol"),
        "rule_type": rule_id(alert_type),
        "description": descriptions.get(alert_type) or alert_type.replace("_", " "),
        "timestamp": alert.get("triggered_at"),
        "price": alert.get("price"),
        "metadata": alert.get("metadata") or {},
    }


def compat_alerts_list(*, symbol: str | None, rule_type: str | None, since: datetime | None, limit: int) -> list[dict]:
    """Fired alerts newest first in the client's shape: the rules the client can switch (every rule when the
    operator sends them all)."""
    alerts = AlertHistory.objects.all()
    if not send_all_rules():
        alerts = alerts.filter(alert_type__in=CLIENT_RULE_TYPES)
    if symbol:
        alerts = alerts.filter(symbol=symbol)
    if rule_type:
        alerts = alerts.filter(alert_type=rule_type)
    if since is not None:
        alerts = alerts.filter(triggered_at__gte=since)
    page = list(alerts.order_by("-triggered_at", "symbol", "alert_type")[:limit])
    descriptions = rule_descriptions() if page else {}
    return [compat_alert(alert_payload(alert), descriptions) for alert in page]


# --- klines -----------------------------------------------------------------------------------------------------

_ROW_FIELDS = ("open", "high", "low", "close", "volume", "quote_volume", "trades", "taker_buy_volume",
               "taker_buy_quote_volume")  # fmt: skip


def _kline(open_ms: int, step_ms: int, values: Iterable[float]) -> list:
    o, h, l, c, v, q, n, tv, tq = values  # noqa: E741
    return [
        open_ms,
        binance_number(o),
        binance_number(h),
        binance_number(l),
        binance_number(c),
        binance_number(v),
        open_ms + step_ms - 1,
        binance_number(q),
        int(n or 0),
        binance_number(tv or 0.0),
        binance_number(tq or 0.0),
        "0",
    ]


def _candle_rows(*, symbol: str, interval: str, limit: int) -> list[tuple]:
    """(open ms, open, high, low, close, volume, quote volume, trades, taker base, taker quote), newest first."""
    rows = candle_rows(symbol=symbol, step=KLINE_INTERVALS[interval], limit=limit)
    return [(int(row[0].timestamp() * 1000), *row[1:]) for row in rows]


def _ring_rows(*, symbol: str, interval: str, newest_open_ms: int, count: int) -> dict[int, tuple]:
    """open ms -> bar from the Redis bar history (REST klines at start-up, rolled forward since), up to `count`."""
    block = bars_matrices(
        redis_client(), [symbol], last_open_ms={interval: newest_open_ms}, count=min(count, bar_count())
    )[interval][:, 0, :]
    out = {}
    for column in block.T:
        if np.isnan(column[FIELD_INDEX["open"]]):
            continue
        out[int(column[FIELD_INDEX["open_time"]])] = tuple(float(column[FIELD_INDEX[f]]) for f in _ROW_FIELDS)
    return out


def _more_complete(ring: tuple, stored: tuple) -> bool:
    """The ring's bar covers minutes the stored candles no longer have (the oldest bar, cut by the retention)."""
    trades, quote = _ROW_FIELDS.index("trades"), _ROW_FIELDS.index("quote_volume")
    return ring[trades] > (stored[trades] or 0) or ring[quote] > (stored[quote] or 0) * (1 + 1e-6)


def klines_list(*, symbol: str, interval: str, limit: int) -> list[list]:
    """The newest `limit` klines of `interval`, oldest first, in Binance's 12-field layout (newest may be forming).

    Bars come from the stored 1m candles; for the intervals the bar history keeps (15m..1d), bars older than the
    candles' retention come from it, and so does the oldest candle-built bar when the retention cut it short.
    """
    step_ms = int(KLINE_INTERVALS[interval].total_seconds() * 1000)
    rows = {row[0]: tuple(row[1:]) for row in _candle_rows(symbol=symbol, interval=interval, limit=limit)}
    if interval in BAR_INTERVALS and rows:
        newest, oldest = max(rows), min(rows)
        ring = _ring_rows(symbol=symbol, interval=interval, newest_open_ms=newest, count=limit)
        for open_ms, bar in ring.items():
            if open_ms < oldest or (open_ms == oldest and open_ms != newest and _more_complete(bar, rows[oldest])):
                rows[open_ms] = bar
    opens = sorted(rows)[-limit:]
    return [_kline(open_ms, step_ms, rows[open_ms]) for open_ms in opens]
