"""`python manage.py run_collector`: the collector daemon (exchange streams -> Redis -> candles_1m, minute ticks)."""

from __future__ import annotations

import asyncio
import logging
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.collector.daemon import Collector, CollectorConfig
from screener_project.kernel.redis_keys import redis_client

logger = logging.getLogger("apps.collector")


class Command(BaseCommand):
    help = "Collect Binance USD-M 1m klines into Redis and candles_1m, and signal each completed minute."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--slice-index", type=int, default=0, help="which slice of the symbols this process owns")
        parser.add_argument("--slice-count", type=int, default=1, help="how many collector processes share them")
        parser.add_argument("--ws-url", default=None, help="WebSocket base URL (default: BINANCE_WS_BASE_URL)")
        parser.add_argument("--rest-url", default=None, help="REST base URL (default: BINANCE_REST_BASE_URL)")
        parser.add_argument(
            "--weight-budget",
            type=int,
            default=settings.COLLECTOR_REST_WEIGHT_BUDGET,
            help="REST weight this process may use per minute (the exchange allows 2,400 per IP)",
        )
        parser.add_argument(
            "--watchdog-seconds", type=float, default=30.0, help="reconnect a connection silent for this long"
        )
        parser.add_argument(
            "--rotate-after-seconds",
            type=float,
            default=23.5 * 3600,
            help="planned overlapping reconnect before the exchange's 24 h limit",
        )
        parser.add_argument("--universe-refresh-seconds", type=float, default=300.0)
        parser.add_argument(
            "--reconcile-seconds",
            type=float,
            default=3.0,
            help="how often to look for minutes a symbol never delivered",
        )
        parser.add_argument("--heartbeat-seconds", type=float, default=2.0)
        parser.add_argument("--no-bars", action="store_true", help="skip seeding the bar history")
        parser.add_argument(
            "--metrics-port", type=int, default=0, help="serve Prometheus metrics on this port (0: off)"
        )
        parser.add_argument(
            "--metrics-addr", default="0.0.0.0", help="address the metrics server binds (127.0.0.1: this host only)"
        )

    def handle(self, *args, **options) -> None:
        if not 0 <= options["slice_index"] < options["slice_count"]:
            raise CommandError("--slice-index must be in [0, --slice-count)")
        config = CollectorConfig(
            ws_base_url=options["ws_url"] or settings.BINANCE_WS_BASE_URL,
            rest_base_url=options["rest_url"] or settings.BINANCE_REST_BASE_URL,
            slice_index=options["slice_index"],
            slice_count=options["slice_count"],
            streams_per_connection=settings.STREAMS_PER_CONNECTION,
            ring_minutes=settings.CANDLE_RING_MINUTES,
            indicator_bars=settings.INDICATOR_BARS,
            allowlist=list(settings.SYMBOL_ALLOWLIST),
            denylist=list(settings.SYMBOL_DENYLIST),
            top_n=settings.SYMBOL_TOP_N,
            weight_budget=options["weight_budget"],
            heartbeat_seconds=options["heartbeat_seconds"],
            watchdog_seconds=options["watchdog_seconds"],
            rotate_after_seconds=options["rotate_after_seconds"],
            universe_refresh_seconds=options["universe_refresh_seconds"],
            reconcile_seconds=options["reconcile_seconds"],
            seed_bars=not options["no_bars"],
            # Forming candles are stored several times per evaluation period, so a check sees a recent one.
            forming_flush_seconds=(
                max(0.25, settings.ALERTS_NEAR_REAL_TIME_SECONDS / 5) if settings.ALERTS_NEAR_REAL_TIME else 0.0
            ),
        )
        for noisy in ("httpx", "httpcore", "websockets"):  # one line per request or connection is too much
            logging.getLogger(noisy).setLevel(logging.WARNING)
        if options["metrics_port"]:
            from screener_project.observability import metrics_http_server_start

            metrics_http_server_start(port=options["metrics_port"], addr=options["metrics_addr"])
        logger.info(
            "collector starting: ws %s, rest %s, redis %s (keys %s:*), slice %d/%d",
            config.ws_base_url,
            config.rest_base_url,
            settings.REDIS_URL,
            settings.REDIS_KEY_PREFIX,
            config.slice_index,
            config.slice_count,
        )
        asyncio.run(self._run(config))

    async def _run(self, config: CollectorConfig) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await Collector(config, redis=redis_client()).run(stop)
