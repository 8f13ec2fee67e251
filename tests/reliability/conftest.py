"""Real processes (Celery worker and beat, the collector) against this run's database and Redis, for fault tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis as redis_lib
from django.conf import settings
from django.db import connection

from tests.e2e.processes import BIN, ProcessGroup

# The broadcast features a Redis broker gains nothing from, and whose reconnection after a Redis restart crashed
# workers (gossip closing a channel whose connection is already gone): the way the screener starts its workers.
WORKER_FLAGS = ("--without-gossip", "--without-mingle", "--without-heartbeat")


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
