"""Redis as the hot store of closed 1m candles (keys: screener_project.kernel.redis_keys).

Layout (every key starts with settings.REDIS_KEY_PREFIX, written `P` below):
- `P:c1m:<SYMBOL>`: a ring of CANDLE_RING_MINUTES rows, one per minute, each row one candle (ROW_DTYPE, 72
  bytes: rows_encode / rows_decode convert). The row of open time `t` lives at slot `(t // 60000) % ring`, so writing a
  candle is one SETRANGE, idempotent by open time, and a late or out-of-order candle lands in its own place.
  A slot whose stored open time differs from the expected one is a missing minute.
- `P:persist`: a stream of candles waiting to be saved to candles_1m; entries are removed only after the
  database has them, so candles survive a database outage.
- `P:closed:<t>`: the symbols whose candle of minute `t` has been stored; when it covers `P:symbols:active`, the
  minute is complete and the tick can start.
- `P:symbols:active`: the symbols being collected now.
- `P:latest`: hash symbol -> newest stored open time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import redis as redis_lib
from django.conf import settings

from screener_project.kernel.compiled import compiled
from screener_project.kernel.redis_keys import (
    active_symbols_key,
    candles_ring_key,
    forming_key,
    latest_open_key,
    minute_closed_key,
    persist_queue_key,
)

from .candles import FIELD_INDEX, FIELDS, MINUTE_MS, Candle

# A ring row: the open minute (minutes since the epoch) and the trade count as two uint32 words, then the eight prices
# and volumes as float64. 72 bytes: a 1500-minute ring fits Redis's 112 KiB allocation class (80-byte rows of plain
# float64 took the 128 KiB one). An all-zero row is an empty slot.
ROW_DTYPE = np.dtype(
    [
        ("minute", "<u4"),
        ("trades", "<u4"),
        ("open", "<f8"),
        ("high", "<f8"),
        ("low", "<f8"),
        ("close", "<f8"),
        ("volume", "<f8"),
        ("quote_volume", "<f8"),
        ("taker_buy_volume", "<f8"),
        ("taker_buy_quote_volume", "<f8"),
    ]
)
ROW_BYTES = ROW_DTYPE.itemsize
_FLOAT_FIELDS = [name for name in FIELDS if name not in ("open_time", "trades")]
_UINT32_MAX = np.iinfo(np.uint32).max
CLOSED_MARK_TTL_SECONDS = 6 * 3600

# Stores each candle unless the slot already holds the same bytes (a duplicate) or a newer minute (the candle is
# older than the ring). Returns, per candle, 1 if stored, 0 if duplicate, -1 if too old; then the minutes that this
# call completed (every active symbol has closed them).
_STORE_SCRIPT = """
local row_bytes = tonumber(ARGV[1])
local ring = tonumber(ARGV[2])
local mark = ARGV[3] == '1'
local ttl = tonumber(ARGV[4])
local ring_prefix, closed_prefix = ARGV[5], ARGV[6]
local active_key, persist_key, latest_key = ARGV[7], ARGV[8], ARGV[9]
local active_count = redis.call('SCARD', active_key)
local results = {}
local completed = {}
local n = (#ARGV - 9) / 3
for i = 0, n - 1 do
  local symbol = ARGV[10 + i * 3]
  local open_time = tonumber(ARGV[11 + i * 3])
  local row = ARGV[12 + i * 3]
  local key = ring_prefix .. symbol
  if redis.call('EXISTS', key) == 0 then
    -- Allocate the whole ring at once: a string grown slot by slot is over-allocated by Redis (about 2x).
    redis.call('SETRANGE', key, ring * row_bytes - 1, '\0')
  end
  local offset = ((open_time / 60000) % ring) * row_bytes
  local existing = redis.call('GETRANGE', key, offset, offset + row_bytes - 1)
  local status = 1
  if existing == row then
    status = 0
  elseif string.len(existing) == row_bytes then
    local stored_minute = struct.unpack('<I4', existing)
    if stored_minute > open_time / 60000 then
      status = -1
    end
  end
  if status == 1 then
    redis.call('SETRANGE', key, offset, row)
    redis.call('XADD', persist_key, '*', 's', symbol, 'r', row)
    local latest = tonumber(redis.call('HGET', latest_key, symbol) or '0')
    if open_time > latest then
      redis.call('HSET', latest_key, symbol, open_time)
    end
  end
  if status == 1 and mark then
    local closed_key = closed_prefix .. open_time
    if redis.call('SADD', closed_key, symbol) == 1 then
      redis.call('EXPIRE', closed_key, ttl)
      if active_count > 0 and redis.call('SCARD', closed_key) == active_count then
        table.insert(completed, open_time)
      end
    end
  end
  table.insert(results, status)
end
return {results, completed}
"""


@dataclass(frozen=True, slots=True)
class StoreResult:
    stored: list[Candle]
    duplicates: int
    too_old: int
    completed_minutes: list[int]


def rows_encode(rows: np.ndarray) -> np.ndarray:
    """(m, len(FIELDS)) float64 candles -> m ring rows (ROW_DTYPE)."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, len(FIELDS))
    out = np.zeros(len(rows), dtype=ROW_DTYPE)
    out["minute"] = rows[:, FIELD_INDEX["open_time"]] // MINUTE_MS
    # A trade count never nears 2**32 in a minute; clipping keeps a corrupt value from wrapping around.
    out["trades"] = np.clip(rows[:, FIELD_INDEX["trades"]], 0, _UINT32_MAX)
    for name in _FLOAT_FIELDS:
        out[name] = rows[:, FIELD_INDEX[name]]
    return out


def candle_row_bytes(candle: Candle) -> bytes:
    return rows_encode(np.asarray(candle.as_row())).tobytes()


def rows_decode(raw: bytes) -> np.ndarray:
    """Ring bytes -> (m, len(FIELDS)) float64 candles in FIELDS order; an empty slot has open time 0."""
    rows = np.frombuffer(raw[: len(raw) // ROW_BYTES * ROW_BYTES], dtype=ROW_DTYPE)
    out = np.empty((len(rows), len(FIELDS)))
    out[:, FIELD_INDEX["open_time"]] = rows["minute"].astype(np.float64) * MINUTE_MS
    out[:, FIELD_INDEX["trades"]] = rows["trades"]
    for name in _FLOAT_FIELDS:
        out[:, FIELD_INDEX[name]] = rows[name]
    return out


def ring_open_times(raw: bytes | None, *, ring: int) -> np.ndarray:
    """The open time (ms) each of the ring's slots holds, 0 for an empty slot."""
    blob = (raw or b"").ljust(ring * ROW_BYTES, b"\0")[: ring * ROW_BYTES]
    return np.frombuffer(blob, dtype=ROW_DTYPE)["minute"].astype(np.int64) * MINUTE_MS


def ring_minutes() -> int:
    return settings.CANDLE_RING_MINUTES


def candles_store(client: redis_lib.Redis, candles: Sequence[Candle], *, mark_closed: bool = True) -> StoreResult:
    """Write closed candles into their ring slots, idempotently; queue the new ones for the database.

    `mark_closed` counts them towards their minute's completeness (live candles and recent gap repairs);
    warm-up history passes False so it never starts ticks for the past.
    """
    if not candles:
        return StoreResult([], 0, 0, [])
    args: list[object] = [
        ROW_BYTES,
        ring_minutes(),
        int(mark_closed),
        CLOSED_MARK_TTL_SECONDS,
        candles_ring_key(""),
        minute_closed_key(""),
        active_symbols_key(),
        persist_queue_key(),
        latest_open_key(),
    ]
    for candle in candles:
        args += [candle.symbol, candle.open_time, candle_row_bytes(candle)]
    statuses, completed = client.eval(_STORE_SCRIPT, 0, *args)
    stored = [c for c, status in zip(candles, statuses, strict=True) if status == 1]
    return StoreResult(
        stored=stored,
        duplicates=sum(1 for s in statuses if s == 0),
        too_old=sum(1 for s in statuses if s == -1),
        completed_minutes=[int(m) for m in completed],
    )


def active_symbols_set(client: redis_lib.Redis, symbols: Iterable[str]) -> None:
    """Replace the set of symbols being collected now."""
    symbols = list(symbols)
    pipe = client.pipeline(transaction=True)
    pipe.delete(active_symbols_key())
    if symbols:
        pipe.sadd(active_symbols_key(), *symbols)
    pipe.execute()


def active_symbols(client: redis_lib.Redis) -> list[str]:
    return sorted(s.decode() for s in client.smembers(active_symbols_key()))


def minute_closed_symbols(client: redis_lib.Redis, minute_ms: int) -> set[str]:
    return {s.decode() for s in client.smembers(minute_closed_key(minute_ms))}


def latest_open_times(client: redis_lib.Redis) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in client.hgetall(latest_open_key()).items()}


@compiled
def _ring_window_copy(
    out: np.ndarray, i: int, words: np.ndarray, floats: np.ndarray, first: int
) -> None:  # pragma: no cover - compiled
    """out[:, i, m] = the candle in slot (first + m) % ring: one symbol's ring turned field-major, oldest minute
    first, in one pass. `words` and `floats` view the same rows as uint32 (18 a row) and float64 (9 a row: the
    first is the two header words, the others the FIELDS after open time, trades left out)."""
    ring = floats.shape[0]
    for m in range(out.shape[2]):
        slot = (first + m) % ring
        out[0, i, m] = words[slot, 0] * 60000.0
        for f in range(1, 7):  # open, high, low, close, volume, quote_volume
            out[f, i, m] = floats[slot, f]
        out[7, i, m] = words[slot, 1]
        out[8, i, m] = floats[slot, 7]
        out[9, i, m] = floats[slot, 8]


def candles_matrix(client: redis_lib.Redis, symbols: Sequence[str], *, end_minute_ms: int, length: int) -> np.ndarray:
    """The last `length` minutes ending at `end_minute_ms` for each symbol, as a (len(FIELDS), n, length) array.

    `out[f]` is a C-contiguous (symbols x minutes) matrix of field FIELDS[f], oldest minute first. A minute the ring
    does not hold (never received, or overwritten) is NaN in every field.
    """
    ring = ring_minutes()
    if length > ring:
        raise ValueError(f"length {length} exceeds the ring of {ring} minutes")
    n = len(symbols)
    if n == 0 or length == 0:
        return np.full((len(FIELDS), n, length), np.nan)
    pipe = client.pipeline(transaction=False)
    for symbol in symbols:
        pipe.get(candles_ring_key(symbol))
    raws = pipe.execute()
    ring_bytes = ring * ROW_BYTES
    minutes = end_minute_ms // MINUTE_MS - length + 1 + np.arange(length)
    first = int(minutes[0] % ring)
    # Every cell is written below, so no NaN fill first. One symbol at a time, straight from its reply's bytes.
    out = np.empty((len(FIELDS), n, length))
    for i, raw in enumerate(raws):
        if raw is None or len(raw) < ring_bytes:
            raw = (raw or b"").ljust(ring_bytes, b"\0")
        words = np.frombuffer(raw, dtype="<u4", count=ring * ROW_BYTES // 4).reshape(ring, ROW_BYTES // 4)
        floats = np.frombuffer(raw, dtype="<f8", count=ring * ROW_BYTES // 8).reshape(ring, ROW_BYTES // 8)
        _ring_window_copy(out, i, words, floats, first)
    expected = (minutes * MINUTE_MS).astype(np.float64)
    present = out[0] == expected[None, :]
    out[:, ~present] = np.nan
    return out


def candles_of_symbol(client: redis_lib.Redis, symbol: str) -> np.ndarray:
    """Every candle the ring holds for `symbol`, as an (m, len(FIELDS)) array sorted by open time."""
    rows = rows_decode(client.get(candles_ring_key(symbol)) or b"")
    rows = rows[rows[:, 0] > 0]
    return rows[np.argsort(rows[:, 0], kind="stable")]


# --- forming candles (near-real-time alert mode) ------------------------------------------------------------------
# `P:forming`: hash symbol -> the newest forming (not yet closed) candle of that symbol, one FIELDS row as in the
# ring. Written only when ALERTS_NEAR_REAL_TIME is on; readers check the row's open time, so a stale row from an
# earlier minute is simply ignored.


def forming_store(client: redis_lib.Redis, candles: Sequence[Candle]) -> None:
    """Remember the newest forming candle of each symbol (a later update of the same minute replaces it)."""
    if not candles:
        return
    mapping = {c.symbol: candle_row_bytes(c) for c in candles}
    client.hset(forming_key(), mapping=mapping)


def forming_rows(client: redis_lib.Redis, symbols: Sequence[str], *, minute_ms: int) -> np.ndarray:
    """The forming candles of minute `minute_ms` as a (len(FIELDS), n) array; NaN for symbols without one."""
    out = np.full((len(FIELDS), len(symbols)), np.nan)
    if not symbols:
        return out
    for i, raw in enumerate(client.hmget(forming_key(), list(symbols))):
        if raw is None or len(raw) != ROW_BYTES:
            continue
        row = rows_decode(raw)[0]
        if row[0] == minute_ms:
            out[:, i] = row
    return out
