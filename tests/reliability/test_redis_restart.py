"""Redis killed and restored from its AOF, then emptied: the worker and beat live through both and schedule again.

Real processes (a Celery worker and beat) on a redis-server of the test's own. The periodic task observed is the
grace-deadline tick (alerts.tick_due): its effect, the claim of a due minute, is what the test waits for.
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.processes import ProcessGroup, wait_for

from .conftest import beat_start, claimed, minute_make_due, process_env, worker_start

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MINUTE = 1_700_000_040_000


def test_worker_and_beat_outlive_a_redis_restored_from_aof_and_an_emptied_redis(own_redis, tmp_path):
    env = process_env(TEST_REDIS_URL=own_redis.url(0), TEST_CELERY_BROKER_URL=own_redis.url(1))
    group = ProcessGroup(env, tmp_path)
    hot = own_redis.client(0)
    recovered: dict[str, float] = {}
    try:
        worker_start(group)
        beat_start(group, "beat", tmp_path)
        minute_make_due(hot, MINUTE)
        wait_for(lambda: claimed(hot, MINUTE), timeout=90, what="the first tick", group=group)

        own_redis.kill()
        own_redis.start()  # from the append-only file: the beat lock and the schedule are back as they were
        hot = own_redis.client(0)
        assert claimed(hot, MINUTE), "the AOF did not restore the claim"
        started = time.monotonic()
        minute_make_due(hot, MINUTE + 60_000)
        wait_for(lambda: claimed(hot, MINUTE + 60_000), timeout=90, what="a tick after the restore", group=group)
        recovered["restored from AOF"] = time.monotonic() - started

        hot.flushall()  # a restart without persistence, a failover, eviction: every key gone
        started = time.monotonic()
        minute_make_due(hot, MINUTE + 120_000)
        wait_for(lambda: claimed(hot, MINUTE + 120_000), timeout=90, what="a tick after emptying", group=group)
        recovered["emptied"] = time.monotonic() - started
        group.assert_running()
    finally:
        group.stop_all()
    for fault, seconds in recovered.items():
        print(f"\nRedis {fault}: a periodic task ran again after {seconds:.1f} s")
    assert "AttributeError" not in group.log("worker")
