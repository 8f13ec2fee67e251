"""`python manage.py replay_reset --no-input`: forget everything a replay of the simulator left, so the next run can
replay the same minutes.

A replay's minutes are in the past and repeat from one run to the next. The pipeline keys its state by minute
(ticks claimed, each shard's last minute, alerts claimed in alert_history, candles already stored), so a second run
over the same minutes would skip them all: no ticks, no alerts, a "stale" health. This deletes that state: every
Redis key under REDIS_KEY_PREFIX (hot store, Celery queues, beat schedule, channel layer, cache) and the rows of the
time-series tables. Rules, users, settings and destinations stay.

It only runs in the sandbox `./screener run --offline` sets up (SCREENER_SANDBOX=1, with a database and key prefix
of its own), so a live screener's data can never be wiped by it.
"""

from __future__ import annotations

import os

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

# Rows of a replay; truncated together (deliveries and their attempts reference alerts).
REPLAY_TABLES = (
    "notification_delivery_attempts",
    "notification_deliveries",
    "alert_history",
    "metrics_calculated",
    "candles_1m",
)


class Command(BaseCommand):
    help = "Delete a simulator replay's state (Redis keys under the prefix, time-series rows); sandbox only."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--no-input", action="store_true", help="do not ask for confirmation")

    def handle(self, *args, **options) -> None:
        if os.environ.get("SCREENER_SANDBOX") != "1":
            raise CommandError(
                "replay_reset only runs in the offline sandbox (SCREENER_SANDBOX=1, as `./screener run --offline` "
                "sets it); it would delete a live screener's candles and alerts."
            )
        prefix = settings.REDIS_KEY_PREFIX
        database = connection.settings_dict["NAME"]
        if not options["no_input"]:
            answer = input(f"Delete Redis keys {prefix}:* and the candles, metrics and alerts of {database}? [y/N] ")
            if answer.strip().lower() != "y":
                raise CommandError("cancelled")
        deleted = 0
        for url in dict.fromkeys([settings.REDIS_URL, settings.CELERY_BROKER_URL]):
            client = redis.Redis.from_url(url)
            batch = []
            for found in client.scan_iter(match=f"{prefix}:*", count=1000):
                batch.append(found)
                if len(batch) >= 1000:
                    deleted += client.delete(*batch)
                    batch = []
            if batch:
                deleted += client.delete(*batch)
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {', '.join(REPLAY_TABLES)}")
        self.stdout.write(
            f"replay state reset: {deleted} Redis keys under {prefix}:*, tables {', '.join(REPLAY_TABLES)}"
        )
