"""Load the REST API of a daphne on loopback at a fixed request rate; print latency percentiles as JSON last.

Requests are sent open-loop (on a fixed schedule, whatever the earlier ones are doing) and each latency is measured
from its scheduled moment, so a stalled server cannot hide its stall by slowing the load down.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.alerts.models import AlertHistory
from apps.alerts.services import rules_builtin_seed
from apps.api.bench import daphne_running, percentiles_ms
from apps.collector.candles import data_files, read_csv_candles
from apps.collector.models import Candle1m, Symbol
from screener_project.kernel.redis_keys import redis_client, snapshot_key
from screener_project.kernel.timeframes import SCREENER_TIMEFRAMES

BUNDLED_DATA = settings.BASE_DIR / "data" / "binance-um-1m"


def _workload(symbol: str) -> list[tuple[str, str]]:
    return [
        ("health", "/api/health"),
        ("alerts", "/api/alerts?limit=100"),
        ("alerts_symbol", f"/api/alerts?symbol={symbol}&limit=50"),
        ("metrics", f"/api/metrics/{symbol}"),
        ("symbols", "/api/symbols"),
        ("rules", "/api/rules"),
        ("candles_1m", f"/api/candles/{symbol}?interval=1m&limit=500"),
        ("candles_1h", f"/api/candles/{symbol}?interval=1h&limit=48"),
    ]


def _seed(*, alerts: int, snapshots: bool) -> None:
    """Fill an empty database with real candles (two days of the bundled symbols) and synthetic alerts, and (with
    `snapshots`) give each symbol a synthetic metrics snapshot under the current key prefix."""
    rules_builtin_seed()
    files = data_files(BUNDLED_DATA)
    for symbol, paths in files.items():
        Symbol.objects.get_or_create(symbol=symbol, defaults={"base_asset": symbol.removesuffix("USDT")})
        frame = read_csv_candles(paths).iloc[-2880:]
        Candle1m.objects.bulk_create(
            [
                Candle1m(
                    time=datetime.fromtimestamp(row.open_time / 1000, tz=UTC),
                    symbol=symbol,
                    **{f: getattr(row, f) for f in ("open", "high", "low", "close", "volume", "quote_volume")},
                    trades=row.trades,
                    taker_buy_volume=row.taker_buy_volume,
                    taker_buy_quote_volume=row.taker_buy_quote_volume,
                )
                for row in frame.itertuples()
            ],
            batch_size=2000,
            ignore_conflicts=True,
        )
        if not snapshots:
            continue
        tf = {"open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 1e6, "change_pct": 50.0, "vcp": 0.1}
        timeframes = dict.fromkeys(SCREENER_TIMEFRAMES, tf)
        snapshot = {"symbol": symbol, "timestamp": "2026-01-01T00:00:00Z", "timeframes": timeframes}
        redis_client().hset(snapshot_key(), symbol, json.dumps(snapshot))
    symbols, types = sorted(files), ["big_bull_60m", "pioneer_bull", "top_hunter", "flat_8h"]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    AlertHistory.objects.bulk_create(
        [
            AlertHistory(
                id=uuid.uuid4(),
                triggered_at=start + timedelta(minutes=n // len(symbols)),
                symbol=symbols[n % len(symbols)],
                alert_type=types[n % len(types)],
                price=100.0,
                volume=1e6,
                change_pct=1.0,
                metadata={"seq": n},
            )
            for n in range(alerts)
        ],
        batch_size=2000,
        ignore_conflicts=True,
    )


class Command(BaseCommand):
    help = "Load the REST API at --rate requests/minute for --duration seconds; prints JSON figures last."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--rate", type=float, default=1000.0, help="requests per minute")
        parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
        parser.add_argument("--port", type=int, default=18430, help="port of the daphne this command starts")
        parser.add_argument("--url", help="target a running server instead, e.g. http://127.0.0.1:8000")
        parser.add_argument("--symbol", default="", help="symbol used in the requests (default: the first listed)")
        parser.add_argument("--seed", action="store_true", help="first fill an empty database with bench data")
        parser.add_argument("--seed-alerts", type=int, default=20000)

    def handle(self, *args, **options) -> None:
        if options["rate"] <= 0 or options["duration"] <= 0:
            raise CommandError("--rate and --duration must be positive")
        # The bench comes from one address: lift the per-IP limit of the server it starts.
        server_env = {"ANON_RATE_LIMIT": "1000000/minute"}
        original_prefix = settings.REDIS_KEY_PREFIX
        if options["seed"]:
            if Symbol.objects.exists() or AlertHistory.objects.exists():
                raise CommandError("--seed fills only an empty database; this one has symbols or alerts")
            if not options["url"]:
                # Synthetic snapshots live under a prefix of the run's own, read by the daphne it starts, so the
                # hot store of a screener on the same Redis never shows them.
                private = f"{original_prefix}:bench:{os.getpid()}"
                settings.REDIS_KEY_PREFIX = private
                # (The test settings read their prefix from TEST_REDIS_KEY_PREFIX.)
                server_env |= {"REDIS_KEY_PREFIX": private, "TEST_REDIS_KEY_PREFIX": private}
            _seed(alerts=options["seed_alerts"], snapshots=not options["url"])
        symbol = options["symbol"] or (Symbol.objects.values_list("symbol", flat=True).first() or "BTCUSDT")
        try:
            if options["url"]:
                figures = asyncio.run(self._load(options["url"].rstrip("/"), symbol, options))
            else:
                with daphne_running(port=options["port"], env=server_env) as address:
                    figures = asyncio.run(self._load(f"http://{address}", symbol, options))
        finally:
            if settings.REDIS_KEY_PREFIX != original_prefix:
                client = redis_client()
                for found in client.scan_iter(match=settings.REDIS_KEY_PREFIX + ":*", count=1000):
                    client.delete(found)
                settings.REDIS_KEY_PREFIX = original_prefix
        figures["load_average_1m"] = round(os.getloadavg()[0], 2)
        self.stdout.write(json.dumps(figures))

    async def _load(self, base: str, symbol: str, options: dict) -> dict:
        workload = _workload(symbol)
        total = max(1, int(options["rate"] * options["duration"] / 60.0))
        spacing = 60.0 / options["rate"]
        latencies: dict[str, list[float]] = defaultdict(list)
        statuses: Counter[str] = Counter()
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        async with httpx.AsyncClient(base_url=base, timeout=30.0, limits=limits) as client:
            for _name, path in workload:  # warm-up: imports, connections, query plans
                await client.get(path)

            async def one(n: int, scheduled: float) -> None:
                name, path = workload[n % len(workload)]
                try:
                    response = await client.get(path)
                    statuses[str(response.status_code)] += 1
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1
                    return
                latencies[name].append(time.perf_counter() - scheduled)

            started = time.perf_counter()
            tasks = []
            for n in range(total):
                scheduled = started + n * spacing
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(n, scheduled)))
            await asyncio.gather(*tasks)
            elapsed = time.perf_counter() - started
        everything = [value for values in latencies.values() for value in values]
        return {
            "benchmark": "rest_api",
            "requests": total,
            "rate_per_minute": options["rate"],
            "achieved_per_minute": round(total / elapsed * 60.0, 1),
            **percentiles_ms(everything),
            "statuses": dict(statuses),
            "by_endpoint": {name: percentiles_ms(lat) | {"count": len(lat)} for name, lat in latencies.items()},
        }
