from __future__ import annotations

import time

import jwt
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
    """Throttle counters, health signals and snapshots of one test never leak into the next."""
    client = redis_lib.Redis.from_url(settings.REDIS_URL)

    def clear() -> None:
        for found in client.scan_iter(match=settings.REDIS_KEY_PREFIX + ":*", count=1000):
            client.delete(found)

    clear()
    yield
    clear()
    client.close()


def make_token(
    *,
    sub: str = "user-1",
    key: object | None = None,
    algorithm: str = "HS256",
    audience: str = "authenticated",
    expires_in: int = 3600,
    headers: dict | None = None,
    **claims: object,
) -> str:
    now = int(time.time())
    payload = {"sub": sub, "aud": audience, "exp": now + expires_in, "iat": now, "role": "authenticated", **claims}
    return jwt.encode(payload, key if key is not None else settings.SUPABASE_JWT_SECRET, algorithm, headers=headers)


@pytest.fixture
def token_factory():
    return make_token
