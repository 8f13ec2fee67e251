"""Reads behind the dashboard: the whole snapshot as one table, alert counts per rule, feed completeness per symbol.

The dashboard's clock is the exchange's (the collector's `clock` key), so a replay of past days shows the same
"last 24 hours" as a live feed would; without it (no collector ever ran) the wall clock stands in.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import orjson
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from apps.alerts.models import AlertHistory
from apps.alerts.notifications.selectors import destinations_paused
from apps.collector.models import Symbol
from screener_project.kernel.clock import iso_utc
from screener_project.kernel.redis_keys import collector_clock_key, redis_client, snapshot_key, snapshot_minute_key
from screener_project.kernel.timeframes import SCREENER_TIMEFRAMES

# Per timeframe, the snapshot fields the screener shows, and the column names they take.
ROW_FIELDS: tuple[tuple[str, str], ...] = (
    ("change_pct", "change"),
    ("volume", "volume"),
    ("vcp", "vcp"),
    ("rsi_14", "rsi"),
)
SCREENER_COLUMNS: tuple[str, ...] = (
    "symbol",
    "timestamp",
    "price",
    *(f"{name}_{timeframe}" for _, name in ROW_FIELDS for timeframe in SCREENER_TIMEFRAMES),
)


def exchange_now() -> datetime:
    """The newest moment the collector has seen on the exchange's clock, else the wall clock."""
    raw = redis_client().get(collector_clock_key())
    try:
        return datetime.fromtimestamp(int(raw) / 1000, tz=UTC) if raw else timezone.now()
    except ValueError:
        return timezone.now()


def screener_version() -> str | None:
    """A tag that changes whenever any symbol's snapshot does (from the per-symbol minute index), or None when empty.

    Reading it costs a few kilobytes, against a megabyte or more for the snapshots themselves, so a page polling
    the table pays for the snapshots only when a new minute has been written."""
    minutes = redis_client().hgetall(snapshot_minute_key())
    if not minutes:
        return None
    digest = hashlib.blake2b(digest_size=8)
    for name in sorted(minutes):
        digest.update(name + b"=" + minutes[name] + b";")
    return digest.hexdigest()


def _row(snapshot: dict) -> list:
    frames = snapshot.get("timeframes") or {}
    price = next((frames[tf].get("close") for tf in SCREENER_TIMEFRAMES if frames.get(tf)), None)
    values = [(frames.get(tf) or {}).get(field) for field, _ in ROW_FIELDS for tf in SCREENER_TIMEFRAMES]
    return [snapshot.get("symbol"), snapshot.get("timestamp"), price, *values]


def screener_rows() -> tuple[list[list], str | None]:
    """Every symbol's snapshot as one row of SCREENER_COLUMNS, by symbol; and the newest snapshot's timestamp.

    One HGETALL: the whole table costs one round trip, however many symbols there are. An unreadable snapshot is
    left out rather than failing the table."""
    raw = redis_client().hgetall(snapshot_key())
    rows = []
    for name in sorted(raw):
        try:
            snapshot = orjson.loads(raw[name])
        except orjson.JSONDecodeError:
            continue
        if isinstance(snapshot, dict):
            rows.append(_row(snapshot | {"symbol": name.decode()}))
    newest = max((row[1] for row in rows if row[1]), default=None)
    return rows, newest


def alert_counts(*, hours: int) -> dict:
    """Alerts per rule type over the `hours` up to the exchange's clock."""
    until = exchange_now()
    since = until - timedelta(hours=hours)
    rows = (
        AlertHistory.objects.filter(triggered_at__gt=since, triggered_at__lte=until)
        .order_by()
        .values_list("alert_type")
        .annotate(n=Count("pk"))
    )
    counts = dict(rows)
    return {"since": iso_utc(since), "until": iso_utc(until), "counts": counts, "total": sum(counts.values())}


# Per symbol over the window ending at the newest stored minute: candles present, first and last minute.
_FEED_SQL = """
WITH newest AS (SELECT max(time) AS t FROM candles_1m)
SELECT c.symbol, count(*), min(c.time), max(c.time), newest.t
FROM candles_1m c, newest
WHERE c.time > newest.t - %(window)s
GROUP BY c.symbol, newest.t
ORDER BY c.symbol
"""


def feed_symbols(*, hours: int) -> dict:
    """Completeness of each symbol's stored 1m candles over the `hours` ending at the newest stored minute.

    `missing` counts the minutes absent between a symbol's first candle in the window and that newest minute (its
    gaps, plus the minutes it is behind); `behind` is how many minutes its newest candle trails the newest minute.
    Active symbols with no candle in the window are listed with `candles` 0."""
    window = timedelta(hours=hours)
    with connection.cursor() as cursor:
        cursor.execute(_FEED_SQL, {"window": window})
        found = cursor.fetchall()
    newest = found[0][4] if found else None
    symbols = []
    for symbol, candles, first, last, newest_t in found:
        expected = int((newest_t - first) / timedelta(minutes=1)) + 1
        symbols.append(
            {
                "symbol": symbol,
                "candles": candles,
                "missing": max(expected - candles, 0),
                "behind": int((newest_t - last) / timedelta(minutes=1)),
                "last": iso_utc(last),
            }
        )
    seen = {row["symbol"] for row in symbols}
    for symbol in Symbol.objects.filter(is_active=True).exclude(symbol__in=seen).values_list("symbol", flat=True):
        symbols.append({"symbol": symbol, "candles": 0, "missing": None, "behind": None, "last": None})
    return {
        "newest": iso_utc(newest) if newest else None,
        "hours": hours,
        "symbols": symbols,
        "with_gaps": sum(1 for row in symbols if row["missing"]),
    }


def paused_destinations() -> list[dict]:
    return destinations_paused()
