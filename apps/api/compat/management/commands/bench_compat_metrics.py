"""Time GET {p}/api/metrics/ and {p}/api/tickers for a universe of N symbols, in process; JSON figures last.

The snapshot is written by the real writer (snapshot_write) under a bench key prefix of its own, so a running
screener's snapshot is never touched; the views run through Django's request handling (throttles included).
"""

from __future__ import annotations

import json
import statistics
import time

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand
from django.test import Client, override_settings

from apps.api.compat import market_selectors
from apps.collector.store import active_symbols_set
from apps.metrics.selectors import SNAPSHOT_FIELDS
from apps.metrics.services import VALUE_COLUMNS, ShardIndicators, snapshot_write
from screener_project.kernel.redis_keys import redis_client
from screener_project.kernel.timeframes import SCREENER_TIMEFRAMES


def _snapshot(symbols: list[str]) -> ShardIndicators:
    rng = np.random.default_rng(0)
    values = {
        c: rng.uniform(1, 1e5, size=(len(SCREENER_TIMEFRAMES), len(symbols)))
        for c in {*VALUE_COLUMNS, *SNAPSHOT_FIELDS}
    }
    values["trades"] = np.round(values["trades"])
    return ShardIndicators(minute_ms=1_795_000_000_000 - 1_795_000_000_000 % 60_000, symbols=symbols, values=values,
                           rolled={})  # fmt: skip


def _times_ms(client: Client, path: str, *, repeat: int, cold: bool, **headers: str) -> list[float]:
    out = []
    for _ in range(repeat):
        if cold:
            market_selectors.caches_clear()
        started = time.perf_counter()
        response = client.get(path, **headers)
        out.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    return out


def _summary(times: list[float]) -> dict:
    return {"median_ms": round(statistics.median(times), 2), "p95_ms": round(np.percentile(times, 95), 2)}


class Command(BaseCommand):
    help = "Time the compatibility surface's metrics and tickers endpoints for --symbols symbols."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--symbols", type=int, default=500)
        parser.add_argument("--repeat", type=int, default=30)

    def handle(self, *args, symbols: int, repeat: int, **options) -> None:
        prefix = f"{settings.REDIS_KEY_PREFIX}:bench-compat"
        names = [f"SYM{n:04d}USDT" for n in range(symbols)]
        # No throttling of the bench's own requests; keys under a prefix of its own.
        with override_settings(
            REDIS_KEY_PREFIX=prefix,
            ANON_RATE_LIMIT="1000000/minute",
            ALLOWED_HOSTS=[*settings.ALLOWED_HOSTS, "testserver"],
        ):
            client = redis_client()
            try:
                snapshot_write(client, result=_snapshot(names))
                active_symbols_set(client, names)
                http = Client()
                base = f"/{settings.COMPAT_PREFIX}/api"
                body = http.get(f"{base}/metrics/").content
                figures = {
                    "symbols": symbols,
                    "metrics_body_bytes": len(body),
                    "metrics_warm": _summary(_times_ms(http, f"{base}/metrics/", repeat=repeat, cold=False)),
                    "metrics_cold": _summary(_times_ms(http, f"{base}/metrics/", repeat=repeat, cold=True)),
                    "metrics_gzip_bytes": len(http.get(f"{base}/metrics/", HTTP_ACCEPT_ENCODING="gzip").content),
                    "metrics_gzip_warm": _summary(
                        _times_ms(http, f"{base}/metrics/", repeat=repeat, cold=False, HTTP_ACCEPT_ENCODING="gzip")
                    ),
                    "metrics_gzip_cold": _summary(
                        _times_ms(http, f"{base}/metrics/", repeat=repeat, cold=True, HTTP_ACCEPT_ENCODING="gzip")
                    ),
                    "tickers_warm": _summary(_times_ms(http, f"{base}/tickers", repeat=repeat, cold=False)),
                    "tickers_cold": _summary(_times_ms(http, f"{base}/tickers", repeat=repeat, cold=True)),
                }
                started = time.perf_counter()
                for _ in range(repeat):
                    client.hgetall(f"{prefix}:snapshot")
                figures["redis_hgetall_ms"] = round((time.perf_counter() - started) * 1000 / repeat, 2)
            finally:
                for found in client.scan_iter(match=prefix + ":*", count=1000):
                    client.delete(found)
                market_selectors.caches_clear()
        self.stdout.write(json.dumps(figures))
