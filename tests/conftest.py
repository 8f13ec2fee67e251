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
    """Tests that start processes (marked e2e) run one after another in two pytest-xdist groups (under
    `--dist loadgroup`, a group stays on one worker): the fault runs in one, the other e2e tests in the other, so at
    most two process trees share the machine, while the remaining tests fill in wherever a worker is free."""
    for item in items:
        if item.get_closest_marker("e2e"):
            group = "faults" if item.path.name == "test_faults.py" else "processes"
            item.add_marker(pytest.mark.xdist_group(group))
