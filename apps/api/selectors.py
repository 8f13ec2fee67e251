"""Reads behind the REST API: the metrics snapshot, candles at any interval, symbols, users' settings."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import connection

from apps.alerts.models import UserSettings
from apps.collector.candles import FIELDS
from apps.collector.models import Candle1m, Symbol
from apps.metrics.models import MetricsCalculated
from apps.metrics.selectors import SNAPSHOT_FIELDS, snapshot_read
from screener_project.kernel.clock import iso_utc
from screener_project.kernel.redis_keys import redis_client, snapshot_key
from screener_project.kernel.timeframes import CANDLE_INTERVALS, KLINE_INTERVAL_MINUTES

logger = logging.getLogger(__name__)

INTERVALS: dict[str, timedelta] = {name: timedelta(minutes=KLINE_INTERVAL_MINUTES[name]) for name in CANDLE_INTERVALS}
# The stored columns of a candle besides its time.
CANDLE_FIELDS = FIELDS[1:]


def _snapshot(symbol: str) -> dict | None:
    try:
        found = snapshot_read(redis_client(), symbols=[symbol]).get(symbol)
    except ValueError:
        logger.warning("Unreadable metrics snapshot of %s", symbol)
        return None
    return found if isinstance(found, dict) else None


def symbol_exists(*, symbol: str) -> bool:
    """Known to the screener: listed in symbols, or present in the live snapshot or the stored candles."""
    return (
        Symbol.objects.filter(symbol=symbol).exists()
        or bool(redis_client().hexists(snapshot_key(), symbol))
        or Candle1m.objects.filter(symbol=symbol).exists()
    )


def metrics_latest(*, symbol: str) -> dict:
    """The newest metrics of a symbol per timeframe: the Redis snapshot, else the newest metrics_calculated rows."""
    snapshot = _snapshot(symbol)
    if snapshot is not None:
        return snapshot
    newest = MetricsCalculated.objects.filter(symbol=symbol).order_by("-time").values_list("time", flat=True).first()
    if newest is None:
        return {"symbol": symbol, "timestamp": None, "timeframes": {}}
    rows = MetricsCalculated.objects.filter(symbol=symbol, time=newest).values("timeframe", *SNAPSHOT_FIELDS)
    timeframes = {row.pop("timeframe"): row for row in rows}
    # Rows are keyed by minute t's open; the snapshot's timestamp is its close (when the values became known).
    return {"symbol": symbol, "timestamp": iso_utc(newest + timedelta(minutes=1)), "timeframes": timeframes}


_CANDLES_1M_SQL = """
SELECT time, open, high, low, close, volume, quote_volume, trades, taker_buy_volume, taker_buy_quote_volume
FROM candles_1m WHERE symbol = %(symbol)s ORDER BY time DESC LIMIT %(limit)s
"""
# Bars aligned on UTC boundaries (epoch origin), as on Binance charts; only the newest `limit` bars are scanned.
_CANDLES_AGG_SQL = """
WITH newest AS (SELECT max(time) AS t FROM candles_1m WHERE symbol = %(symbol)s)
SELECT date_bin(%(step)s, c.time, TIMESTAMPTZ '1970-01-01') AS bucket,
       (array_agg(c.open ORDER BY c.time))[1], max(c.high), min(c.low), (array_agg(c.close ORDER BY c.time DESC))[1],
       sum(c.volume), sum(c.quote_volume), sum(c.trades), sum(c.taker_buy_volume), sum(c.taker_buy_quote_volume)
FROM candles_1m c, newest
WHERE c.symbol = %(symbol)s
  AND c.time >= date_bin(%(step)s, newest.t, TIMESTAMPTZ '1970-01-01') - %(step)s * (%(limit)s - 1)
GROUP BY bucket ORDER BY bucket DESC LIMIT %(limit)s
"""


def candle_rows(*, symbol: str, step: timedelta, limit: int) -> list[tuple]:
    """The newest `limit` candles of `step` (one minute: candles_1m as stored; longer: aggregated on UTC boundaries,
    the newest bar possibly still forming), newest first: (open time, open, high, low, close, volume, quote volume,
    trades, taker buy volume, taker buy quote volume)."""
    sql = _CANDLES_1M_SQL if step == timedelta(minutes=1) else _CANDLES_AGG_SQL
    with connection.cursor() as cursor:
        cursor.execute(sql, {"symbol": symbol, "limit": limit, "step": step})
        return cursor.fetchall()


def candles_list(*, symbol: str, interval: str, limit: int) -> list[dict]:
    """The newest `limit` candles of `interval` (from candles_1m; the newest bar may still be forming), oldest first."""
    rows = candle_rows(symbol=symbol, step=INTERVALS[interval], limit=limit)
    return [
        {"time": iso_utc(row[0]), **dict(zip(CANDLE_FIELDS, row[1:], strict=True))} | {"trades": int(row[7] or 0)}
        for row in reversed(rows)
    ]


def symbols_list() -> list[Symbol]:
    return list(Symbol.objects.order_by("symbol"))


def user_settings_get(*, user_id: str) -> UserSettings:
    """The user's settings, or unsaved defaults for a user who never saved any."""
    found = UserSettings.objects.filter(user_id=user_id).first()
    return found if found is not None else UserSettings(user_id=user_id)
