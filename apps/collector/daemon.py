"""The collector daemon: exchange streams -> validated closed candles -> Redis ring (+ candles_1m, + minute ticks).

Tasks of one asyncio loop:
- stream connections (streams.StreamConnection), each feeding `_on_message`, which validates and queues closed candles;
- the store loop: writes queued candles into the ring in batches, detects gaps per symbol, sends `alerts.tick` for
  every minute the batch completed;
- the repair loop: fills missing minutes from REST (gaps seen live, or minutes the exchange clock says are closed
  but a symbol never delivered);
- warm-up (REST history of the 1m window and the bar history), the persister (Redis -> candles_1m), the heartbeat,
  and the periodic universe refresh.
Blocking work (Django ORM, Celery publishing, bars seeding) runs in threads so the streams are never starved.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import redis as redis_lib
from django.conf import settings
from django.db import close_old_connections
from tenacity import AsyncRetrying, RetryCallState, wait_exponential

from apps.metrics.sharding import shard_of
from screener_project.kernel.redis_keys import (
    active_symbols_key,
    candles_ring_key,
    collector_clock_key,
    collector_heartbeat_key,
    collector_rejections_key,
    collector_warming_up_key,
    minute_closed_key,
    shard_last_minute_key,
    tick_claimed_key,
)
from screener_project.kernel.timeframes import BAR_INTERVALS

from . import bars_store
from .candles import MINUTE_MS, Candle, InvalidCandle, candle_from_kline
from .instruments import (
    BATCHES_SENT,
    CANDLES_STORED,
    CLOSE_LAG,
    CONNECTIONS,
    DUPLICATES,
    FRAMES,
    GAPS_REPAIRED,
    HOT_STATE_REBUILDS,
    LATE_CANDLES,
    RECEIPT_LAG,
    REJECTIONS,
    TICKS_SENT,
)
from .persister import candles_enqueue, candles_persist_batch
from .rest import RestClient, RestError
from .store import (
    ROW_BYTES,
    StoreResult,
    active_symbols_set,
    candles_store,
    forming_store,
    latest_open_times,
    ring_open_times,
)
from .streams import StreamConnection, sleep_or_stop
from .universe import slice_symbols, symbols_upsert, universe_select

logger = logging.getLogger("apps.collector")

WARMUP_CHUNK = 499  # klines per request: limit < 500 costs weight 2, the most candles per weight unit

_CLOCK_MAX_SCRIPT = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1]) end
return 0
"""


@dataclass
class CollectorConfig:
    ws_base_url: str
    rest_base_url: str
    slice_index: int = 0
    slice_count: int = 1
    streams_per_connection: int = 200
    ring_minutes: int = 1440
    indicator_bars: int = 200
    allowlist: list[str] = field(default_factory=list)
    denylist: list[str] = field(default_factory=list)
    top_n: int = 0
    weight_budget: int = 2200
    rest_concurrency: int = 8
    heartbeat_seconds: float = 2.0
    watchdog_seconds: float = 30.0
    rotate_after_seconds: float = 23.5 * 3600
    universe_refresh_seconds: float = 300.0
    repair_delay_seconds: float = 1.0
    reconcile_seconds: float = 3.0
    grace_ms: int = 5000  # exchange ms after a minute's close before a missing candle is repaired from REST
    seed_bars: bool = True
    # Near-real-time alerts: keep each symbol's newest forming candle in Redis, flushed every this many seconds
    # (0 = off; the default, since only closed candles are needed otherwise).
    forming_flush_seconds: float = 0.0


def minute_runs(minutes: np.ndarray, *, max_len: int) -> list[tuple[int, int]]:
    """Contiguous runs of sorted minute open times as (first, last) pairs, each at most max_len minutes."""
    runs: list[tuple[int, int]] = []
    if len(minutes) == 0:
        return runs
    breaks = np.flatnonzero(np.diff(minutes) != MINUTE_MS) + 1
    for part in np.split(minutes, breaks):
        for i in range(0, len(part), max_len):
            chunk = part[i : i + max_len]
            runs.append((int(chunk[0]), int(chunk[-1])))
    return runs


def ring_missing_minutes(raw: bytes | None, *, first_ms: int, last_ms: int, ring: int) -> np.ndarray:
    """Open times in [first_ms, last_ms] that the ring bytes of one symbol do not hold."""
    first_ms = max(first_ms, last_ms - (ring - 1) * MINUTE_MS)
    if last_ms < first_ms:
        return np.empty(0, dtype=np.int64)
    minutes = np.arange(first_ms, last_ms + 1, MINUTE_MS, dtype=np.int64)
    stored = ring_open_times(raw, ring=ring)
    present = stored[(minutes // MINUTE_MS) % ring] == minutes
    return minutes[~present]


# How long the warm-up mark outlives a collector that died while warming up.
WARM_UP_MARK_SECONDS = 600
# After Redis lost the hot state, how many minutes up to the loss the shards evaluate again (those in flight then),
# besides every minute since.
REBUILD_REEVALUATE_MINUTES = 10
# How far back a candle stored late has its minute evaluated again: the tick's catch-up reach (the collector knows the
# tick only by its task names; docs/rules.md, Firing).
LATE_EVALUATION_MINUTES = 60


class Collector:
    def __init__(self, config: CollectorConfig, *, redis: redis_lib.Redis) -> None:
        self.config = config
        self.redis = redis
        self.rest = RestClient(config.rest_base_url, budget=config.weight_budget, concurrency=config.rest_concurrency)
        self.universe: list[str] = []
        self.symbols: set[str] = set()  # this slice's symbols
        self.connections: list[StreamConnection] = []
        self.ready = False
        self.clock_ms = 0
        self.last_open: dict[str, int] = {}  # newest open time stored per symbol
        self.repair_pending: dict[str, list[tuple[int, int]]] = {}  # symbol -> minute ranges queued for repair
        self.rejections: dict[str, int] = defaultdict(int)
        self._rejections_unflushed: dict[str, int] = defaultdict(int)
        self._closed: asyncio.Queue[Candle] = asyncio.Queue()
        self._repairs: asyncio.Queue[tuple[float, str, int, int, int]] = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._clock_script = redis.register_script(_CLOCK_MAX_SCRIPT)
        self._warmups: set[asyncio.Task] = set()
        self._ticks_held: list[int] = []  # minutes completed during warm-up
        # The first minute this collector completed (ticked, or held for a tick): what came before was history.
        self._first_completed_minute: int | None = None
        self._lost_at_minute: int | None = None  # at the last loss of Redis's hot state, the newest minute collected
        self._forming: dict[str, Candle] = {}  # newest forming candle per symbol, until the next flush
        self._rebuilding: asyncio.Task | None = None  # the rebuild of a hot state Redis lost, while it runs
        # (minute, shard) with live candles stored since the last batch sent for evaluation, and its wake-up.
        self._batches_pending: set[tuple[int, int]] = set()
        self._batches_wakeup = asyncio.Event()
        self.stats = {"ticks_sent": 0, "repaired": 0, "stored_live": 0, "warmup_candles": 0, "warmup_seconds": None}

    # ------------------------------------------------------------------------------------------- lifecycle
    @property
    def slice_id(self) -> str:
        return str(self.config.slice_index)

    async def run(self, stop: asyncio.Event) -> None:
        """Discover, connect, warm up, then collect until `stop` is set."""
        try:
            while not stop.is_set():
                try:
                    await self._universe_refresh(initial=True)
                    break
                except Exception as error:  # exchange unreachable: keep trying, never exit
                    logger.error("symbol discovery failed (%r); retrying in 5 s", error)
                    await sleep_or_stop(stop, 5)
            if stop.is_set():
                return
            self.last_open.update({s: t for s, t in latest_open_times(self.redis).items() if s in self.symbols})
            restart_latest = dict(self.last_open)
            self._rings_preallocate(sorted(self.symbols))
            # Until the windows are warm, a tick would evaluate incomplete history: beat's grace path waits on this
            # mark, and the ticks of minutes completed meanwhile are held and sent once warm-up is done.
            self.redis.set(collector_warming_up_key(self.slice_id), 1, ex=WARM_UP_MARK_SECONDS)
            self._connect(sorted(self.symbols), stop)
            for loop in (
                self._store_loop,
                self._repair_loop,
                self._reconcile_loop,
                self._persist_loop,
                self._heartbeat_loop,
                self._forming_loop,
                self._universe_loop,
                self._batch_loop,
            ):
                self._tasks.append(asyncio.create_task(loop(stop), name=loop.__name__))
            started = time.monotonic()
            await self._warm_up(sorted(self.symbols), restart_latest=restart_latest)
            await self._fill_to_live_edge(sorted(self.symbols))
            self.stats["warmup_seconds"] = round(time.monotonic() - started, 2)
            self.ready = True
            self.redis.delete(collector_warming_up_key(self.slice_id))
            held, self._ticks_held = sorted(self._ticks_held), []
            for minute in held:
                await self._send_tick(minute)
            logger.info(
                "collector ready: %d symbols, warm-up done in %.1f s (%d candles, peak REST weight %d/min, "
                "slice %d/%d)",
                len(self.symbols),
                self.stats["warmup_seconds"],
                self.stats["warmup_candles"],
                self.rest.weight.peak,
                self.config.slice_index,
                self.config.slice_count,
            )
            await stop.wait()
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        for task in [*self._tasks, *self._warmups]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._warmups, return_exceptions=True)
        pending = []
        while not self._closed.empty():
            pending.append(self._closed.get_nowait())
        if pending:
            try:
                await self._store(pending, source="live")
            except Exception:
                logger.exception("could not store %d candles at shutdown", len(pending))
        try:
            await asyncio.wait_for(asyncio.to_thread(self._persist_all), timeout=10)
        except Exception as error:
            logger.warning("persist at shutdown incomplete (%r); candles stay queued in Redis", error)
        self._write_heartbeat(state="stopped")
        await self.rest.close()
        logger.info("collector stopped")

    def _persist_all(self) -> None:
        try:
            while candles_persist_batch(self.redis, limit=5000):
                pass
        finally:
            close_old_connections()

    # ------------------------------------------------------------------------------------------- universe
    async def _discover(self) -> list[dict]:
        info = await self.rest.exchange_info()
        tickers = await self.rest.tickers_24h() if self.config.top_n > 0 else []
        return universe_select(
            info, tickers, allowlist=self.config.allowlist, denylist=self.config.denylist, top_n=self.config.top_n
        )

    async def _universe_refresh(self, *, initial: bool = False, stop: asyncio.Event | None = None) -> None:
        entries = await self._discover()
        universe = [e["symbol"] for e in entries]
        mine = set(slice_symbols(universe, slice_index=self.config.slice_index, slice_count=self.config.slice_count))
        try:
            await asyncio.to_thread(_in_thread, symbols_upsert, entries=entries)
        except Exception as error:  # the database may be down: collecting goes on, the next refresh records it
            logger.error("could not record the universe in the database (%r)", error)
        # Every slice writes the whole universe: a minute is complete when all symbols, of all slices, closed it.
        active_symbols_set(self.redis, universe)
        self.universe = universe
        if initial:
            self.symbols = mine
            logger.info(
                "universe: %d symbols, %d in slice %d/%d",
                len(universe),
                len(mine),
                self.config.slice_index,
                self.config.slice_count,
            )
            return
        added, removed = sorted(mine - self.symbols), sorted(self.symbols - mine)
        if not added and not removed:
            return
        logger.info("universe changed: +%s -%s", added, removed)
        for conn in self.connections:
            gone = [s for s in conn.streams if s.split("@", 1)[0].upper() in removed]
            if gone:
                await conn.unsubscribe(gone)
        self.symbols = mine
        for symbol in removed:
            self.last_open.pop(symbol, None)
        if added:
            self._rings_preallocate(added)
            await self._subscribe_new(added, stop)
            task = asyncio.create_task(self._warm_up_added(added))
            self._warmups.add(task)
            task.add_done_callback(self._warmups.discard)

    def _rings_preallocate(self, symbols: list[str]) -> None:
        """Create each missing ring at its full size at once: a string grown by SETRANGE may take twice the room."""
        empty = b"\0" * (self.config.ring_minutes * ROW_BYTES)  # open time 0 marks an empty slot
        pipe = self.redis.pipeline(transaction=False)
        for symbol in symbols:
            pipe.set(candles_ring_key(symbol), empty, nx=True)
        pipe.execute()

    async def _warm_up_added(self, symbols: list[str]) -> None:
        started = time.monotonic()
        try:
            await self._warm_up(symbols, restart_latest={})
        except Exception:
            logger.exception("warm-up of new symbols %s failed", symbols)
            return
        logger.info("new symbols warmed up in %.1f s: %s", time.monotonic() - started, symbols)

    async def _subscribe_new(self, symbols: list[str], stop: asyncio.Event | None) -> None:
        streams = [_stream_name(s) for s in symbols]
        for conn in self.connections:
            room = self.config.streams_per_connection - len(conn.streams)
            if room > 0 and streams:
                await conn.subscribe(streams[:room])
                streams = streams[room:]
        if streams and stop is not None:
            self._connect([s.split("@", 1)[0].upper() for s in streams], stop)

    def _connect(self, symbols: list[str], stop: asyncio.Event) -> None:
        per = max(1, self.config.streams_per_connection)
        for i in range(0, len(symbols), per):
            conn = StreamConnection(
                f"{self.slice_id}-{len(self.connections)}",
                ws_base_url=self.config.ws_base_url,
                streams=[_stream_name(s) for s in symbols[i : i + per]],
                on_message=self._on_message,
                watchdog_seconds=self.config.watchdog_seconds,
                rotate_after_seconds=self.config.rotate_after_seconds,
            )
            self.connections.append(conn)
            self._tasks.append(asyncio.create_task(conn.run(stop), name=f"connection {conn.id}"))

    async def _universe_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await sleep_or_stop(stop, self.config.universe_refresh_seconds)
            if stop.is_set():
                return
            try:
                await self._universe_refresh(stop=stop)
            except Exception as error:
                logger.warning("universe refresh failed (%r); keeping the current symbols", error)

    # ------------------------------------------------------------------------------------------- frames
    def _reject(self, reason: str, detail: object = "") -> None:
        REJECTIONS.labels(reason).inc()
        self.rejections[reason] += 1
        self._rejections_unflushed[reason] += 1
        count = self.rejections[reason]
        if count <= 5 or count % 1000 == 0:
            logger.warning("frame rejected (%s, %d so far): %s", reason, count, str(detail)[:200])

    def _on_message(self, message: str | bytes) -> None:
        try:
            frame = json.loads(message)
        except ValueError:
            FRAMES.labels("invalid").inc()
            self._reject("malformed_json", message)
            return
        if not isinstance(frame, dict):
            self._reject("malformed", message)
            return
        if "stream" not in frame:
            if "id" in frame:  # a SUBSCRIBE / UNSUBSCRIBE reply
                FRAMES.labels("control").inc()
                if frame.get("error"):
                    logger.warning("exchange refused a request: %s", frame)
                return
            self._reject("unknown_message", message)
            return
        data = frame.get("data")
        if not isinstance(data, dict) or data.get("e") != "kline":
            self._reject("malformed", "not a kline event")
            return
        try:
            candle, closed = candle_from_kline(data.get("k"))
        except InvalidCandle as invalid:
            self._reject(invalid.reason, invalid)
            return
        if candle.symbol not in self.symbols:
            self._reject("unknown_symbol", candle.symbol)
            return
        event_ms = data.get("E")
        if isinstance(event_ms, int) and not isinstance(event_ms, bool) and event_ms > self.clock_ms:
            self.clock_ms = event_ms
        if not closed:
            FRAMES.labels("forming").inc()
            if self.config.forming_flush_seconds:
                self._forming[candle.symbol] = candle
            return
        FRAMES.labels("closed").inc()
        if isinstance(event_ms, int):
            CLOSE_LAG.observe(max(0.0, (event_ms - candle.close_time - 1) / 1000))
        receipt_lag = time.time() - (candle.close_time + 1) / 1000
        if 0 <= receipt_lag < 3600:
            RECEIPT_LAG.observe(receipt_lag)
        self._closed.put_nowait(candle)

    # ------------------------------------------------------------------------------------------- storing
    async def _store(self, candles: list[Candle], *, source: str, mark_closed: bool = True) -> StoreResult:
        result = candles_store(self.redis, candles, mark_closed=mark_closed)
        if source != "live" and len(result.stored) < len(candles):
            # History fetched while the live ring moved on can be older than the ring; the database still wants it
            # (a duplicate insert is ignored there).
            stored = set(result.stored)
            candles_enqueue(self.redis, [c for c in candles if c not in stored])
        CANDLES_STORED.labels(source).inc(len(result.stored))
        DUPLICATES.inc(result.duplicates)
        if source == "live" and mark_closed and self.ready and settings.TICK_BATCH_MS > 0:
            for candle in result.stored:
                self._batches_pending.add((candle.open_time, shard_of(candle.symbol, shard_count=settings.SHARD_COUNT)))
        for minute in result.completed_minutes:
            if self._first_completed_minute is None or minute < self._first_completed_minute:
                self._first_completed_minute = minute
            if self.ready:
                # The tick evaluates what the batches have not: a batch of this minute still waiting is not needed.
                self._batches_pending = {p for p in self._batches_pending if p[0] != minute}
                await self._send_tick(minute)
            else:
                self._ticks_held.append(minute)
        if self._batches_pending:
            self._batches_wakeup.set()
        if result.stored and self._rebuilding is None:
            # Warm-up fills too: after a restart it can fill a hole in a minute the shards already evaluated. Not
            # while rebuilding after a Redis loss: the whole window is refilled then, against shard progress that is
            # gone or was written by a tick after the loss; the rebuild ends by having the minutes evaluated again.
            await self._send_late(result.stored)
        return result

    async def _send_late(self, stored: list[Candle]) -> None:
        """Have the minutes already started without some of these candles evaluated again for their symbols.

        A repaired or straggling candle can land after beat's grace deadline started its minute, or after a shard
        catching up went past it; without this its alerts for that minute would never be looked for.
        """
        by_minute: dict[int, list[str]] = defaultdict(list)
        for candle in stored:
            by_minute[candle.open_time].append(candle.symbol)
        minutes = sorted(by_minute)
        pipe = self.redis.pipeline(transaction=False)
        for minute in minutes:
            pipe.exists(tick_claimed_key(minute))
        for shard in range(settings.SHARD_COUNT):
            pipe.get(shard_last_minute_key(shard))
        replies = pipe.execute()
        # Started: its tick was claimed, or a shard catching up already went past it. Minutes beyond the tick's
        # catch-up reach are not evaluated again (a new symbol's warm-up fills a whole day of them).
        progress = max((int(r) for r in replies[len(minutes) :] if r is not None), default=-1)
        horizon = max(progress, minutes[-1]) - LATE_EVALUATION_MINUTES * MINUTE_MS
        started = [
            m for m, claimed in zip(minutes, replies, strict=False) if (claimed or m <= progress) and m > horizon
        ]
        if not started:
            return
        from screener_project.celery import app

        received_ms = int(time.time() * 1000)
        for minute in started:
            kwargs = {"minute_ms": minute, "symbols": sorted(by_minute[minute]), "received_ms": received_ms}
            try:
                await asyncio.to_thread(app.send_task, "alerts.tick_late", kwargs=kwargs)
                LATE_CANDLES.inc(len(by_minute[minute]))
            except Exception as error:
                logger.error("could not send alerts.tick_late for %s %s: %r", minute, by_minute[minute], error)

    async def _batch_loop(self, stop: asyncio.Event) -> None:
        """Send the shards whose symbols closed a minute since the last batch to `alerts.shard_closed`, at most every
        TICK_BATCH_MS: the first closes of a minute go at once, those arriving meanwhile together right after."""
        interval = settings.TICK_BATCH_MS / 1000
        while not stop.is_set():
            await self._batches_wakeup.wait()
            self._batches_wakeup.clear()
            pending, self._batches_pending = sorted(self._batches_pending), set()
            if pending:
                await self._send_batches(pending)
                await sleep_or_stop(stop, interval)

    async def _send_batches(self, pending: list[tuple[int, int]]) -> None:
        from screener_project.celery import app

        received_ms = int(time.time() * 1000)

        def send() -> None:
            for minute, shard in pending:
                kwargs = {"minute_ms": minute, "shard": shard, "received_ms": received_ms}
                app.send_task("alerts.shard_closed", kwargs=kwargs)

        try:
            await asyncio.to_thread(send)
            BATCHES_SENT.inc(len(pending))
        except Exception as error:  # the minute's tick evaluates what these batches would have
            logger.error("could not send alerts.shard_closed for %s: %r", pending, error)

    async def _send_tick(self, minute_ms: int) -> None:
        from screener_project.celery import app  # the collector knows only the task's name, not its code

        try:
            await asyncio.to_thread(app.send_task, "alerts.tick", kwargs={"minute_ms": minute_ms})
            TICKS_SENT.inc()
            self.stats["ticks_sent"] += 1
        except Exception as error:  # the beat's grace-deadline tick covers a minute whose signal was lost
            logger.error("could not send alerts.tick for %s: %r", minute_ms, error)

    async def _store_loop(self, stop: asyncio.Event) -> None:
        delay = 1.0
        while not stop.is_set():
            batch = [await self._closed.get()]
            while not self._closed.empty() and len(batch) < 5000:
                batch.append(self._closed.get_nowait())
            try:
                self._hot_state_check()
                await self._store(batch, source="live")
            except redis_lib.RedisError as error:
                # Redis down or restarting: keep the candles (storing is idempotent) and retry with backoff.
                logger.error("Redis write failed (%r); retrying %d candles in %.0f s", error, len(batch), delay)
                for candle in batch:
                    self._closed.put_nowait(candle)
                await sleep_or_stop(stop, delay)
                delay = min(delay * 2, 30.0)
                continue
            except Exception:
                logger.exception("storing %d candles failed", len(batch))
                continue
            if delay > 1.0:
                logger.info("Redis writes succeed again")
            delay = 1.0
            self.stats["stored_live"] += len(batch)
            self._detect_gaps(batch)
            try:
                self._flush_clock()
            except redis_lib.RedisError as error:  # the next batch or heartbeat writes it
                logger.warning("exchange clock not written (%r)", error)

    def _detect_gaps(self, candles: list[Candle]) -> None:
        for candle in sorted(candles, key=lambda c: (c.symbol, c.open_time)):
            previous = self.last_open.get(candle.symbol)
            if previous is not None and candle.open_time > previous + MINUTE_MS:
                self._schedule_repair(candle.symbol, previous + MINUTE_MS, candle.open_time - MINUTE_MS)
            if previous is None or candle.open_time > previous:
                self.last_open[candle.symbol] = candle.open_time

    def _flush_clock(self) -> None:
        if self.clock_ms:
            self._clock_script(keys=[collector_clock_key()], args=[self.clock_ms])

    # ------------------------------------------------------------------------------------------- gap repair
    def _schedule_repair(self, symbol: str, first_ms: int, last_ms: int, attempt: int = 0) -> None:
        pending = self.repair_pending.setdefault(symbol, [])
        if attempt == 0 and any(a <= first_ms and last_ms <= b for a, b in pending):
            return  # a queued repair already covers these minutes
        pending.append((first_ms, last_ms))
        due = time.monotonic() + self.config.repair_delay_seconds * (1 + 2 * attempt)
        self._repairs.put_nowait((due, symbol, first_ms, last_ms, attempt))

    async def _repair_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            due, symbol, first_ms, last_ms, attempt = await self._repairs.get()
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            pending = self.repair_pending.get(symbol, [])
            if (first_ms, last_ms) in pending:
                pending.remove((first_ms, last_ms))
            if symbol not in self.symbols:
                continue
            try:
                left = await self._repair(symbol, first_ms, last_ms)
            except (RestError, redis_lib.RedisError) as error:
                logger.warning("gap repair of %s failed (%r); retrying", symbol, error)
                left = 1
            except Exception:
                logger.exception("gap repair of %s failed", symbol)
                left = 1
            if left and attempt < 8:
                self._schedule_repair(symbol, first_ms, last_ms, attempt + 1)
            elif left:
                logger.error("gap of %s %d..%d still missing after %d attempts", symbol, first_ms, last_ms, attempt)

    async def _repair(self, symbol: str, first_ms: int, last_ms: int) -> int:
        """Fill the minutes of [first_ms, last_ms] the ring lacks from REST; returns how many are still missing."""
        missing = ring_missing_minutes(
            self.redis.get(candles_ring_key(symbol)), first_ms=first_ms, last_ms=last_ms, ring=self.config.ring_minutes
        )
        still = 0
        for start, end in minute_runs(missing, max_len=WARMUP_CHUNK):
            wanted = (end - start) // MINUTE_MS + 1
            candles = await self.rest.klines(symbol, "1m", start_ms=start, end_ms=end, limit=wanted)
            candles = [c for c in candles if start <= c.open_time <= end]
            result = await self._store(candles, source="repair", mark_closed=True)
            GAPS_REPAIRED.inc(len(result.stored))
            self.stats["repaired"] += len(result.stored)
            if result.stored:
                logger.info("gap of %s repaired from REST: %d candles from %d", symbol, len(result.stored), start)
            still += wanted - len(candles)
        newest = int(missing[-1]) if len(missing) else last_ms
        if newest > self.last_open.get(symbol, -1):
            self.last_open[symbol] = newest
        return still

    async def _reconcile_loop(self, stop: asyncio.Event) -> None:
        """Repair minutes the exchange clock says are closed (plus grace) that a symbol never delivered."""
        seen_clock = 0
        while not stop.is_set():
            await sleep_or_stop(stop, self.config.reconcile_seconds)
            clock = self.clock_ms
            if clock == seen_clock or not clock:
                # No stream event since the last pass: ask the exchange for the time, so that the newest minutes
                # of a feed gone quiet are still repaired.
                try:
                    clock = max(clock, await self.rest.server_time())
                except Exception as error:
                    logger.warning("server time unavailable (%r)", error)
                    continue
            seen_clock = self.clock_ms
            newest = (clock - self.config.grace_ms) // MINUTE_MS * MINUTE_MS - MINUTE_MS
            for symbol in list(self.symbols):
                previous = self.last_open.get(symbol)
                if previous is not None and previous < newest:
                    self._schedule_repair(symbol, previous + MINUTE_MS, newest)

    # ------------------------------------------------------------------------------------------- Redis emptied
    def _hot_state_check(self) -> None:
        """Notice that Redis lost the hot state (emptied, restarted without persistence, replaced) and rebuild it.

        The set of active symbols is written before anything else and never removed while collecting: without it,
        Redis is not the one this collector filled. Checked before every stored batch and at every heartbeat, so
        the loss is noticed before a candle of the new Redis could complete a minute on a window without history.
        """
        if not self.ready or self._rebuilding is not None or self.redis.exists(active_symbols_key()):
            return
        logger.error("Redis lost the hot state (emptied or replaced): rebuilding the rings and bar history")
        # The newest minute every symbol had reached: those just before it may have been in flight.
        self._lost_at_minute = min(self.last_open.values(), default=None)
        self.ready = False  # ticks of the minutes completed meanwhile are held until the windows are whole again
        self.redis.set(collector_warming_up_key(self.slice_id), 1, ex=WARM_UP_MARK_SECONDS)
        active_symbols_set(self.redis, self.universe)
        self._rings_preallocate(sorted(self.symbols))
        self._rebuilding = asyncio.create_task(self._rebuild(), name="rebuild")

    async def _rebuild(self) -> None:
        started = time.monotonic()
        symbols = sorted(self.symbols)
        try:
            await self._warm_up(symbols, restart_latest=dict(self.last_open))
            await self._fill_to_live_edge(symbols)
        except Exception:
            logger.exception("rebuilding the hot state failed; retrying at the next check")
            self.redis.delete(active_symbols_key())  # so that the next check starts over
            self.ready = True
            return
        finally:
            self._rebuilding = None
        self._progress_reset()
        self.ready = True
        self.redis.delete(collector_warming_up_key(self.slice_id))
        held, self._ticks_held = sorted(self._ticks_held), []
        for minute in held:
            await self._send_tick(minute)
        HOT_STATE_REBUILDS.inc()
        self.stats["rebuilds"] = self.stats.get("rebuilds", 0) + 1
        logger.info("hot state rebuilt in %.1f s (%d held ticks sent)", time.monotonic() - started, len(held))

    def _progress_reset(self) -> None:
        """After a rebuild: the shards evaluate again, in order, the REBUILD_REEVALUATE_MINUTES minutes up to the
        loss and every minute since.

        Their progress and the tasks queued for those minutes were lost with Redis, and a shard may have evaluated
        a minute on the empty rings meanwhile. Marking the minutes closed by every symbol and forgetting the progress
        makes the next tick catch them up; the exactly-once key keeps what was already fired single. Never minutes
        before the first this collector completed: those were its warm-up's history, which a start never evaluates
        (a Redis lost just after a start would otherwise fire alerts of minutes from before the screener was live).
        """
        newest = min((self.last_open[s] for s in self.symbols if s in self.last_open), default=None)
        if newest is None or self._first_completed_minute is None:
            return
        lost_at = newest if self._lost_at_minute is None else min(self._lost_at_minute, newest)
        oldest = max(lost_at - (REBUILD_REEVALUATE_MINUTES - 1) * MINUTE_MS, self._first_completed_minute)
        ttl = 6 * 3600
        pipe = self.redis.pipeline(transaction=False)
        for minute in range(oldest, newest + MINUTE_MS, MINUTE_MS):
            pipe.sadd(minute_closed_key(minute), *self.universe)
            pipe.expire(minute_closed_key(minute), ttl)
        for shard in range(settings.SHARD_COUNT):
            pipe.delete(shard_last_minute_key(shard))
        pipe.execute()

    # ------------------------------------------------------------------------------------------- warm-up
    async def _warm_up(self, symbols: list[str], *, restart_latest: dict[str, int]) -> None:
        """REST history of each symbol's 1m window (only minutes Redis lacks), then its bar history."""
        server_now = await self._retrying(self.rest.server_time)
        newest = server_now // MINUTE_MS * MINUTE_MS - MINUTE_MS
        first = newest - (self.config.ring_minutes - 1) * MINUTE_MS
        await asyncio.gather(*(self._warm_up_symbol(s, first, newest, restart_latest.get(s)) for s in symbols))
        if not self.config.seed_bars:
            return
        await asyncio.gather(*(self._seed_bars(bars_store, s, server_now) for s in symbols))

    async def _warm_up_symbol(self, symbol: str, first: int, newest: int, known_latest: int | None) -> None:
        # After a restart, minutes newer than what Redis held are repaired as live gaps (they count towards ticks).
        last = newest if known_latest is None else min(newest, known_latest)
        try:
            missing = ring_missing_minutes(
                self.redis.get(candles_ring_key(symbol)), first_ms=first, last_ms=last, ring=self.config.ring_minutes
            )
            for start, end in minute_runs(missing, max_len=WARMUP_CHUNK):
                limit = (end - start) // MINUTE_MS + 1
                candles = await self.rest.klines(symbol, "1m", start_ms=start, end_ms=end, limit=limit)
                result = await self._store(
                    [c for c in candles if start <= c.open_time <= end], source="warmup", mark_closed=False
                )
                self.stats["warmup_candles"] += len(result.stored)
        except Exception as error:
            logger.error("warm-up of %s failed (%r); the reconcile loop will fill what it can", symbol, error)
        live = self.last_open.get(symbol)
        if live is None:
            self.last_open[symbol] = last
        elif live > last + MINUTE_MS:
            # The stream started after the history ended (a slow connect, a drop): fill what lies between.
            self._schedule_repair(symbol, last + MINUTE_MS, live - MINUTE_MS)

    async def _fill_to_live_edge(self, symbols: list[str]) -> None:
        """Fill the minutes that closed between the warm-up's REST history and the first live candle.

        Without this the first ticks would see a hole in every window until the asynchronous gap repair ran.
        """
        span = (self.config.ring_minutes - 1) * MINUTE_MS
        edges = {s: self.last_open[s] for s in symbols if s in self.last_open}
        results = await asyncio.gather(
            *(self._repair(symbol, edge - span, edge) for symbol, edge in edges.items()), return_exceptions=True
        )
        for symbol, result in zip(edges, results, strict=True):
            if isinstance(result, BaseException):
                logger.warning("filling %s up to the live edge failed (%r); gap repair will retry", symbol, result)

    async def _seed_bars(self, bars_store, symbol: str, server_now: int) -> None:
        for interval, minutes in BAR_INTERVALS.items():
            try:
                bars = await self.rest.klines(symbol, interval, limit=self.config.indicator_bars)
                # The exchange's newest bar is still forming; the metrics side builds that one from 1m candles.
                closed = [b for b in bars if b.open_time + minutes * MINUTE_MS <= server_now]
                await asyncio.to_thread(
                    bars_store.bars_seed, self.redis, symbol=symbol, interval=interval, candles=closed
                )
            except Exception as error:
                logger.error("bar history of %s %s not seeded: %r", symbol, interval, error)

    async def _retrying(self, call):
        """`await call()` until it succeeds, waiting 1, 2, 4, ... 30 s between attempts."""

        def log(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            name = getattr(call, "__name__", call)
            logger.warning("%s failed (%r); retrying in %.0f s", name, error, state.upcoming_sleep)

        return await AsyncRetrying(wait=wait_exponential(multiplier=1, max=30), before_sleep=log)(call)

    # ------------------------------------------------------------------------------------------- persistence
    async def _persist_loop(self, stop: asyncio.Event) -> None:
        delay = 1.0
        while not stop.is_set():
            try:
                handled = await asyncio.to_thread(_in_thread, candles_persist_batch, self.redis, limit=2000)
                delay = 1.0
            except Exception as error:  # database (or Redis) down: the candles wait in Redis
                logger.error("persisting candles failed (%r); retrying in %.0f s", error, delay)
                await sleep_or_stop(stop, delay)
                delay = min(delay * 2, 30)
                continue
            if not handled:
                await sleep_or_stop(stop, 0.5)

    # ------------------------------------------------------------------------------------------- heartbeat
    async def _forming_loop(self, stop: asyncio.Event) -> None:
        """Batch the forming candles into Redis for near-real-time evaluation: one write per flush, not per frame."""
        if not self.config.forming_flush_seconds:
            return
        while not stop.is_set():
            await sleep_or_stop(stop, self.config.forming_flush_seconds)
            self._forming_flush()

    def _forming_flush(self) -> None:
        batch, self._forming = list(self._forming.values()), {}
        try:
            forming_store(self.redis, batch)
        except redis_lib.RedisError as error:  # the next flush carries newer candles anyway
            logger.warning("storing %d forming candles failed: %r", len(batch), error)

    async def _heartbeat_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                self._hot_state_check()
                self._write_heartbeat(state="live" if self.ready else "warming_up")
            except Exception as error:
                logger.warning("heartbeat failed: %r", error)
            await sleep_or_stop(stop, self.config.heartbeat_seconds)

    def _write_heartbeat(self, *, state: str) -> None:
        connections = [c.status() for c in self.connections]
        states: dict[str, int] = defaultdict(int)
        for c in connections:
            states[c["state"]] += 1
        for name in ("open", "connecting", "backoff", "circuit_open", "idle", "stopped"):
            CONNECTIONS.labels(name).set(states.get(name, 0))
        beat = {
            "ts_ms": int(time.time() * 1000),
            "last_event_ms": self.clock_ms or None,
            "symbols": len(self.symbols),
            "state": state,
            "slice": f"{self.config.slice_index}/{self.config.slice_count}",
            "connections": connections,
            "rest_weight_peak_1m": self.rest.weight.peak,
            "stats": self.stats,
        }
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(collector_heartbeat_key(), self.slice_id, json.dumps(beat))
        unflushed, self._rejections_unflushed = self._rejections_unflushed, defaultdict(int)
        for reason, count in unflushed.items():
            pipe.hincrby(collector_rejections_key(), reason, count)
        pipe.execute()
        self._flush_clock()


def _stream_name(symbol: str) -> str:
    return f"{symbol.lower()}@kline_1m"


def _in_thread(function, *args, **kwargs):
    """Run Django ORM work in a worker thread, dropping connections the database closed meanwhile."""
    close_old_connections()
    try:
        return function(*args, **kwargs)
    except Exception:
        close_old_connections()
        raise
