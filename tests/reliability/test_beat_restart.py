"""A beat killed with SIGKILL and started again schedules again within seconds, not after RedBeat's 25 minutes.

Real processes: a Celery worker and beat on this run's Redis and database. The periodic task observed is the
grace-deadline tick (alerts.tick_due, every 2 s): its effect, the claim of a due minute, is what the test waits for.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from django.conf import settings

from apps.api.health import beat_detail
from apps.collector.candles import MINUTE_MS
from screener_project.kernel.redis_keys import key
from tests.e2e.processes import ProcessGroup, wait_for

from .conftest import beat_start, claimed, minute_make_due, process_env, worker_start

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FIRST_MINUTE = 1_700_000_040_000


def test_a_killed_beat_is_replaced_within_seconds(clean_redis, tmp_path):
    group = ProcessGroup(process_env(), tmp_path)
    try:
        worker_start(group)
        first = beat_start(group, "beat-1", tmp_path)
        minute_make_due(clean_redis, FIRST_MINUTE)
        wait_for(lambda: claimed(clean_redis, FIRST_MINUTE), timeout=90, what="the first beat's tick", group=group)

        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        del group.processes["beat-1"]
        started = time.monotonic()
        beat_start(group, "beat-2", tmp_path)
        second_minute = FIRST_MINUTE + MINUTE_MS
        minute_make_due(clean_redis, second_minute)
        wait_for(lambda: claimed(clean_redis, second_minute), timeout=90, what="the new beat's tick", group=group)
        took = time.monotonic() - started
        heartbeat = beat_detail(clean_redis.get(key("beat", "heartbeat")), now_ms=time.time() * 1000)
    finally:
        group.stop_all()
    print(f"\nbeat SIGKILLed: the new beat's periodic task ran {took:.1f} s after it started")
    # The lock of the killed beat expires after its timeout; the new beat polls for it every loop interval.
    bound = settings.CELERY_REDBEAT_LOCK_TIMEOUT + settings.CELERY_BEAT_MAX_LOOP_INTERVAL + 20  # + process start-up
    assert took < bound, f"the new beat took {took:.1f} s (bound {bound} s)"
    assert "Acquired lock" in group.log("beat-2")
    assert heartbeat["state"] == "up" and heartbeat["age_seconds"] < settings.HEALTH_BEAT_STALE_SECONDS
