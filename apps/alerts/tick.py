"""The minute tick: from "minute t is complete" to alerts pushed, one vectorized pass per shard.

A tick is started at most once per minute (a Redis claim), either by the collector as soon as every active symbol
has closed minute t, or by beat once the grace deadline passed. It fans out one task per shard. A shard processes
its minutes strictly in order under a per-shard lock, remembering the last minute it finished, so a duplicated or
retried shard task does nothing and the cooldown sees the same history in every run (the backtest relies on this).

Before the tick, the symbols that closed minute t are evaluated as they close, in small batches (shard_closed_run,
sent by the collector every TICK_BATCH_MS): the tick then evaluates only the symbols the batches left (stragglers,
silent symbols) and records the shard's progress, so no symbol's alerts wait for the slowest one.

The shard lock is short and renewed while its holder works (shard_lock), so a worker killed mid-tick holds its
shard for seconds, not minutes: the next shard task takes over and catches the minute up. A candle that lands after
its shard evaluated its minute (a REST repair of a dropped frame, a straggler past the grace deadline) has that
minute evaluated again for its symbol alone (late_candles_evaluate), under the same exactly-once key.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import redis as redis_lib
from django.conf import settings
from prometheus_client import Counter

from apps.collector.candles import MINUTE_MS
from apps.collector.store import active_symbols, candles_matrix, minute_closed_symbols
from apps.metrics.shard_bars import ShardBars
from apps.metrics.sharding import shard_of, shards_split
from apps.metrics.windows import LONGEST_WINDOW, window_metrics
from screener_project.kernel.clock import now_ms
from screener_project.kernel.redis_keys import (
    active_symbols_key,
    collector_clock_key,
    collector_warming_up_key,
    minute_closed_key,
    shard_evaluated_key,
    shard_last_minute_key,
    shard_lock_key,
    tick_claimed_key,
    tick_last_key,
)
from screener_project.kernel.stages import stage
from screener_project.locks import LockLost, RenewedLock
from screener_project.observability import TICK_LAG_SECONDS, TICK_STAGE_SECONDS

from .engine import CompiledRule, rules_load
from .evaluation import minute_evaluate_live
from .services import alerts_fire

logger = logging.getLogger(__name__)

TICK_CLAIM_TTL_SECONDS = 6 * 3600
# A shard that fell further behind than this skips ahead instead of replaying every missed minute; the candle
# ring's margin beyond the 1d window (CANDLE_RING_MINUTES - 1440) bounds how far back a window is still whole.
MAX_CATCH_UP_MINUTES = 60
# How long a shard task waits for another to finish the shard (a long catch-up) before giving up.
SHARD_LOCK_WAIT_SECONDS = 120
# How often a waiting shard task tries the lock: a batch waiting for the batch before it (a few milliseconds of work)
# must not wait a tenth of a second more on top.
SHARD_LOCK_POLL_SECONDS = 0.005

INDICATORS_FAILED = Counter(
    "screener_tick_indicators_failed_total", "Shard ticks whose in-task indicators failed (handed to the queue)"
)
# (minute_ms, symbols, 1m block, window metrics, bars) -> None: the indicators stage on what the shard tick loaded;
# bars are the shard's, when the rules derived indicators from them for every symbol, else None.
ShardIndicatorsRun = Callable[[int, list[str], np.ndarray, dict[str, np.ndarray], ShardBars | None], object]


def tick_claim(client: redis_lib.Redis, *, minute_ms: int) -> bool:
    """True for the one caller that gets to start the tick of this minute."""
    return bool(client.set(tick_claimed_key(minute_ms), now_ms(), nx=True, ex=TICK_CLAIM_TTL_SECONDS))


def tick_start(
    client: redis_lib.Redis, *, minute_ms: int, enqueue_shard: Callable[[int, int, list[str], int], None]
) -> int:
    """Fan minute t out to its shards; returns how many shard tasks were enqueued (0 when already started)."""
    if not tick_claim(client, minute_ms=minute_ms):
        return 0
    started_ms = now_ms()
    shards = shards_split(active_symbols(client), shard_count=settings.SHARD_COUNT)
    enqueued = 0
    for index, symbols in enumerate(shards):
        if symbols:
            enqueue_shard(minute_ms, index, symbols, started_ms)
            enqueued += 1
    logger.info("tick %s started: %d shards", minute_ms, enqueued)
    return enqueued


def minutes_due(client: redis_lib.Redis, *, lookback_minutes: int = 10) -> list[int]:
    """Minutes whose grace deadline (by the exchange's clock) passed without a tick, oldest first.

    Only minutes that at least one symbol closed are due: with no data there is nothing to evaluate.
    """
    clock = client.get(collector_clock_key())
    if clock is None or any(client.scan_iter(match=collector_warming_up_key("*"), count=100)):
        return []
    exchange_now = int(float(clock))
    grace_ms = int(settings.TICK_GRACE_SECONDS * 1000)
    newest = (exchange_now - grace_ms) // MINUTE_MS * MINUTE_MS - MINUTE_MS  # newest minute past its deadline
    due = []
    for minute_ms in range(newest - (lookback_minutes - 1) * MINUTE_MS, newest + 1, MINUTE_MS):
        if client.exists(tick_claimed_key(minute_ms)):
            continue
        if minute_closed_symbols(client, minute_ms):
            due.append(minute_ms)
    return due


def _stage_observe(name: str, seconds: float) -> None:
    TICK_STAGE_SECONDS.labels(stage=name).observe(seconds)


def shard_minutes_pending(last_done: int | None, minute_ms: int) -> list[int]:
    """The minutes a shard still has to evaluate, in order, ending at minute_ms."""
    if last_done is not None and last_done >= minute_ms:
        return []
    if last_done is None or minute_ms - last_done > MAX_CATCH_UP_MINUTES * MINUTE_MS:
        return [minute_ms]
    return list(range(last_done + MINUTE_MS, minute_ms + 1, MINUTE_MS))


def shard_last_minute(client: redis_lib.Redis, shard: int) -> int | None:
    """The newest minute the shard finished, None when it has no progress recorded."""
    raw = client.get(shard_last_minute_key(shard))
    return None if raw is None else int(raw)


def minute_ready(client: redis_lib.Redis, *, minute_ms: int) -> bool:
    """Every active symbol closed minute t, or its grace deadline passed by the exchange's clock (or no clock).

    A shard catching up evaluates an older minute only when it is ready: right after a collector restart the stream
    can complete a newer minute while the REST repair of the older ones is still on its way.
    """
    with client.pipeline(transaction=False) as pipe:
        pipe.scard(minute_closed_key(minute_ms))
        pipe.scard(active_symbols_key())
        pipe.get(collector_clock_key())
        closed, active, clock = pipe.execute()
    if active and closed >= active:
        return True
    return clock is None or int(float(clock)) >= minute_ms + MINUTE_MS + int(settings.TICK_GRACE_SECONDS * 1000)


def shard_first_minute(client: redis_lib.Redis, *, minute_ms: int) -> int:
    """Where a shard with no history starts: the oldest of the unbroken run of live-closed minutes ending at t.

    Ticks can reach a shard out of order (several worker processes), so the first one it sees may be for a later
    minute than the first one sent; the collector's closed-minute marks say which minutes were meant to be ticked.
    """
    first = minute_ms
    for _ in range(MAX_CATCH_UP_MINUTES - 1):
        if not client.exists(minute_closed_key(first - MINUTE_MS)):
            break
        first -= MINUTE_MS
    return first


ShardLockLost = LockLost


@contextmanager
def shard_lock(client: redis_lib.Redis, shard: int) -> Iterator[RenewedLock]:
    """The shard's lock: settings.SHARD_LOCK_SECONDS long, renewed while held (screener_project.locks)."""
    lock = RenewedLock(
        client,
        shard_lock_key(shard),
        timeout=settings.SHARD_LOCK_SECONDS,
        blocking_timeout=SHARD_LOCK_WAIT_SECONDS,
        sleep=SHARD_LOCK_POLL_SECONDS,
    )
    with lock:
        yield lock


def minute_evaluate(
    client: redis_lib.Redis,
    *,
    minute_ms: int,
    symbols: list[str],
    received_ms: int,
    timings: dict[str, float],
    rules: list[CompiledRule] | None = None,
    block: np.ndarray | None = None,
) -> tuple[list, np.ndarray, dict[str, np.ndarray], ShardBars | None]:
    """Evaluate every rule (or `rules`) for `symbols` at minute t (their `block`, when loaded already) and fire
    what passes; returns (alerts, block, metrics, bars)."""
    evaluation, values = minute_evaluate_live(
        client,
        minute_ms=minute_ms,
        symbols=symbols,
        rules=rules,
        block=block,
        timings=timings,
        observe=_stage_observe,
    )
    block, metrics, context, rules, fired = (
        evaluation.block,
        evaluation.metrics,
        evaluation.context,
        evaluation.rules,
        evaluation.fired,
    )
    with stage("alerts", timings, observe=_stage_observe):
        alerts = alerts_fire(
            minute_ms=minute_ms,
            symbols=symbols,
            fired=fired,
            context=context,
            rules=rules,
            timestamps={
                "candle_close_ms": minute_ms + MINUTE_MS,
                "received_ms": received_ms,
                "evaluated_ms": now_ms(),
            },
        )
    return alerts, block, metrics, values.bars


def shard_tick_run(
    client: redis_lib.Redis,
    *,
    minute_ms: int,
    shard: int,
    symbols: Sequence[str],
    received_ms: int,
    enqueue_indicators: Callable[[int, list[str]], None] | None = None,
    indicators: ShardIndicatorsRun | None = None,
    wait_for_candles: bool = True,
) -> list[int]:
    """Evaluate the rules of one shard for every minute it has pending up to minute_ms; returns those minutes.

    With `wait_for_candles`, it stops before an older pending minute that is not ready (minute_ready), returning
    the minutes done; minute_ms itself was started as complete or past its grace deadline.

    After each minute's alerts, its indicators: `indicators(minute, symbols, block, metrics, bars)` runs them here on
    the block already loaded (only for the newest pending minute, so a shard catching up sends its alerts first), and
    `enqueue_indicators(minute, symbols)` hands a minute to the indicators queue (the older minutes of a catch-up,
    and a minute whose in-task run failed, so that the queue's retries take over).
    """
    symbols = list(symbols)
    with shard_lock(client, shard) as held:
        last_raw = client.get(shard_last_minute_key(shard))
        if last_raw is None:
            last_done = shard_first_minute(client, minute_ms=minute_ms) - MINUTE_MS
        else:
            last_done = int(last_raw)
        pending = shard_minutes_pending(last_done, minute_ms)
        if wait_for_candles:
            # Stop before an older minute still waiting for candles; the caller tries again shortly.
            for index, minute in enumerate(pending[:-1]):
                if not minute_ready(client, minute_ms=minute):
                    logger.info("shard %d minute %d: waiting for its candles before catching up", shard, minute)
                    pending = pending[:index]
                    break
        for minute in pending:
            held.check()
            timings: dict[str, float] = {}
            # The symbols the shard's batches already evaluated with every rule (shard_closed_run) are done.
            done = shard_evaluated(client, shard=shard, minute_ms=minute)["all"]
            rest = [s for s in symbols if s not in done]
            alerts: list = []
            if rest:
                alerts, block, metrics, bars = minute_evaluate(
                    client, minute_ms=minute, symbols=rest, received_ms=received_ms, timings=timings
                )
            if len(rest) < len(symbols) and indicators is not None and minute == pending[-1]:
                # The indicators stage wants the whole shard's block.
                block = candles_matrix(client, symbols, end_minute_ms=minute, length=LONGEST_WINDOW)
                metrics, bars = window_metrics(block), None
            held.check()  # a shard taken over meanwhile keeps the progress its new holder records
            client.set(shard_last_minute_key(shard), minute)
            finished = now_ms()
            client.set(tick_last_key(), json.dumps({"minute_ms": minute, "finished_ms": finished, "shard": shard}))
            TICK_LAG_SECONDS.observe(max(0.0, (finished - minute - MINUTE_MS) / 1000))
            logger.info(
                "shard %d minute %d: %d symbols (%d evaluated earlier as they closed), %d alerts, %s",
                shard,
                minute,
                len(symbols),
                len(symbols) - len(rest),
                len(alerts),
                {k: round(v, 2) for k, v in timings.items()},
            )
            # Indicators are off the alert critical path: they run once this minute's alerts are out.
            if indicators is not None and minute == pending[-1]:
                try:
                    indicators(minute, symbols, block, metrics, bars)
                    continue
                except Exception:
                    INDICATORS_FAILED.inc()
                    logger.exception(
                        "shard %d minute %d: indicators failed, handed to the indicators queue", shard, minute
                    )
            if enqueue_indicators is not None:
                enqueue_indicators(minute, symbols)
    return pending


EVALUATED_TTL_SECONDS = 2 * 3600


def shard_evaluated(client: redis_lib.Redis, *, shard: int, minute_ms: int) -> dict[str, set[str]]:
    """The shard's symbols its batches evaluated at minute t with every rule ("all") and with the rules reading no
    other symbol only ("partial", a reference symbol had not closed t yet)."""
    with client.pipeline(transaction=False) as pipe:
        pipe.smembers(shard_evaluated_key(shard, minute_ms, "all"))
        pipe.smembers(shard_evaluated_key(shard, minute_ms, "partial"))
        every, partial = pipe.execute()
    return {"all": {s.decode() for s in every}, "partial": {s.decode() for s in partial}}


_rules_of_minute: dict[int, list[CompiledRule]] = {}


def _minute_rules(minute_ms: int) -> list[CompiledRule]:
    """The enabled rules, read once per minute by this process's batches (an admin edit applies from the next)."""
    rules = _rules_of_minute.get(minute_ms)
    if rules is None:
        rules = rules_load()
        _rules_of_minute.clear()
        _rules_of_minute[minute_ms] = rules
    return rules


def recent_minutes_whole(block: np.ndarray, *, minutes: int = MAX_CATCH_UP_MINUTES) -> np.ndarray:
    """Per row of a candles_matrix block: no minute missing among its last `minutes` after its first candle there
    (a symbol listed since has none missing either)."""
    present = ~np.isnan(block[0, :, -minutes:])
    started = np.maximum.accumulate(present, axis=1)
    return ~(started & ~present).any(axis=1)


def shard_closed_run(client: redis_lib.Redis, *, minute_ms: int, shard: int, received_ms: int) -> list[str]:
    """Evaluate minute t for the symbols of the shard that closed it since the last batch; returns them.

    Symbols are evaluated as their minute completes, a batch at a time, instead of waiting for the slowest symbol:
    a symbol whose candle of t is stored (its closed mark), with no hole among its recent minutes (a repair on the
    way), is evaluated at once, the others wait for a later batch,
    or for the shard's tick of t (started once every symbol closed t, or at the grace deadline), which evaluates
    whatever the batches left and records t as the shard's progress. Only when the shard finished t - 1, so each
    symbol's minutes (and its cooldown) stay in order; a shard behind catches up through its tick. Rules reading a
    reference symbol (`BTCUSDT.change_1h`) apply only once the reference closed t: until then the batch evaluates
    the other rules ("partial"), and the reference rules follow with a later batch or the tick. The alerts'
    exactly-once key keeps a symbol evaluated twice (partial, then whole) single.
    """
    with shard_lock(client, shard) as held:
        if shard_last_minute(client, shard) != minute_ms - MINUTE_MS:
            return []  # t is done already, or the shard is behind: its tick evaluates in order
        members = shards_split(active_symbols(client), shard_count=settings.SHARD_COUNT)[shard]
        closed = minute_closed_symbols(client, minute_ms)
        evaluated = shard_evaluated(client, shard=shard, minute_ms=minute_ms)
        rules = _minute_rules(minute_ms)
        references = {label.split(".", 1)[0] for rule in rules for label in rule.references}
        whole = references <= closed
        skip = evaluated["all"] if whole else evaluated["all"] | evaluated["partial"]
        candidates = [s for s in members if s in closed and s not in skip]
        if not candidates:
            return []
        timings: dict[str, float] = {}
        with stage("load", timings, observe=_stage_observe):
            block = candles_matrix(client, candidates, end_minute_ms=minute_ms, length=LONGEST_WINDOW)
        # A symbol with a hole among its recent minutes has a repair on the way (a dropped frame is noticed at the
        # next one): it waits for the tick, as it did before batches, rather than be judged on the hole.
        whole_rows = recent_minutes_whole(block)
        batch = [s for s, whole_row in zip(candidates, whole_rows, strict=True) if whole_row]
        if not batch:
            return []
        if not whole:
            rules = [rule for rule in rules if not rule.references]
        alerts, *_ = minute_evaluate(
            client,
            minute_ms=minute_ms,
            symbols=batch,
            received_ms=received_ms,
            timings=timings,
            rules=rules,
            block=block if len(batch) == len(candidates) else np.ascontiguousarray(block[:, whole_rows]),
        )
        held.check()
        done_key = shard_evaluated_key(shard, minute_ms, "all" if whole else "partial")
        with client.pipeline(transaction=False) as pipe:
            pipe.sadd(done_key, *batch)
            pipe.expire(done_key, EVALUATED_TTL_SECONDS)
            pipe.execute()
    logger.info(
        "shard %d minute %d: %d symbols as they closed%s, %d alerts, %s",
        shard,
        minute_ms,
        len(batch),
        "" if whole else " (rules reading a reference symbol wait for it)",
        len(alerts),
        {k: round(v, 2) for k, v in timings.items()},
    )
    return batch


def late_candles_evaluate(
    client: redis_lib.Redis, *, minute_ms: int, symbols: Sequence[str], received_ms: int
) -> dict[int, list[str]]:
    """Evaluate minute t again for symbols whose candle of t landed after their shard had evaluated t.

    Under the shard's lock, so an evaluation of t that started before the candle landed has finished: a shard that
    has not recorded t yet will read the candle itself, and one that has gets t (and every minute it evaluated
    since, whose windows hold t) evaluated here for these symbols only. The alerts' exactly-once key makes a repeat
    (a redelivered task, a candle sent twice) fire nothing.
    A late candle of a reference symbol (`BTCUSDT.change_1h` in some enabled rule) changed what every symbol's rules
    read at t: then every active symbol is evaluated again, in every shard.
    Returns shard -> the symbols evaluated again.
    """
    late = set(symbols)
    references = {label.split(".", 1)[0] for rule in rules_load() for label in rule.references if "." in label}
    if late & references:
        late |= set(active_symbols(client))
    by_shard: dict[int, list[str]] = defaultdict(list)
    for symbol in sorted(late):
        by_shard[shard_of(symbol, shard_count=settings.SHARD_COUNT)].append(symbol)
    evaluated: dict[int, list[str]] = {}
    for shard, mine in sorted(by_shard.items()):
        with shard_lock(client, shard):
            last_raw = client.get(shard_last_minute_key(shard))
            if last_raw is None or int(last_raw) < minute_ms:
                continue  # not evaluated yet: the shard's own tick reads the candle
            if int(last_raw) - minute_ms >= MAX_CATCH_UP_MINUTES * MINUTE_MS:
                logger.warning("shard %d minute %d: candles of %s too late to evaluate", shard, minute_ms, mine)
                continue
            # The late candle is in the windows of every minute evaluated since: those again too, in order, so a
            # window (and a cooldown) that lacked it is seen whole.
            fired = 0
            for minute in range(minute_ms, int(last_raw) + MINUTE_MS, MINUTE_MS):
                timings: dict[str, float] = {}
                alerts, *_ = minute_evaluate(
                    client, minute_ms=minute, symbols=mine, received_ms=received_ms, timings=timings
                )
                fired += len(alerts)
            # The minute after, those of them its batches evaluated already (as they closed it) lacked it too.
            following = int(last_raw) + MINUTE_MS
            evaluated_there = shard_evaluated(client, shard=shard, minute_ms=following)
            again = [s for s in mine if s in evaluated_there["all"] | evaluated_there["partial"]]
            if again:
                alerts, *_ = minute_evaluate(
                    client, minute_ms=following, symbols=again, received_ms=received_ms, timings={}
                )
                fired += len(alerts)
        evaluated[shard] = mine
        logger.info(
            "shard %d minutes %d..%s evaluated again for late %s: %d alerts",
            shard,
            minute_ms,
            int(last_raw),
            mine,
            fired,
        )
    return evaluated
