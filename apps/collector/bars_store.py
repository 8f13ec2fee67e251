"""Redis history of clock-aligned bars (15m, 1h, 4h, 8h, 1d) beyond what the 1m ring covers.

Layout: `P:bars:<SYMBOL>` is one string holding a ring of INDICATOR_BARS rows per interval, intervals in the order
of BAR_INTERVALS, so one GET reads a symbol's whole history. The bar of open time `t` lives in slot
`(t // interval_ms) % K` of its interval's section; writing is one SETRANGE, idempotent by open time, and a bar
older than the one already in its slot is ignored (at most K bars are kept per interval).

A row is 40 bytes instead of 80: a uint32 stamp (open minute in the low 27 bits, decimal exponent `e` + 4 in the top
5), the four prices as uint32 mantissas `m` with price = m / 10**e, volumes as float32 and trades as uint32.
Exchange prices are decimals on a tick grid, and `m / 10**e` is the double nearest that decimal, so prices read back
bit-identical to the parsed ones; a bar off every grid that fits (never seen on Binance) keeps the finest exponent
that fits, about 1e-9 relative.
5m bars need no history: the 1m ring covers 288 of them. The key is created at its full size in one allocation
(40,000 bytes for K = 200), since growing a string by SETRANGE lets Redis over-allocate up to twice its length.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import redis as redis_lib
from django.conf import settings
from prometheus_client import Counter

from screener_project.kernel.redis_keys import bars_key
from screener_project.kernel.timeframes import BAR_INTERVALS

from .candles import FIELD_INDEX, FIELDS, MINUTE_MS, Candle

logger = logging.getLogger(__name__)

ROUNDED = Counter("screener_bars_rounded_total", "Bars whose prices are on no decimal grid, stored rounded (~1e-9)")


ROW_DTYPE = np.dtype(
    [
        ("stamp", "<u4"),
        ("prices", "<u4", (4,)),  # open, high, low, close
        ("volumes", "<f4", (4,)),  # volume, quote_volume, taker_buy_volume, taker_buy_quote_volume
        ("trades", "<u4"),
    ]
)
ROW_BYTES = ROW_DTYPE.itemsize
_CLOSE_WORD = (ROW_DTYPE.fields["prices"][1] + 3 * 4) // 4  # the close mantissa, as a uint32 word of the row
_PRICE_FIELDS = [FIELD_INDEX[f] for f in ("open", "high", "low", "close")]
_VOLUME_FIELDS = [FIELD_INDEX[f] for f in ("volume", "quote_volume", "taker_buy_volume", "taker_buy_quote_volume")]
_EXPONENTS = np.arange(-4, 16)
_MINUTE_BITS = 27
_MINUTE_MASK = (1 << _MINUTE_BITS) - 1
_POW10 = 10.0**_EXPONENTS
_MANTISSA_MAX = float(np.iinfo(np.uint32).max)

# Writes each row unless its slot holds a newer bar. ARGV: the key's full size, then (key, records) pairs, a record
# being the row's byte offset (uint32) followed by the row.
_WRITE_SCRIPT = """
local size = tonumber(ARGV[1])
local written = 0
for i = 2, #ARGV, 2 do
  local k = ARGV[i]
  local records = ARGV[i + 1]
  if redis.call('STRLEN', k) ~= size then
    local old = redis.call('GET', k) or ''
    redis.call('SET', k, string.sub(old .. string.rep('\\0', size), 1, size))
  end
  for r = 1, string.len(records), RECORD do
    local offset = struct.unpack('<I4', records, r)
    local minute = struct.unpack('<I4', records, r + 4) % MINUTE_SPAN
    local existing = redis.call('GETRANGE', k, offset, offset + 3)
    local stored = 0
    if string.len(existing) == 4 then
      stored = struct.unpack('<I4', existing) % MINUTE_SPAN
    end
    if stored <= minute then
      redis.call('SETRANGE', k, offset, string.sub(records, r + 4, r + RECORD - 1))
      written = written + 1
    end
  end
end
return written
"""


_WRITE_SCRIPT_TEXT = _WRITE_SCRIPT.replace("RECORD", str(4 + ROW_BYTES)).replace("MINUTE_SPAN", str(1 << _MINUTE_BITS))


def bar_count() -> int:
    return settings.INDICATOR_BARS


def _slot_offsets(interval: str, open_minutes: np.ndarray) -> np.ndarray:
    k = bar_count()
    section = list(BAR_INTERVALS).index(interval)
    return (section * k + (open_minutes // BAR_INTERVALS[interval]) % k) * ROW_BYTES


def _encode(rows: np.ndarray) -> np.ndarray:
    """(m, len(FIELDS)) float64 bars -> structured rows; prices as exact decimal mantissas where possible."""
    out = np.zeros(len(rows), dtype=ROW_DTYPE)
    prices = rows[:, _PRICE_FIELDS]  # (m, 4)
    scaled = prices[:, :, None] * _POW10[None, None, :]  # (m, 4, E)
    mantissa = np.rint(scaled)
    fits = (mantissa <= _MANTISSA_MAX).all(axis=1)  # (m, E)
    with np.errstate(invalid="ignore"):
        exact = (mantissa / _POW10[None, None, :] == prices[:, :, None]).all(axis=1) & fits
    has_exact = exact.any(axis=1)
    finest_fit = len(_EXPONENTS) - 1 - np.argmax(fits[:, ::-1], axis=1)
    choice = np.where(has_exact, np.argmax(exact, axis=1), finest_fit)
    if not has_exact.all():
        ROUNDED.inc(int((~has_exact).sum()))
    minute = (rows[:, FIELD_INDEX["open_time"]] // MINUTE_MS).astype(np.uint32)
    out["stamp"] = minute | (choice.astype(np.uint32) << _MINUTE_BITS)
    out["prices"] = mantissa[np.arange(len(rows)), :, choice].astype(np.uint32)
    out["volumes"] = rows[:, _VOLUME_FIELDS].astype(np.float32)
    out["trades"] = np.clip(rows[:, FIELD_INDEX["trades"]], 0, _MANTISSA_MAX).astype(np.uint32)
    return out


def _decode(rows: np.ndarray) -> np.ndarray:
    """Structured rows -> (..., len(FIELDS)) float64; empty slots (minute 0) are NaN."""
    out = np.empty((*rows.shape, len(FIELDS)))
    minute = rows["stamp"] & _MINUTE_MASK
    out[..., FIELD_INDEX["open_time"]] = minute.astype(np.float64) * MINUTE_MS
    out[..., _PRICE_FIELDS] = rows["prices"] / _POW10[rows["stamp"] >> _MINUTE_BITS][..., None]
    out[..., _VOLUME_FIELDS] = rows["volumes"]
    out[..., FIELD_INDEX["trades"]] = rows["trades"]
    out[minute == 0] = np.nan
    return out


_RECORD_DTYPE = np.dtype([("offset", "<u4"), ("row", ROW_DTYPE)])


def _records_of(interval: str, symbols: Sequence[str], bars: np.ndarray) -> dict[int, bytes]:
    """symbol index -> its (offset, row) records for every non-missing bar of a (F, n, m) block."""
    if interval not in BAR_INTERVALS:
        raise ValueError(f"unknown bar interval {interval!r}")
    rows = np.moveaxis(bars, 0, 2).reshape(-1, len(FIELDS))  # (n * m, F), symbol-major
    owner = np.repeat(np.arange(len(symbols)), bars.shape[2])
    keep = ~np.isnan(rows[:, [*_PRICE_FIELDS, FIELD_INDEX["open_time"]]]).any(axis=1)
    rows, owner = rows[keep], owner[keep]
    if len(rows) == 0:
        return {}
    records = np.empty(len(rows), dtype=_RECORD_DTYPE)
    records["row"] = _encode(rows)
    records["offset"] = _slot_offsets(interval, (records["row"]["stamp"] & _MINUTE_MASK).astype(np.int64))
    raw = records.tobytes()
    # Rows are symbol-major, so each symbol's records are one contiguous slice.
    bounds = np.searchsorted(owner, np.arange(len(symbols) + 1)) * _RECORD_DTYPE.itemsize
    return {s: raw[bounds[s] : bounds[s + 1]] for s in np.unique(owner).tolist()}


def _decode_close(ring: np.ndarray, slots: np.ndarray, minutes: np.ndarray) -> np.ndarray:
    """(n, K) structured ring -> (n, len(slots)) closes of those slots, NaN where another bar is there."""
    # Only the two 4-byte words needed (stamp and close mantissa) are gathered, not the 40-byte rows.
    words = ring.view(np.uint32).reshape(*ring.shape, ROW_BYTES // 4)
    stamp = words[:, slots, 0]
    close = words[:, slots, _CLOSE_WORD] / _POW10[stamp >> _MINUTE_BITS]
    close[(stamp & _MINUTE_MASK) != minutes[None, :]] = np.nan
    return close


def _decode_fields(ring: np.ndarray, slots: np.ndarray, minutes: np.ndarray) -> np.ndarray:
    """(n, K) structured ring -> (len(FIELDS), n, len(slots)) float64 of those slots, NaN where the slot holds
    another bar than `minutes` expects."""
    rows = ring[:, slots]  # (n, count)
    stamp = rows["stamp"]
    out = np.empty((len(FIELDS), *rows.shape))
    out[FIELD_INDEX["open_time"]] = (stamp & _MINUTE_MASK) * float(MINUTE_MS)
    scale = _POW10[stamp >> _MINUTE_BITS]
    prices = rows["prices"]
    for j, f in enumerate(_PRICE_FIELDS):
        np.divide(prices[:, :, j], scale, out=out[f])
    volumes = rows["volumes"]
    for j, f in enumerate(_VOLUME_FIELDS):
        out[f] = volumes[:, :, j]
    out[FIELD_INDEX["trades"]] = rows["trades"]
    out[:, (stamp & _MINUTE_MASK) != minutes[None, :]] = np.nan
    return out


def bars_roll(client: redis_lib.Redis, *, symbols: Sequence[str], bars: dict[str, np.ndarray]) -> int:
    """Store bars of several intervals in one round trip: `bars[interval]` is (len(FIELDS), len(symbols), m) like a
    candle block, NaN bars skipped. Idempotent by open time (a bar is overwritten by its newer state, never by an
    older bar). Returns the number of rows written."""
    per_symbol: dict[int, list[bytes]] = {}
    for interval, block in bars.items():
        for s, records in _records_of(interval, symbols, block).items():
            per_symbol.setdefault(s, []).append(records)
    if not per_symbol:
        return 0
    args: list[object] = [len(BAR_INTERVALS) * bar_count() * ROW_BYTES]
    for s, records in per_symbol.items():
        args += [bars_key(symbols[s]), b"".join(records)]
    return int(client.eval(_WRITE_SCRIPT_TEXT, 0, *args))


def bars_write(client: redis_lib.Redis, *, interval: str, symbols: Sequence[str], bars: np.ndarray) -> int:
    """Store bars of one interval (see bars_roll)."""
    return bars_roll(client, symbols=symbols, bars={interval: bars})


def bars_seed(client: redis_lib.Redis, *, symbol: str, interval: str, candles: Sequence[Candle]) -> None:
    """Store REST klines of `interval` (each Candle's open_time is its bar's open), idempotently by open time."""
    if not candles:
        return
    rows = np.array([c.as_row() for c in candles], dtype=np.float64)  # (m, F)
    bars_write(client, interval=interval, symbols=[symbol], bars=rows.T[:, None, :])


def bars_matrices(
    client: redis_lib.Redis,
    symbols: Sequence[str],
    *,
    last_open_ms: dict[str, int],
    count: int | dict[str, int],
    close_only: bool = False,
) -> dict[str, np.ndarray]:
    """For each interval in `last_open_ms`, the `count` bars ending with the bar opening at last_open_ms[interval].

    `count` may differ by interval (a dict). With close_only, each value is just the (len(symbols), count) closes,
    which is all the indicators need. One round trip. Each value is a (len(FIELDS), len(symbols), count)
    float64 block, oldest bar first, NaN where the store holds no such bar.
    """
    k = bar_count()
    n = len(symbols)
    sections = sorted({list(BAR_INTERVALS).index(interval) for interval in last_open_ms})
    runs = _section_runs(sections)
    # Only the sections asked for, a GETRANGE per run of adjacent ones (all five: the whole key, as a GET would),
    # so a caller that needs one interval, and later the others, reads each section once.
    pipe = client.pipeline(transaction=False)
    for symbol in symbols:
        for first, last in runs:
            pipe.getrange(bars_key(symbol), first * k * ROW_BYTES, (last + 1) * k * ROW_BYTES - 1)
    replies = pipe.execute() if n and runs else []
    section_rings: dict[int, np.ndarray] = {}
    for r, (first, last) in enumerate(runs):
        size = (last - first + 1) * k * ROW_BYTES
        blob = b"".join((raw or b"").ljust(size, b"\0")[:size] for raw in replies[r :: len(runs)]) if n else b""
        rings = np.frombuffer(blob, dtype=ROW_DTYPE).reshape(n, last - first + 1, k)
        for section in range(first, last + 1):
            section_rings[section] = rings[:, section - first, :]
    out = {}
    for interval, last_open in last_open_ms.items():
        section = list(BAR_INTERVALS).index(interval)
        step = BAR_INTERVALS[interval]
        bars = count[interval] if isinstance(count, dict) else count
        minutes = last_open // MINUTE_MS + step * (np.arange(bars) - bars + 1)
        slots = (minutes // step) % k
        if close_only:
            out[interval] = _decode_close(section_rings[section], slots, minutes)
        else:
            out[interval] = _decode_fields(section_rings[section], slots, minutes)
    return out


def _section_runs(sections: list[int]) -> list[tuple[int, int]]:
    """Sorted section indexes -> (first, last) of each run of adjacent ones: [0, 2, 3, 4] -> [(0, 0), (2, 4)]."""
    runs: list[tuple[int, int]] = []
    for section in sections:
        if runs and runs[-1][1] == section - 1:
            runs[-1] = (runs[-1][0], section)
        else:
            runs.append((section, section))
    return runs


def bars_of_symbol(client: redis_lib.Redis, *, symbol: str, interval: str) -> np.ndarray:
    """Every bar the store holds for `symbol` and `interval`, as an (m, len(FIELDS)) array sorted by open time."""
    k = bar_count()
    section = list(BAR_INTERVALS).index(interval)
    start = section * k * ROW_BYTES
    raw = client.getrange(bars_key(symbol), start, start + k * ROW_BYTES - 1) or b""
    rows = np.frombuffer(raw[: len(raw) // ROW_BYTES * ROW_BYTES], dtype=ROW_DTYPE)
    rows = rows[(rows["stamp"] & _MINUTE_MASK) > 0]
    decoded = _decode(rows)
    return decoded[np.argsort(decoded[:, 0], kind="stable")]


def bars_bytes(client: redis_lib.Redis, *, symbol: str) -> int:
    """Redis memory used by the symbol's bar history (MEMORY USAGE, key overhead included)."""
    return int(client.memory_usage(bars_key(symbol)) or 0)
