"""The indicators task through a real Celery worker on its own queue, against the real Redis and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from apps.metrics.models import MetricsCalculated
from apps.metrics.selectors import indicators_last_run, snapshot_read
from apps.metrics.services import minute_time
from screener_project.celery import app
from screener_project.kernel.timeframes import SCREENER_TIMEFRAMES

from .conftest import SYMBOLS
from .test_bars import minute_of, seed_history
from .test_services import ROW, load_ring

# Starts processes (scripts, workers, daphne): not in `./screener test --fast`.
pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent


@pytest.mark.django_db(transaction=True)
def test_a_worker_on_the_indicators_queue_runs_the_sent_task(redis_client, frames, tmp_path):
    end_ms = minute_of(frames, ROW)
    load_ring(redis_client, frames, ROW)
    seed_history(redis_client, frames, end_ms)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "screener_project.settings.test",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}",
        "TEST_REDIS_URL": settings.REDIS_URL,
        "TEST_CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "TEST_REDIS_KEY_PREFIX": settings.REDIS_KEY_PREFIX,
    }
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [str(BIN / "celery"), "-A", "screener_project", "worker", "-Q", "indicators", "--pool", "solo"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        # Sent by name, as the minute tick sends it; the settings route it to the "indicators" queue.
        app.send_task("metrics.shard_indicators", kwargs={"minute_ms": end_ms, "symbols": SYMBOLS})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (indicators_last_run(redis_client) or {}).get("minute_ms") != end_ms:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            time.sleep(0.2)
        assert (indicators_last_run(redis_client) or {}).get("minute_ms") == end_ms, (
            tmp_path / "worker.log"
        ).read_text()
    finally:
        worker.terminate()
        worker.wait(timeout=20)
        log.close()
    assert MetricsCalculated.objects.filter(time=minute_time(end_ms)).count() == len(SYMBOLS) * len(SCREENER_TIMEFRAMES)
    assert set(snapshot_read(redis_client, symbols=SYMBOLS)) == set(SYMBOLS)
