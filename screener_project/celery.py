from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "screener_project.settings.local")

app = Celery("screener")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# apps.alerts.notifications is a nested app: autodiscover finds its tasks through INSTALLED_APPS as well.

# Every periodic schedule lives here, each with when it runs and why.
app.conf.beat_schedule = {
    # Every 2 s: start the tick of any minute whose grace deadline passed without every symbol closing it
    # (a stalled stream must not hold back the others). Ticks of complete minutes start at once from the collector.
    "tick-due-minutes": {"task": "alerts.tick_due", "schedule": 2.0},
}
