"""Data for the dashboard's tests, written through the product's own writers where it has them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import redis as redis_lib

from apps.alerts.models import AlertHistory
from apps.collector.models import Candle1m
from apps.metrics.selectors import SNAPSHOT_FIELDS
from apps.metrics.services import ShardIndicators, snapshot_write
from screener_project.kernel.redis_keys import collector_clock_key
from screener_project.kernel.timeframes import SCREENER_TIMEFRAMES

MINUTE = timedelta(minutes=1)
# A replay's past day: the dashboard must show it as it would show live data.
NOW = datetime(2025, 11, 20, 12, 0, tzinfo=UTC)


def symbols_named(count: int) -> list[str]:
    return [f"S{i:03d}USDT" for i in range(count)]


def snapshots_write(
    client: redis_lib.Redis,
    *,
    symbols: list[str],
    minute: datetime,
    seed: int = 0,
    price: dict[str, float] | None = None,
) -> dict[str, np.ndarray]:
    """One snapshot per symbol at `minute`, with values drawn from `seed` (and the closes in `price`); returns
    field -> array of (timeframes, symbols)."""
    rng = np.random.default_rng(seed)
    shape = (len(SCREENER_TIMEFRAMES), len(symbols))
    close = rng.uniform(0.01, 90_000, size=len(symbols))
    for symbol, value in (price or {}).items():
        close[symbols.index(symbol)] = value
    values = {name: rng.normal(0, 1, size=shape) for name in SNAPSHOT_FIELDS}
    values["close"] = np.broadcast_to(close, shape).copy()
    values["change_pct"] = rng.normal(0, 3, size=shape)
    values["volume"] = rng.uniform(1e4, 5e9, size=shape)
    values["rsi_14"] = rng.uniform(5, 95, size=shape)
    values["vcp"] = rng.uniform(-1, 1, size=shape)
    values["trades"] = rng.integers(1, 10_000, size=shape).astype(float)
    result = ShardIndicators(minute_ms=int(minute.timestamp() * 1000), symbols=symbols, values=values, rolled={})
    snapshot_write(client, result=result)
    return values


def exchange_clock_set(client: redis_lib.Redis, moment: datetime) -> None:
    client.set(collector_clock_key(), int(moment.timestamp() * 1000))


def candles_insert(*, symbol: str, end: datetime, minutes: int, missing: frozenset[int] = frozenset()) -> None:
    """`minutes` 1m candles of a gentle random walk ending at `end` (open time), leaving out the offsets in `missing`
    (counted back from `end`: 0 is `end` itself)."""
    rng = np.random.default_rng(abs(hash(symbol)) % 2**32)
    price = 100.0
    rows = []
    for back in range(minutes - 1, -1, -1):
        step = rng.normal(0, 0.4)
        open_, close = price, max(price + step, 1.0)
        price = close
        if back in missing:
            continue
        rows.append(
            Candle1m(
                time=end - back * MINUTE,
                symbol=symbol,
                open=open_,
                high=max(open_, close) + abs(rng.normal(0, 0.2)),
                low=min(open_, close) - abs(rng.normal(0, 0.2)),
                close=close,
                volume=float(rng.uniform(10, 100)),
                quote_volume=float(rng.uniform(1e3, 1e5)),
                trades=int(rng.integers(1, 100)),
            )
        )
    Candle1m.objects.bulk_create(rows)


def alert_make(*, symbol: str, alert_type: str, at: datetime, price: float = 100.0) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "triggered_at": at.isoformat().replace("+00:00", "Z"),
        "symbol": symbol,
        "alert_type": alert_type,
        "timeframe": "5m",
        "price": price,
        "volume": 1_250_000.0,
        "change_pct": 2.5 if "bull" in alert_type else -2.5,
        "metadata": {"vcp": 0.42},
    }


def alerts_insert(*, symbol: str, alert_type: str, times: list[datetime]) -> list[AlertHistory]:
    return AlertHistory.objects.bulk_create(
        AlertHistory(
            triggered_at=at,
            symbol=symbol,
            alert_type=alert_type,
            timeframe="5m",
            price=100.0 + i,
            volume=1_000_000.0,
            change_pct=1.5,
            metadata={},
        )
        for i, at in enumerate(times)
    )
