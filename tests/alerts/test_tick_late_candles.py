"""A candle that lands after its minute was evaluated: the minute is evaluated again for that symbol, once.

Real Redis (the candle ring, shard progress and lock) and PostgreSQL (alert_history's exactly-once key).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from apps.alerts import tick
from apps.alerts.models import AlertHistory, AlertRule
from apps.collector.candles import MINUTE_MS, Candle
from apps.collector.daemon import Collector, CollectorConfig
from apps.collector.store import active_symbols_set, candles_store
from screener_project.kernel.redis_keys import collector_clock_key, shard_last_minute_key

pytestmark = pytest.mark.django_db

T = 1_800_000_000_000 // MINUTE_MS * MINUTE_MS
ON_TIME, LATE = ["AUSDT", "BUSDT"], "XUSDT"


def candle(symbol: str, minute_ms: int) -> Candle:
    return Candle(symbol, minute_ms, 10.0, 11.0, 9.0, 10.5, 1.0, 10.0, 3)


@pytest.fixture
def one_rule(settings):
    """Only a rule that fires on every candle present (a missing candle's NaN close compares false)."""
    settings.SHARD_COUNT = 1
    AlertRule.objects.update(enabled=False)
    AlertRule.objects.create(rule_type="any_close", name="Any close", conditions=["close > 0"], cooldown_minutes=1)


@pytest.fixture
def history(redis_client, one_rule):
    """Five minutes of history for every symbol; minute T closed on time by all but XUSDT."""
    symbols = [*ON_TIME, LATE]
    active_symbols_set(redis_client, symbols)
    candles_store(redis_client, [candle(s, T - m * MINUTE_MS) for s in symbols for m in range(1, 6)], mark_closed=False)
    candles_store(redis_client, [candle(s, T) for s in ON_TIME])
    redis_client.set(shard_last_minute_key(0), T - MINUTE_MS)


@pytest.fixture
def sending_collector(redis_client, monkeypatch) -> tuple[Collector, list[dict]]:
    """A collector on the test Redis whose sent Celery tasks are recorded (name and kwargs) instead of sent."""
    from screener_project.celery import app

    collector = Collector(
        CollectorConfig(ws_base_url="ws://127.0.0.1:1", rest_base_url="http://127.0.0.1:1"), redis=redis_client
    )
    calls: list[dict] = []
    monkeypatch.setattr(app, "send_task", lambda name, kwargs: calls.append({"name": name, **kwargs}))
    return collector, calls


def alerts_at(minute_ms: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for alert in AlertHistory.objects.filter(alert_type="any_close"):
        if alert.triggered_at.timestamp() * 1000 == minute_ms + MINUTE_MS:
            counts[alert.symbol] = counts.get(alert.symbol, 0) + 1
    return counts


def shard_tick(redis_client, minute_ms: int) -> list[int]:
    return tick.shard_tick_run(
        redis_client, minute_ms=minute_ms, shard=0, symbols=[*ON_TIME, LATE], received_ms=minute_ms + MINUTE_MS
    )


def test_a_late_candle_fires_its_alert_for_its_minute_once_and_no_other_twice(redis_client, history):
    assert shard_tick(redis_client, T) == [T]
    assert alerts_at(T) == {"AUSDT": 1, "BUSDT": 1}  # evaluated without XUSDT

    candles_store(redis_client, [candle(LATE, T)])  # the REST repair of its dropped closing frame
    evaluated = tick.late_candles_evaluate(redis_client, minute_ms=T, symbols=[LATE], received_ms=T + 2 * MINUTE_MS)
    assert evaluated == {0: [LATE]}
    assert alerts_at(T) == {"AUSDT": 1, "BUSDT": 1, LATE: 1}

    # The same late candle reported twice (a redelivered task): nothing more.
    tick.late_candles_evaluate(redis_client, minute_ms=T, symbols=[LATE], received_ms=T + 2 * MINUTE_MS)
    assert alerts_at(T) == {"AUSDT": 1, "BUSDT": 1, LATE: 1}
    assert redis_client.get(shard_last_minute_key(0)) == str(T).encode()  # progress untouched


def test_a_candle_landing_before_its_shard_evaluated_the_minute_is_left_to_the_shard(redis_client, history):
    candles_store(redis_client, [candle(LATE, T)])
    assert tick.late_candles_evaluate(redis_client, minute_ms=T, symbols=[LATE], received_ms=T + MINUTE_MS) == {}
    assert alerts_at(T) == {}
    shard_tick(redis_client, T)
    assert alerts_at(T) == {"AUSDT": 1, "BUSDT": 1, LATE: 1}


def test_a_late_candle_of_a_started_minute_is_sent_for_evaluation_by_the_collector(
    redis_client, history, sending_collector
):
    collector, calls = sending_collector
    assert tick.tick_claim(redis_client, minute_ms=T)  # beat's grace deadline started T without XUSDT
    asyncio.run(collector._store([candle(LATE, T)], source="repair"))
    asyncio.run(collector._store([candle(LATE, T + MINUTE_MS)], source="repair"))  # T+1 not started: no call
    asyncio.run(collector._store([candle(LATE, T)], source="repair"))  # already stored: nothing new
    assert [(c["name"], c["minute_ms"], c["symbols"]) for c in calls] == [("alerts.tick_late", T, [LATE])]
    assert abs(calls[0]["received_ms"] - time.time() * 1000) < 60_000


def test_a_late_candle_is_evaluated_again_in_every_window_that_lacked_it(redis_client, history):
    AlertRule.objects.filter(rule_type="any_close").update(conditions=["min_n(close, 2) > 0"])  # needs t-1 as well
    candles_store(redis_client, [candle(s, T + MINUTE_MS) for s in [*ON_TIME, LATE]])
    assert shard_tick(redis_client, T + MINUTE_MS) == [T, T + MINUTE_MS]
    assert alerts_at(T) == {"AUSDT": 1, "BUSDT": 1} and alerts_at(T + MINUTE_MS) == {"AUSDT": 1, "BUSDT": 1}

    candles_store(redis_client, [candle(LATE, T)])
    tick.late_candles_evaluate(redis_client, minute_ms=T, symbols=[LATE], received_ms=T + 3 * MINUTE_MS)
    assert alerts_at(T) == {"AUSDT": 1, "BUSDT": 1, LATE: 1}
    assert alerts_at(T + MINUTE_MS) == {"AUSDT": 1, "BUSDT": 1, LATE: 1}  # its window holds T


def test_a_catching_up_shard_waits_for_an_older_minute_still_missing_candles(redis_client, history, settings):
    settings.TICK_GRACE_SECONDS = 150  # a grace longer than a minute, as in a fast replay
    candles_store(redis_client, [candle(s, T + MINUTE_MS) for s in [*ON_TIME, LATE]])  # T + 1 complete, T is not
    redis_client.set(collector_clock_key(), T + 2 * MINUTE_MS + 1_000)  # T's grace deadline not passed
    assert not tick.minute_ready(redis_client, minute_ms=T) and tick.minute_ready(redis_client, minute_ms=T + MINUTE_MS)
    assert shard_tick(redis_client, T + MINUTE_MS) == []
    assert tick.shard_last_minute(redis_client, 0) == T - MINUTE_MS

    candles_store(redis_client, [candle(LATE, T)])  # the repair lands
    assert shard_tick(redis_client, T + MINUTE_MS) == [T, T + MINUTE_MS]
    assert alerts_at(T) == {"AUSDT": 1, "BUSDT": 1, LATE: 1}


def test_a_minute_past_its_grace_deadline_is_evaluated_without_the_missing_candle(redis_client, history, settings):
    settings.TICK_GRACE_SECONDS = 150
    candles_store(redis_client, [candle(s, T + MINUTE_MS) for s in [*ON_TIME, LATE]])
    redis_client.set(collector_clock_key(), T + MINUTE_MS + 150_000)
    assert shard_tick(redis_client, T + MINUTE_MS) == [T, T + MINUTE_MS]
    assert alerts_at(T) == {"AUSDT": 1, "BUSDT": 1}


def test_a_late_candle_of_a_minute_a_catching_up_shard_passed_is_sent_too(redis_client, history, sending_collector):
    collector, calls = sending_collector
    redis_client.set(shard_last_minute_key(0), T + MINUTE_MS)  # went past T without a claim of T
    asyncio.run(collector._store([candle(LATE, T)], source="repair"))
    assert [(c["name"], c["minute_ms"], c["symbols"]) for c in calls] == [("alerts.tick_late", T, [LATE])]


def test_a_warm_up_filling_a_hole_in_an_evaluated_minute_sends_it_too(redis_client, history, sending_collector):
    # After a collector restart the warm-up fills holes below a symbol's newest candle: one can be in a minute the
    # shards already evaluated without it (a fast replay passes grace deadlines in a fraction of a second).
    collector, calls = sending_collector
    redis_client.set(shard_last_minute_key(0), T + MINUTE_MS)
    far_back = T - 2 * 60 * MINUTE_MS  # beyond the tick's catch-up reach: not evaluated again
    asyncio.run(collector._store([candle(LATE, far_back), candle(LATE, T)], source="warmup", mark_closed=False))
    assert [(c["name"], c["minute_ms"], c["symbols"]) for c in calls] == [("alerts.tick_late", T, [LATE])]


def test_a_rebuild_after_redis_was_emptied_sends_no_late_evaluation(redis_client, history, sending_collector):
    # After a Redis loss the warm-up refills every window, against shard progress that is gone or was written by a
    # tick running on the emptied rings: evaluating "late" minutes then would read half-rebuilt windows. The rebuild
    # has the minutes evaluated again once it is done (Collector._progress_reset) instead.
    collector, calls = sending_collector
    redis_client.set(shard_last_minute_key(0), T + MINUTE_MS)

    async def refill_while_rebuilding() -> None:
        collector._rebuilding = asyncio.create_task(asyncio.sleep(0))
        await collector._store([candle(LATE, T)], source="warmup", mark_closed=False)
        await collector._rebuilding
        collector._rebuilding = None

    asyncio.run(refill_while_rebuilding())
    assert calls == []
    # Once rebuilt, a hole filled in an evaluated minute is sent again, as after a restart.
    asyncio.run(collector._store([candle(LATE, T + MINUTE_MS)], source="warmup", mark_closed=False))
    assert [(c["name"], c["minute_ms"]) for c in calls] == [("alerts.tick_late", T + MINUTE_MS)]
