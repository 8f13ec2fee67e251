"""Structured logs: JSON lines, the tick id on every line of a tick, console format on request."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from screener_project.observability import logging_dict
from tests.conftest import REPO_ROOT

# Starts processes (scripts, workers, daphne): not in `./screener test --fast`.
pytestmark = pytest.mark.e2e


TICK_CODE = """
import asyncio, logging
import django
django.setup()
import structlog
from screener_project.observability import tick_context

stdlib = logging.getLogger("apps.metrics.tick")
struct = structlog.get_logger("apps.alerts.tick")

async def shard(n):
    await asyncio.sleep(0)
    stdlib.info("shard %s done", n, extra={"shard": n})

async def main():
    with tick_context("2026-11-20T10:27:00Z"):
        stdlib.info("tick started")
        struct.info("rules evaluated", fired=3)
        await asyncio.gather(shard(0), shard(1))
        try:
            raise RuntimeError("bad frame")
        except RuntimeError:
            stdlib.exception("shard failed")
    stdlib.info("between ticks")

asyncio.run(main())
"""


def _run(log_format: str) -> list[str]:
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="screener_project.settings.test", LOG_FORMAT=log_format)
    done = subprocess.run(
        [sys.executable, "-c", TICK_CODE], env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    return [line for line in done.stderr.splitlines() if line.strip()]


def test_every_line_of_a_tick_is_json_carrying_the_tick_id():
    records = [json.loads(line) for line in _run("json")]
    by_event = {r["event"]: r for r in records}
    inside = ["tick started", "rules evaluated", "shard 0 done", "shard 1 done", "shard failed"]
    for event in inside:
        assert by_event[event]["tick_id"] == "2026-11-20T10:27:00Z", event
        assert by_event[event]["level"] in ("info", "error")
        assert by_event[event]["timestamp"].endswith("Z")
    assert by_event["rules evaluated"]["fired"] == 3
    assert by_event["shard 1 done"]["shard"] == 1
    assert "RuntimeError: bad frame" in by_event["shard failed"]["exception"]
    assert "tick_id" not in by_event["between ticks"]


def test_console_format_is_a_setting():
    lines = _run("console")
    started = next(line for line in lines if "tick started" in line)
    assert "tick_id=2026-11-20T10:27:00Z" in started
    with pytest.raises(json.JSONDecodeError):
        json.loads(started)


def test_unknown_log_format_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        logging_dict(log_format="xml")


REAL_TICK_CODE = """
import django
django.setup()
from apps.alerts.tasks import tick_due, tick_minute
tick_minute.apply(kwargs={"minute_ms": 1763634420000})  # 2025-11-20T10:27Z
tick_due.apply()
"""


def test_the_real_tick_task_logs_with_its_tick_id(redis_client):
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="screener_project.settings.test",
        LOG_FORMAT="json",
        LOG_LEVEL_CELERY_TASKS="INFO",  # Celery's per-task lines are quiet by default
    )
    done = subprocess.run(
        [sys.executable, "-c", REAL_TICK_CODE], env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    records = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    started = [r for r in records if r["event"].startswith("tick 1763634420000 started")]
    assert len(started) == 1
    assert started[0]["tick_id"] == "2025-11-20T10:27Z"
    assert started[0]["task"] == "alerts.tick"
    # the context ends with the task: nothing logged by the next task carries the tick id
    after = records[records.index(started[0]) + 1 :]
    due = [r for r in after if "alerts.tick_due" in r["event"]]
    assert due and all("tick_id" not in r for r in due)
    # Celery's own line about the tick task is inside the context too
    assert any(r["event"].startswith("Task alerts.tick[") and r.get("tick_id") for r in records)


def test_celery_per_task_lines_are_quiet_by_default(redis_client):
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="screener_project.settings.test", LOG_FORMAT="json")
    env.pop("LOG_LEVEL_CELERY_TASKS", None)
    done = subprocess.run(
        [sys.executable, "-c", REAL_TICK_CODE], env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    records = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert any(r["event"].startswith("tick 1763634420000 started") for r in records)
    assert not any(r["event"].startswith("Task alerts.") for r in records)


def test_access_lines_are_structured_records(caplog):
    import asyncio
    import logging

    from screener_project.access_log import AccessLogMiddleware

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"nope"})

    async def call() -> None:
        async def receive():
            return {"type": "http.request", "body": b""}

        async def send(message):
            return None

        scope = {"type": "http", "method": "GET", "path": "/api/x", "client": ("10.1.1.1", 5000)}
        await AccessLogMiddleware(app)(scope, receive, send)

    with caplog.at_level(logging.INFO, logger="screener.access"):
        asyncio.run(call())
    (record,) = [r for r in caplog.records if r.name == "screener.access"]
    assert record.getMessage() == "GET /api/x 404"
    assert (record.status_code, record.bytes, record.client) == (404, 4, "10.1.1.1")
    assert record.duration_ms >= 0


def test_a_502_a_view_chose_is_a_warning_and_an_exception_stays_an_error():
    import logging

    from screener_project.observability import Answered5xxFilter

    answered = logging.LogRecord("django.request", logging.ERROR, __file__, 1, "Bad Gateway: %s", ("/x",), None)
    answered.status_code = 502
    assert Answered5xxFilter().filter(answered) and answered.levelno == logging.WARNING
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        crashed = logging.LogRecord(
            "django.request", logging.ERROR, __file__, 1, "Internal Server Error", (), sys.exc_info()
        )
    crashed.status_code = 502
    assert Answered5xxFilter().filter(crashed) and crashed.levelno == logging.ERROR
