"""Drains the Redis `persist` stream into candles_1m; entries leave Redis only once the database has them."""

from __future__ import annotations

from datetime import UTC, datetime

import redis as redis_lib

from screener_project.kernel.redis_keys import persist_queue_key

from .candles import FIELDS, Candle
from .instruments import PERSIST_BACKLOG, PERSISTED
from .models import Candle1m
from .store import ROW_BYTES, candle_row_bytes, rows_decode


def _candle_row(symbol: str, raw: bytes) -> Candle1m:
    values = dict(zip(FIELDS, rows_decode(raw)[0].tolist(), strict=True))
    return Candle1m(
        time=datetime.fromtimestamp(values["open_time"] / 1000, tz=UTC),
        symbol=symbol,
        open=values["open"],
        high=values["high"],
        low=values["low"],
        close=values["close"],
        volume=values["volume"],
        quote_volume=values["quote_volume"],
        trades=int(values["trades"]),
        taker_buy_volume=values["taker_buy_volume"],
        taker_buy_quote_volume=values["taker_buy_quote_volume"],
        quote_volume_estimated=False,
    )


def candles_persist_batch(client: redis_lib.Redis, *, limit: int = 2000) -> int:
    """Insert up to `limit` queued candles (INSERT ... ON CONFLICT DO NOTHING), then remove them from the queue.

    Returns how many entries were handled. A database error propagates and leaves the entries queued.
    """
    stream = persist_queue_key()
    entries = client.xrange(stream, count=limit)
    if not entries:
        PERSIST_BACKLOG.set(0)
        return 0
    rows = []
    for _entry_id, fields in entries:
        symbol, raw = fields.get(b"s"), fields.get(b"r")
        if symbol and raw and len(raw) == ROW_BYTES:
            rows.append(_candle_row(symbol.decode(), raw))
    Candle1m.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
    client.xdel(stream, *[entry_id for entry_id, _ in entries])
    PERSISTED.inc(len(rows))
    PERSIST_BACKLOG.set(client.xlen(stream))
    return len(entries)


def candles_enqueue(client: redis_lib.Redis, candles: list[Candle]) -> None:
    """Queue candles for candles_1m without touching the ring (history the ring has already moved past)."""
    if not candles:
        return
    pipe = client.pipeline(transaction=False)
    for candle in candles:
        pipe.xadd(persist_queue_key(), {"s": candle.symbol, "r": candle_row_bytes(candle)})
    pipe.execute()
