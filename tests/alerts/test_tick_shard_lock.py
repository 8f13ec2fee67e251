"""The shard lock on the real Redis: short, renewed while held, so a killed holder blocks its shard for seconds."""

from __future__ import annotations

import time

import pytest

from apps.alerts import tick
from apps.collector.candles import MINUTE_MS
from screener_project.kernel.redis_keys import shard_last_minute_key, shard_lock_key
from tests.e2e.processes import wait_for

pytestmark = pytest.mark.django_db

T = 1_800_000_000_000 // MINUTE_MS * MINUTE_MS


def test_a_shard_left_locked_by_a_killed_worker_is_taken_over_once_the_lock_expires(redis_client, settings):
    settings.SHARD_LOCK_SECONDS = 2
    # What a worker SIGKILLed mid-tick leaves: its lock, never renewed again nor released.
    redis_client.set(shard_lock_key(0), "token-of-a-dead-worker", px=2000)
    redis_client.set(shard_last_minute_key(0), T - MINUTE_MS)
    started = time.monotonic()
    assert tick.shard_tick_run(redis_client, minute_ms=T, shard=0, symbols=["AUSDT"], received_ms=T) == [T]
    took = time.monotonic() - started
    print(f"\nshard taken over {took:.2f} s after the dead holder's lock (2 s lock)")
    assert 1.0 < took < 3.5
    assert redis_client.get(shard_last_minute_key(0)) == str(T).encode()


def test_a_working_holder_keeps_its_lock_past_the_timeout(redis_client, settings):
    settings.SHARD_LOCK_SECONDS = 1
    with tick.shard_lock(redis_client, 0) as held:
        time.sleep(2.5)  # a long catch-up: more than twice the lock's timeout
        assert not held.lost
        other = redis_client.lock(shard_lock_key(0), timeout=1)
        assert not other.acquire(blocking=False)
        assert 0 < redis_client.pttl(shard_lock_key(0)) <= 1000
    assert not redis_client.exists(shard_lock_key(0))


def test_a_holder_whose_lock_vanished_stops_before_recording_progress(redis_client, settings):
    settings.SHARD_LOCK_SECONDS = 1
    with pytest.raises(tick.ShardLockLost), tick.shard_lock(redis_client, 0) as held:
        redis_client.delete(shard_lock_key(0))  # Redis emptied under it
        wait_for(lambda: held.lost, timeout=5, what="the renewal to notice")
        held.check()
