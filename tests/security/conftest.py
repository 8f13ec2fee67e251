"""Fixtures of the security suite: the API tests' own, so that Redis keys (throttle counters, cached schemas) are
cleaned per test and worker threads' database sessions are ended at the close."""

from __future__ import annotations

from tests.api.conftest import clean_redis_prefix, close_thread_connections  # noqa: F401
