"""Celery beat's scheduler: RedBeat, made to survive what happens to its Redis, with a heartbeat for /api/health.

RedBeat keeps the schedule and a scheduler lock in Redis, so exactly one beat sends the periodic tasks. As shipped
it stops a beat for good in three cases this scheduler handles instead:
- the lock is gone or someone else's (Redis emptied, or restored from an older snapshot): extending it raises and
  beat exits. Here the lock is taken again when free; otherwise this beat stands by and keeps trying.
- a lost connection to Redis: the tick raises and beat exits. Here it logs, waits (1 s doubling to 30 s) and retries.
- the schedule entries are gone (Redis emptied): nothing is ever due again. Here they are installed again.
The lock's timeout (settings.CELERY_REDBEAT_LOCK_TIMEOUT, a few seconds, extended at every tick) is what lets the
replacement of a killed beat take over within seconds; RedBeat's default holds it for 25 minutes.

After every tick in which it holds the lock, beat writes `P:beat:heartbeat` (JSON {"ts_ms", "sent_ms", "pid",
"host"}; `sent_ms` is the last time it sent a due task) into the screener's Redis, which /api/health reports as
beat's age.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time

import redis as redis_lib
from redbeat.schedulers import LUA_EXTEND_TO_SCRIPT, RedBeatScheduler, get_redis
from redis.exceptions import LockError

from screener_project.kernel.redis_keys import beat_heartbeat_key, redis_client

logger = logging.getLogger("celery.beat")

HEARTBEAT_TTL_SECONDS = 3600
RETRY_MAX_SECONDS = 30.0


class ScreenerBeatScheduler(RedBeatScheduler):
    _retry_delay = 1.0
    _sent_ms: int | None = None

    def tick(self, min=min, **kwargs) -> float:  # noqa: A002 - RedBeat's signature
        try:
            if self.lock_key and not self._lock_hold():
                return self.max_interval  # another beat holds the lock: stand by
            self._entries_restore()
            interval = self._due_send(min=min)
            self._heartbeat_write()
        except (redis_lib.ConnectionError, redis_lib.TimeoutError) as error:
            delay = self._retry_delay
            self._retry_delay = delay * 2 if delay * 2 < RETRY_MAX_SECONDS else RETRY_MAX_SECONDS
            logger.warning("beat: Redis unreachable (%r); retrying in %.0f s", error, delay)
            return delay
        if self._retry_delay > 1.0:
            logger.info("beat: Redis reachable again")
        self._retry_delay = 1.0
        return interval

    def _lock_hold(self) -> bool:
        """Extend our lock, or take it again when it was lost and is free now; False while another beat has it."""
        if self.lock is not None:
            try:
                self.lock.extend(int(self.lock_timeout))
                return True
            except LockError:
                logger.warning("beat: scheduler lock lost (Redis emptied or restored?); taking it again when free")
        client = get_redis(self.app)
        lock = client.lock(self.lock_key, timeout=self.lock_timeout, sleep=self.max_interval)
        lock.lua_extend = client.register_script(LUA_EXTEND_TO_SCRIPT)  # extend to, not by, as RedBeat does
        if not lock.acquire(blocking=False):
            self.lock = None
            return False
        logger.info("beat: acquired the scheduler lock")
        self.lock = lock
        return True

    def _entries_restore(self) -> None:
        if not get_redis(self.app).exists(self.app.redbeat_conf.schedule_key):
            logger.warning("beat: schedule missing from Redis (emptied?); installing it again")
            self.setup_schedule()

    def _due_send(self, *, min=min) -> float:  # noqa: A002
        # RedBeatScheduler.tick without its lock handling, which _lock_hold replaces.
        remaining = []
        for entry in self.schedule.values():
            next_time_to_run = self.maybe_due(entry, **self._maybe_due_kwargs)
            if next_time_to_run:
                remaining.append(next_time_to_run)
        return min([*remaining, self.max_interval])

    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        result = super().apply_async(entry, producer, advance, **kwargs)
        self._sent_ms = int(time.time() * 1000)
        return result

    def _heartbeat_write(self) -> None:

        now = int(time.time() * 1000)
        beat = {"ts_ms": now, "sent_ms": self._sent_ms, "pid": os.getpid(), "host": socket.gethostname()}
        redis_client().set(beat_heartbeat_key(), json.dumps(beat), ex=HEARTBEAT_TTL_SECONDS)
