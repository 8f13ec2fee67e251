"""Fixtures of the security suite: clean Redis keys per test (throttle counters), database sessions of worker threads
ended at the close, and clients of both REST surfaces."""

from __future__ import annotations

import pytest
import redis as redis_lib
from django.conf import settings


@pytest.fixture(scope="session", autouse=True)
def close_thread_connections(django_db_setup, django_db_blocker):
    """Consumers touch the database from worker threads; end those sessions so the test database can be dropped."""
    yield
    from django.db import connection

    with django_db_blocker.unblock():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


@pytest.fixture(autouse=True)
def clean_redis_prefix():
    """Throttle counters and cached schemas of one test never leak into the next."""
    client = redis_lib.Redis.from_url(settings.REDIS_URL)

    def clear() -> None:
        for found in client.scan_iter(match=settings.REDIS_KEY_PREFIX + ":*", count=1000):
            client.delete(found)

    clear()
    yield
    clear()
    client.close()
