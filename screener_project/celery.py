from __future__ import annotations

import os

from celery import Celery
from celery.schedules import crontab
from django.conf import settings as _settings

from screener_project.heap import worker_heap_freeze_connect
from screener_project.observability import celery_metrics_connect, celery_tick_context_connect

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "screener_project.settings.local")

app = Celery("screener")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Workers serve /metrics on METRICS_PORT and drop dead pool children from the multiprocess gauges.
celery_metrics_connect()
# Every log line of a tick's tasks carries its tick id (tasks called with a minute_ms keyword).
celery_tick_context_connect()
# Start-up objects are exempt from garbage collection, so a full collection never stalls a tick (screener_project.heap).
worker_heap_freeze_connect()
# apps.alerts.notifications is a nested app: autodiscover finds its tasks through INSTALLED_APPS as well.

# Every periodic schedule lives here, each with when it runs and why.
app.conf.beat_schedule = {
    # Every 2 s: start the tick of any minute whose grace deadline passed without every symbol closing it
    # (a stalled stream must not hold back the others). Ticks of complete minutes start at once from the collector.
    "tick-due-minutes": {"task": "alerts.tick_due", "schedule": 2.0},
    # Every 10 minutes, at :03, :13, ... (off the minute boundary, away from the ticks): delete candles, metrics and
    # alerts older than RETENTION_HOURS in bounded batches (plain PostgreSQL), or keep TimescaleDB's policy in step.
    "retention-purge": {
        "task": "housekeeping.retention_purge",
        "schedule": crontab(minute="3-59/10"),
        "options": {"queue": "default", "expires": 540},
    },
    # Every 15 s: queue the send task of any destination whose deliveries have waited over 15 s, the safety net for
    # a send task lost to a broker outage or a killed worker (deliveries live in PostgreSQL, so nothing is dropped).
    "notifications-sweep": {
        "task": "notifications.sweep",
        "schedule": 15.0,
        "options": {"queue": "notifications", "expires": 12},
    },
    # Every 10 s: push to browsers any alert of the last 10 minutes whose push never happened (its process was killed
    # between the commit and the push, or the channel layer was away).
    "alerts-push-sweep": {
        "task": "alerts.sweep_pushes",
        "schedule": 10.0,
        "options": {"queue": "default", "expires": 8},
    },
}
# Every ALERTS_NEAR_REAL_TIME_SECONDS (default 5 s), only when that mode is on: evaluate the forming candle of the
# current minute (apps.alerts.near_real_time). It expires before the next run, so a busy worker never piles them up.
if _settings.ALERTS_NEAR_REAL_TIME:
    app.conf.beat_schedule["alerts-near-real-time"] = {
        "task": "alerts.near_real_time",
        "schedule": _settings.ALERTS_NEAR_REAL_TIME_SECONDS,
        "options": {"queue": "ticks", "expires": _settings.ALERTS_NEAR_REAL_TIME_SECONDS},
    }
