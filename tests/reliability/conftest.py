"""Real processes (Celery worker and beat, the collector) against this run's database and Redis, for fault tests."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import redis as redis_lib
from django.conf import settings
from django.db import connection

from apps.collector.candles import MINUTE_MS
from screener_project.kernel.redis_keys import key
from tests.e2e.processes import BIN, ProcessGroup, free_port, wait_for

# Broadcast features the screener gains nothing from, and whose reconnection after a Redis restart crashed workers
# (gossip closing a channel whose connection is already gone): the way the screener starts its workers.
WORKER_FLAGS = ("--without-gossip", "--without-mingle")


def minute_make_due(client: redis_lib.Redis, minute_ms: int) -> None:
    """A minute one symbol closed, with the exchange clock past its grace deadline: beat's tick_due starts it."""
    client.sadd(key("closed", minute_ms), "BTCUSDT")
    client.set(key("collector", "clock"), minute_ms + MINUTE_MS + int(settings.TICK_GRACE_SECONDS * 1000) + 1000)


def claimed(client: redis_lib.Redis, minute_ms: int) -> bool:
    return bool(client.exists(key("tick", "claimed", minute_ms)))


def process_env(**extra: str) -> dict[str, str]:
    """The environment of a process of this test run: its database, Redis databases and key prefix."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "screener_project.settings.test",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}",
        "TEST_REDIS_URL": settings.REDIS_URL,
        "TEST_CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "TEST_REDIS_KEY_PREFIX": settings.REDIS_KEY_PREFIX,
        "TEST_DATABASE_NAME": connection.settings_dict["NAME"],
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def worker_start(group: ProcessGroup, name: str = "worker", *, queues: str = "ticks,shards,notifications,default"):
    return group.start(
        name,
        str(BIN / "celery"),
        "-A",
        "screener_project",
        "worker",
        "-Q",
        queues,
        "--concurrency",
        "1",
        "--hostname",
        f"{name}@%h",
        "--loglevel",
        "INFO",
        *WORKER_FLAGS,
    )


def beat_start(group: ProcessGroup, name: str, tmp_path: Path):
    return group.start(
        name,
        str(BIN / "celery"),
        "-A",
        "screener_project",
        "beat",
        "--loglevel",
        "INFO",
        "--schedule",
        str(tmp_path / f"{name}-schedule"),
    )


@pytest.fixture
def clean_redis():
    """This run's keys emptied from the hot store and the broker, before and after."""
    clients = [redis_lib.Redis.from_url(settings.REDIS_URL), redis_lib.Redis.from_url(settings.CELERY_BROKER_URL)]

    def clear() -> None:
        for client in clients:
            for found in client.scan_iter(match=settings.REDIS_KEY_PREFIX + ":*", count=1000):
                client.delete(found)

    clear()
    yield clients[0]
    clear()


class OwnRedis:
    """A redis-server of the test's own on a free port, with AOF on, that the test may kill, restart and empty."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"]
            + ["--appendfsync", "always", "--dir", str(self.directory), "--logfile", str(self.directory / "redis.log")],
        )
        client = self.client()
        wait_for(lambda: _pings(client), timeout=20, what="redis-server")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis_lib.Redis:
        return redis_lib.Redis.from_url(self.url(db), socket_timeout=5)


def _pings(client: redis_lib.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis_lib.RedisError:
        return False


@pytest.fixture
def own_redis(tmp_path):
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()
