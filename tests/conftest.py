from __future__ import annotations

from pathlib import Path

import pytest
import redis as redis_lib
from django.conf import settings

REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_DATA = REPO_ROOT / "data" / "binance-um-1m"


@pytest.fixture
def redis_client() -> redis_lib.Redis:
    """The real Redis (test database), emptied of this run's keys before and after the test."""
    client = redis_lib.Redis.from_url(settings.REDIS_URL)

    def clear() -> None:
        for found in client.scan_iter(match=settings.REDIS_KEY_PREFIX + ":*", count=1000):
            client.delete(found)

    clear()
    yield client
    clear()
    client.close()


@pytest.fixture(scope="session")
def bundled_data_dir() -> Path:
    return BUNDLED_DATA


def pytest_collection_modifyitems(config, items):
    """Tests that start processes (marked e2e) share one pytest-xdist group: under `--dist loadgroup` they run on one
    worker, one after another, while the other workers take the rest; two process trees never compete for the CPU."""
    for item in items:
        if item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.xdist_group("processes"))
