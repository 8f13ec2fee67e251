"""Near-real-time mode: the forming candle fires early, and the minute still yields at most one alert per pair."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import override_settings

from apps.alerts.engine import rule_context, rules_evaluate, rules_load
from apps.alerts.models import AlertHistory
from apps.alerts.near_real_time import near_real_time_run
from apps.alerts.services import alerts_fire
from apps.collector.candles import FIELDS, MINUTE_MS, Candle
from apps.collector.store import active_symbols_set, candles_matrix, candles_store, forming_store
from apps.metrics.sharding import shard_of
from apps.metrics.windows import LONGEST_WINDOW, window_metrics
from screener_project.kernel.redis_keys import shard_last_minute_key

from .factories import Segment, candles_from_segments

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_client")]

SYMBOL = "PIONUSDT"
T = 1_800_000_000_000 // MINUTE_MS * MINUTE_MS


def candles() -> list[Candle]:
    """A pioneer_bull sequence whose last candle opens at minute T."""
    sequence = candles_from_segments([Segment(10, 0.5, 1000), Segment(5, 1.2, 2100)])
    n = sequence.shape[1]
    out = []
    for m in range(n):
        row = dict(zip(FIELDS, sequence[:, m].tolist(), strict=True))
        row["open_time"] = T - (n - 1 - m) * MINUTE_MS
        row["trades"] = int(row["trades"])
        out.append(Candle(symbol=SYMBOL, **row))
    return out


def prepare(redis_client, *, last_minute: int) -> list[Candle]:
    sequence = candles()
    active_symbols_set(redis_client, [SYMBOL])
    candles_store(redis_client, sequence[:-1], mark_closed=False)
    forming_store(redis_client, [sequence[-1]])
    shard = shard_of(SYMBOL, shard_count=settings.SHARD_COUNT)
    redis_client.set(shard_last_minute_key(shard), last_minute)
    return sequence


def closed_tick(redis_client, minute: int) -> list[AlertHistory]:
    block = candles_matrix(redis_client, [SYMBOL], end_minute_ms=minute, length=LONGEST_WINDOW)
    rules = rules_load()
    context = rule_context(candles=block, metrics=window_metrics(block))
    stamps = {"candle_close_ms": minute + MINUTE_MS, "received_ms": 0, "evaluated_ms": 0}
    return alerts_fire(
        minute_ms=minute,
        symbols=[SYMBOL],
        fired=rules_evaluate(rules, context),
        context=context,
        rules=rules,
        timestamps=stamps,
    )


@override_settings(ALERTS_NEAR_REAL_TIME=True)
def test_forming_candle_fires_once_and_the_closed_tick_adds_nothing(redis_client):
    sequence = prepare(redis_client, last_minute=T - MINUTE_MS)
    early = near_real_time_run(redis_client, now_ms=T + 20_000)
    assert [(a.symbol, a.alert_type) for a in early] == [(SYMBOL, "pioneer_bull")]
    assert early[0].metadata["source"] == "forming"
    assert early[0].triggered_at.timestamp() * 1000 == T + MINUTE_MS
    assert near_real_time_run(redis_client, now_ms=T + 25_000) == []  # the next pass, same minute
    candles_store(redis_client, [sequence[-1]], mark_closed=False)
    assert closed_tick(redis_client, T) == []  # the minute closes: its alert exists already
    assert AlertHistory.objects.count() == 1


@override_settings(ALERTS_NEAR_REAL_TIME=True)
def test_forming_pass_waits_for_the_closed_tick_of_the_previous_minute(redis_client):
    prepare(redis_client, last_minute=T - 2 * MINUTE_MS)
    assert near_real_time_run(redis_client, now_ms=T + 20_000) == []
    assert AlertHistory.objects.count() == 0


@override_settings(ALERTS_NEAR_REAL_TIME=True)
def test_a_stale_forming_candle_is_ignored(redis_client):
    prepare(redis_client, last_minute=T)
    assert near_real_time_run(redis_client, now_ms=T + MINUTE_MS + 20_000) == []


def test_off_by_default(redis_client):
    prepare(redis_client, last_minute=T - MINUTE_MS)
    assert near_real_time_run(redis_client, now_ms=T + 20_000) == []
    assert AlertHistory.objects.count() == 0


@override_settings(ALERTS_NEAR_REAL_TIME=True)
def test_the_beat_task_runs_a_pass(redis_client):
    from apps.alerts.tasks import near_real_time

    prepare(redis_client, last_minute=T - MINUTE_MS)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("apps.alerts.near_real_time.time.time", lambda: (T + 20_000) / 1000)
        assert near_real_time() == 1
    assert AlertHistory.objects.get().metadata["source"] == "forming"


@override_settings(ALERTS_NEAR_REAL_TIME=True)
def test_a_reference_symbol_in_another_shard_is_read_at_the_forming_minute(redis_client):
    """REFUSDT, flat at 100 until t - 1, forms +3 % at t in a shard of its own: its change_5m at t is the forming
    candle's (3 %), so `change_5m - REF.change_5m < -1` fires for PIONUSDT (change_5m about 1.2 %)."""
    from apps.alerts.models import AlertRule

    own = shard_of(SYMBOL, shard_count=settings.SHARD_COUNT)
    ref = next(f"REF{i}USDT" for i in range(100) if shard_of(f"REF{i}USDT", shard_count=settings.SHARD_COUNT) != own)
    AlertRule.objects.update(enabled=False)
    AlertRule.objects.create(
        rule_type="behind_ref", name="Behind", conditions=[f"change_5m - {ref}.change_5m < -1"], parameters={}
    )
    AlertRule.objects.create(rule_type="ahead_of_ref", name="Ahead", conditions=[f"change_5m > {ref}.change_5m"])
    prepare(redis_client, last_minute=T - MINUTE_MS)
    active_symbols_set(redis_client, [SYMBOL, ref])
    flat = dict(open=100.0, high=100.0, low=100.0, close=100.0, volume=10.0, quote_volume=1000.0, trades=1)
    candles_store(
        redis_client, [Candle(symbol=ref, open_time=T - k * MINUTE_MS, **flat) for k in range(1, 30)], mark_closed=False
    )
    forming_store(redis_client, [Candle(symbol=ref, open_time=T, **{**flat, "high": 103.0, "close": 103.0})])
    fired = near_real_time_run(redis_client, now_ms=T + 20_000)
    assert [(a.symbol, a.alert_type) for a in fired] == [(SYMBOL, "behind_ref")]
    assert fired[0].metadata["metrics"][f"{ref}.change_5m"] == pytest.approx(3.0)
