"""Symbols evaluated as their minute completes, a batch at a time, never waiting for the slowest symbol.

Real Redis (closed marks, shard progress and lock, the evaluated sets) and PostgreSQL (the exactly-once key).
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from apps.alerts import tick
from apps.alerts.models import AlertHistory, AlertRule
from apps.collector.candles import MINUTE_MS, Candle
from apps.collector.daemon import Collector, CollectorConfig
from apps.collector.store import active_symbols_set, candles_store
from screener_project.kernel.redis_keys import shard_last_minute_key

pytestmark = pytest.mark.django_db

T = 1_800_000_000_000 // MINUTE_MS * MINUTE_MS
ON_TIME, SILENT = ["AUSDT", "BUSDT"], "XUSDT"
SYMBOLS = [*ON_TIME, SILENT]


def candle(symbol: str, minute_ms: int) -> Candle:
    return Candle(symbol, minute_ms, 10.0, 11.0, 9.0, 10.5, 1.0, 10.0, 3)


@pytest.fixture(autouse=True)
def rules_read_afresh():
    """Batches read the rules once per minute and process; each test's rules are its own."""
    tick._rules_of_minute.clear()


@pytest.fixture
def history(redis_client, settings):
    """One shard, a rule firing on every candle present; five minutes of history, the shard done up to T - 1."""
    settings.SHARD_COUNT = 1
    AlertRule.objects.update(enabled=False)
    AlertRule.objects.create(rule_type="any_close", name="Any close", conditions=["close > 0"], cooldown_minutes=1)
    active_symbols_set(redis_client, SYMBOLS)
    candles_store(redis_client, [candle(s, T - m * MINUTE_MS) for s in SYMBOLS for m in range(2, 6)], mark_closed=False)
    candles_store(redis_client, [candle(s, T - MINUTE_MS) for s in SYMBOLS])  # T - 1 closed live
    redis_client.set(shard_last_minute_key(0), T - MINUTE_MS)


def alerts_at(minute_ms: int, rule_type: str = "any_close") -> dict[str, int]:
    counts: dict[str, int] = {}
    for alert in AlertHistory.objects.filter(alert_type=rule_type):
        if alert.triggered_at.timestamp() * 1000 == minute_ms + MINUTE_MS:
            counts[alert.symbol] = counts.get(alert.symbol, 0) + 1
    return counts


def batch(redis_client, minute_ms: int = T) -> list[str]:
    return tick.shard_closed_run(redis_client, minute_ms=minute_ms, shard=0, received_ms=minute_ms + MINUTE_MS)


def shard_tick(redis_client, minute_ms: int) -> list[int]:
    return tick.shard_tick_run(
        redis_client, minute_ms=minute_ms, shard=0, symbols=SYMBOLS, received_ms=minute_ms + MINUTE_MS
    )


def test_closed_symbols_fire_at_once_while_a_silent_one_waits_and_each_fires_once(redis_client, history):
    assert batch(redis_client) == []  # nothing closed yet: nothing evaluated before its candle
    candles_store(redis_client, [candle("AUSDT", T)])
    assert batch(redis_client) == ["AUSDT"]
    assert alerts_at(T) == {"AUSDT": 1}
    candles_store(redis_client, [candle("BUSDT", T)])
    assert batch(redis_client) == ["BUSDT"]  # only what closed since
    assert batch(redis_client) == []
    assert alerts_at(T) == {"AUSDT": 1, "BUSDT": 1}
    assert tick.shard_last_minute(redis_client, 0) == T - MINUTE_MS  # the minute is not finished by batches

    # The grace deadline's tick evaluates only what the batches left, and records the shard's progress.
    assert shard_tick(redis_client, T) == [T]
    assert alerts_at(T) == {"AUSDT": 1, "BUSDT": 1}
    assert tick.shard_last_minute(redis_client, 0) == T
    candles_store(redis_client, [candle(SILENT, T)])
    assert batch(redis_client) == []  # the minute is done: a straggler goes through the late path
    tick.late_candles_evaluate(redis_client, minute_ms=T, symbols=[SILENT], received_ms=T + 2 * MINUTE_MS)
    assert alerts_at(T) == {"AUSDT": 1, "BUSDT": 1, SILENT: 1}


def test_a_shard_behind_is_not_evaluated_by_batches(redis_client, history):
    redis_client.set(shard_last_minute_key(0), T - 2 * MINUTE_MS)
    candles_store(redis_client, [candle(s, T) for s in ON_TIME])
    assert batch(redis_client) == []
    assert alerts_at(T) == {}


def test_a_symbol_with_a_hole_before_t_waits_for_the_tick_instead_of_being_judged_on_it(redis_client, history):
    candles_store(redis_client, [candle(s, T + MINUTE_MS) for s in SYMBOLS])
    shard_tick(redis_client, T)  # T at its grace deadline: AUSDT, BUSDT and XUSDT without a candle
    # XUSDT's candle of T is missing (its repair on its way): its closed candle of T + 1 is left to the tick.
    assert batch(redis_client, T + MINUTE_MS) == []
    candles_store(redis_client, [candle(s, T) for s in ON_TIME])
    # (closed marks of T for the others: they are eligible now)
    assert batch(redis_client, T + MINUTE_MS) == ON_TIME


def test_rules_reading_a_reference_symbol_wait_for_its_candle(redis_client, history):
    AlertRule.objects.create(
        rule_type="near_x", name="Near X", conditions=["close - XUSDT.close < 100"], cooldown_minutes=1
    )
    candles_store(redis_client, [candle(s, T) for s in ON_TIME])
    assert batch(redis_client) == ON_TIME
    assert alerts_at(T) == {"AUSDT": 1, "BUSDT": 1} and alerts_at(T, "near_x") == {}
    assert batch(redis_client) == []
    candles_store(redis_client, [candle(SILENT, T)])
    assert batch(redis_client) == SYMBOLS  # the reference rules now, for every symbol closed
    assert alerts_at(T) == {"AUSDT": 1, "BUSDT": 1, SILENT: 1}
    assert alerts_at(T, "near_x") == {"AUSDT": 1, "BUSDT": 1, SILENT: 1}
    shard_tick(redis_client, T)
    assert alerts_at(T, "near_x") == {"AUSDT": 1, "BUSDT": 1, SILENT: 1}


def test_after_a_silent_minute_the_symbol_waits_for_the_tick_and_its_late_candle_fixes_both(redis_client, history):
    AlertRule.objects.filter(rule_type="any_close").update(conditions=["min_n(close, 2) > 0"])  # needs t-1 as well
    candles_store(redis_client, [candle(s, T) for s in ON_TIME])
    assert shard_tick(redis_client, T) == [T]  # T at its grace deadline, without XUSDT
    candles_store(redis_client, [candle(s, T + MINUTE_MS) for s in SYMBOLS])
    assert batch(redis_client, T + MINUTE_MS) == ON_TIME  # XUSDT's window lacks T: not in a batch
    assert shard_tick(redis_client, T + MINUTE_MS) == [T + MINUTE_MS]
    assert alerts_at(T + MINUTE_MS) == {"AUSDT": 1, "BUSDT": 1}

    candles_store(redis_client, [candle(SILENT, T)])  # its repair
    tick.late_candles_evaluate(redis_client, minute_ms=T, symbols=[SILENT], received_ms=T + 2 * MINUTE_MS)
    assert alerts_at(T) == {"AUSDT": 1, "BUSDT": 1, SILENT: 1}
    assert alerts_at(T + MINUTE_MS) == {"AUSDT": 1, "BUSDT": 1, SILENT: 1}


def test_the_collector_sends_the_shards_that_closed_a_minute_at_most_every_batch_interval(
    redis_client, history, monkeypatch, settings
):
    from screener_project.celery import app

    settings.TICK_BATCH_MS = 200
    collector = Collector(
        CollectorConfig(ws_base_url="ws://127.0.0.1:1", rest_base_url="http://127.0.0.1:1"), redis=redis_client
    )
    collector.ready = True
    calls: list[dict] = []
    monkeypatch.setattr(app, "send_task", lambda name, kwargs: calls.append({"name": name, **kwargs}))

    async def scenario() -> None:
        stop = asyncio.Event()
        loop = asyncio.create_task(collector._batch_loop(stop))
        await collector._store([candle("AUSDT", T)], source="live")
        await asyncio.sleep(0.05)
        assert [(c["name"], c["minute_ms"], c["shard"]) for c in calls] == [("alerts.shard_closed", T, 0)]
        await collector._store([candle("BUSDT", T)], source="live")
        await asyncio.sleep(0.05)
        assert len(calls) == 1  # within the interval: waits for it
        await asyncio.sleep(0.25)
        assert len(calls) == 2
        await collector._store([candle(SILENT, T)], source="live")  # completes T: its tick, no batch
        await asyncio.sleep(0.3)
        stop.set()
        collector._batches_wakeup.set()
        await loop

    asyncio.run(scenario())
    assert [c["name"] for c in calls] == ["alerts.shard_closed", "alerts.shard_closed", "alerts.tick"]


def test_recent_minutes_are_whole_unless_a_minute_is_missing_after_the_first_candle():
    block = np.ones((10, 3, 100))
    block[0, 1, :70] = np.nan  # listed 30 minutes ago: whole
    block[0, 2, 95] = np.nan  # a hole 4 minutes back
    assert tick.recent_minutes_whole(block).tolist() == [True, True, False]
