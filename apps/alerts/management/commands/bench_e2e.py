"""`python manage.py bench_e2e --symbols 500 --clients 500 --minutes 10`: from the exchange's close to the browser.

Starts the whole system on 127.0.0.1, each process real: the exchange simulator (the bundled data shifted to now,
`--symbols` of them synthesized from it, closing klines spread by the close-time profile), the collector, a Celery
worker and beat, daphne, and `--clients` WebSocket clients of /ws/alerts. It waits until the pipeline runs, then
measures `--minutes` whole minutes at the exchange's own pace and stops every process it started.

Per alert and client: from the moment the simulator sent the symbol's closing kline (`/sim/closes`) to the frame's
receipt ("close_to_receipt"), and from the minute boundary (the alert's triggered_at) to the receipt
("boundary_to_receipt"): p50, p99, max; the missing receipts (alert_history rows times clients, less what arrived)
and duplicates. Alerts of a symbol whose closing kline never came (a silent symbol: its candle arrives by REST after
the grace deadline) are counted apart, as are the profile's own p99 arrival and the close frames' observed one. The
stages of the path, from the alerts' own timestamps: closing frame -> batch (or tick) sent by the collector ->
evaluated -> pushed to the channel layer (per alert), and pushed -> receipt (per client).

Everything lives under a Redis key prefix of its own (test settings: their Redis databases, prefixed keys and
broker queues) and in its own PostgreSQL database (`--database`, created and migrated when missing, kept for the
next run), so a screener running on the same machine is untouched. The last line printed is one JSON object.
"""

from __future__ import annotations

import asyncio
import gc
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import psycopg2
import redis as redis_lib
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.test.utils import override_settings
from prometheus_client.parser import text_string_to_metric_families

from apps.api.bench import percentiles_ms
from apps.api.management.commands.bench_ws import clients_open
from apps.collector.candles import MINUTE_MS, data_files
from apps.collector.simulator import CLOSE_PROFILES
from screener_project.kernel.redis_keys import tick_last_key

BIN = Path(sys.executable).parent
TEST_REDIS_URL = "redis://127.0.0.1:6379/14"
TEST_BROKER_URL = "redis://127.0.0.1:6379/15"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cpu_seconds(roots: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each named group of processes and their descendants (a worker's
    pool)."""
    ticks, parents = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        parents[int(entry)] = int(fields[1])
        ticks[int(entry)] = int(fields[11]) + int(fields[12])
    hertz = os.sysconf("SC_CLK_TCK")
    used = {}
    for name, tops in roots.items():
        family, frontier = set(tops), list(tops)
        while frontier:
            children = [pid for pid, parent in parents.items() if parent in frontier and pid not in family]
            family.update(children)
            frontier = children
        used[name] = sum(ticks.get(pid, 0) for pid in family) / hertz
    return used


def _websocket_frames(web_port: int) -> dict[str, float]:
    """daphne's alert frames by how they left ("direct": written at once; "queued": behind other frames, or held while
    a client's send buffer was full) and the clients it closed as too slow."""
    token = os.environ.get("METRICS_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    text = httpx.get(f"http://127.0.0.1:{web_port}/metrics", headers=headers, timeout=5).text
    frames: dict[str, float] = {"direct": 0.0, "queued": 0.0, "closed_slow": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "screener_websocket_alert_frames_total":
                frames[sample.labels["path"]] = sample.value
            elif sample.name == "screener_websocket_events_total" and sample.labels["event"] == "closed_slow":
                frames["closed_slow"] = sample.value
    return frames


def _servers(*commands: str) -> dict[str, list[int]]:
    """The topmost process of each of these command names (a server and its backends)."""
    names = {}
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/comm") as comm, open(f"/proc/{entry}/stat") as stat:
                name, parent = comm.read().strip(), int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{parent}/comm") as comm:
                parent_name = comm.read().strip()
        except (OSError, ValueError):
            continue
        if name in commands and parent_name != name:
            names[name] = [int(entry)]
    return names


def _client_process(url: str, count: int, first_index: int, conn) -> None:
    gc.disable()  # a collection over the receipts would stall every socket of the process at once
    asyncio.run(_clients(url, count, first_index, conn))


async def _clients(url: str, count: int, first_index: int, conn) -> None:
    loop = asyncio.get_running_loop()
    receipts: list[tuple[int, int, bytes]] = []
    connected, transports = await clients_open(
        [url], count=count, first_index=first_index, receipts=receipts, warm=set()
    )
    conn.send(("ready", connected))
    while True:
        if await loop.run_in_executor(None, conn.poll, 0.2) and conn.recv() == "stop":
            break
    for transport in transports:
        transport.close()
    results = []
    for index, received_ns, frame in receipts:
        message = orjson.loads(frame)
        if message.get("type") != "alert":
            continue
        data = message.get("data", {})
        results.append((data.get("symbol"), data.get("alert_type"), data.get("triggered_at"), index, received_ns))
    conn.send(("receipts", results))


class Command(BaseCommand):
    help = (
        "Run the whole system on loopback (simulator with a close-time profile, collector, worker, beat, daphne, "
        "WebSocket clients) and time each alert from the symbol's closing kline and from the minute boundary to "
        "every client's receipt; prints JSON last."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--symbols", type=int, default=500, help="symbols replayed (the bundled ones, then synthesized)"
        )
        parser.add_argument("--clients", type=int, default=500, help="WebSocket clients of /ws/alerts")
        parser.add_argument("--minutes", type=int, default=10, help="whole minutes measured, once the pipeline runs")
        parser.add_argument("--client-procs", type=int, default=2, help="processes the clients are spread over")
        parser.add_argument("--concurrency", type=int, default=2, help="the Celery worker's processes")
        parser.add_argument("--shards", type=int, default=settings.SHARD_COUNT)
        parser.add_argument("--batch-ms", type=int, default=settings.TICK_BATCH_MS, help="TICK_BATCH_MS of the run")
        parser.add_argument("--close-profile", choices=sorted(CLOSE_PROFILES), default="binance")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--database", default="bench_e2e", help="PostgreSQL database of the run")
        parser.add_argument("--data", type=Path, default=settings.BASE_DIR / "data" / "binance-um-1m")
        parser.add_argument("--log-dir", type=Path, default=None, help="keep the processes' logs here")
        parser.add_argument("--warmup-timeout", type=float, default=600.0, help="seconds allowed to reach live")

    def handle(self, *args, **options) -> None:
        if min(options["symbols"], options["clients"], options["minutes"], options["client_procs"]) < 1:
            raise CommandError("--symbols, --clients, --minutes and --client-procs must be at least 1")
        bundled = len(data_files(options["data"]))
        if not bundled:
            raise CommandError(f"no <SYMBOL>-1m*.csv[.gz] files under {options['data']}")
        database_url = self._database(options["database"])
        prefix = f"bench_e2e_{os.getpid()}"
        sim_port, web_port = _free_port(), _free_port()
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "screener_project.settings.test",
            "DATABASE_URL": database_url,
            "TEST_REDIS_URL": TEST_REDIS_URL,
            "TEST_CELERY_BROKER_URL": TEST_BROKER_URL,
            "TEST_REDIS_KEY_PREFIX": prefix,
            "BINANCE_WS_BASE_URL": f"ws://127.0.0.1:{sim_port}",
            "BINANCE_REST_BASE_URL": f"http://127.0.0.1:{sim_port}",
            "SHARD_COUNT": str(options["shards"]),
            "TICK_BATCH_MS": str(options["batch_ms"]),
            "COLLECTOR_REST_WEIGHT_BUDGET": "1000000",
            "DJANGO_DEBUG": "false",
            "TEST_DATABASE_ASYNC_COMMIT": "false",  # commits wait for the disk, as in a deployment
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("CELERY_BROKER_URL", None)
        log_dir = options["log_dir"] or Path(tempfile.mkdtemp(prefix="bench_e2e_"))
        log_dir.mkdir(parents=True, exist_ok=True)
        processes: dict[str, subprocess.Popen] = {}

        def start(name: str, *command: str) -> None:
            log = open(log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
            processes[name] = subprocess.Popen(
                command, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

        manage = (sys.executable, "manage.py")
        redis = redis_lib.Redis.from_url(TEST_REDIS_URL)
        started = time.monotonic()
        figures: dict = {}
        try:
            start(
                "daphne",
                str(BIN / "daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(web_port),
                "screener_project.asgi:application",
            )
            start(
                "worker",
                str(BIN / "celery"),
                "-A",
                "screener_project",
                "worker",
                "-Q",
                "ticks,shards,indicators,notifications,default",
                "--concurrency",
                str(options["concurrency"]),
                "--loglevel",
                "INFO",
            )
            start("beat", str(BIN / "celery"), "-A", "screener_project", "beat", "--schedule", str(log_dir / "beat"))
            start(
                "simulator",
                *manage,
                "run_exchange_sim",
                "--data",
                str(options["data"]),
                "--port",
                str(sim_port),
                "--shift-to-now",
                "--synthesize",
                str(max(0, options["symbols"] - bundled)),
                "--close-profile",
                options["close_profile"],
                "--seed",
                str(options["seed"]),
                "--weight-limit",
                "1000000",
            )
            self._wait(
                lambda: self._http_ok(f"http://127.0.0.1:{sim_port}/sim/status"), 120, "the simulator", processes
            )
            start("collector", *manage, "run_collector")
            # Live: a shard finished a minute the collector completed after its warm-up.
            with override_settings(REDIS_KEY_PREFIX=prefix):
                ticked = tick_last_key()
            self._wait(lambda: redis.exists(ticked), options["warmup_timeout"], "the first tick", processes)
            warmup_s = time.monotonic() - started
            figures = self._measure(options, web_port, sim_port, env, database_url, processes)
            figures["warmup_s"] = round(warmup_s, 1)
        finally:
            for process in processes.values():
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            for process in processes.values():
                try:
                    process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            for client_url in (TEST_REDIS_URL, TEST_BROKER_URL):
                client = redis_lib.Redis.from_url(client_url)
                for found in client.scan_iter(match=f"{prefix}:*", count=1000):
                    client.delete(found)
        figures["logs"] = str(log_dir)
        self.stdout.write(json.dumps(figures))

    # ------------------------------------------------------------------------------------------------- set-up
    def _database(self, name: str) -> str:
        db = connection.settings_dict
        auth = db.get("USER") or "postgres"
        if db.get("PASSWORD"):
            auth += f":{db['PASSWORD']}"
        url = f"postgres://{auth}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{name}"
        admin = psycopg2.connect(
            dbname="postgres",
            user=db.get("USER") or "postgres",
            password=db.get("PASSWORD") or None,
            host=db.get("HOST") or "127.0.0.1",
            port=db.get("PORT") or 5432,
        )
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if cursor.fetchone() is None:
                cursor.execute(f'CREATE DATABASE "{name}"')
        admin.close()
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
            cwd=settings.BASE_DIR,
            env={**os.environ, "DATABASE_URL": url},
            check=True,
        )
        return url

    @staticmethod
    def _http_ok(url: str) -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    @staticmethod
    def _wait(condition, timeout: float, what: str, processes: dict[str, subprocess.Popen]) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            for name, process in processes.items():
                if process.poll() is not None:
                    raise CommandError(f"{name} exited with {process.returncode} while waiting for {what}")
            if time.monotonic() > deadline:
                raise CommandError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(0.5)

    # ------------------------------------------------------------------------------------------------- the run
    def _measure(self, options, web_port: int, sim_port: int, env, database_url: str, processes) -> dict:
        clients, procs = options["clients"], min(options["client_procs"], options["clients"])
        context = multiprocessing.get_context("fork")
        pipes, children, first = [], [], 0
        url = f"ws://127.0.0.1:{web_port}/ws/alerts"
        for n in range(procs):
            count = clients // procs + (1 if n < clients % procs else 0)
            parent_end, child_end = context.Pipe()
            child = context.Process(target=_client_process, args=(url, count, first, child_end), daemon=True)
            child.start()
            pipes.append(parent_end)
            children.append(child)
            first += count
        closes: dict[int, dict[str, int]] = {}
        sim = f"http://127.0.0.1:{sim_port}/sim/closes"
        roots = {name: [process.pid] for name, process in processes.items()}
        roots["clients"] = [child.pid for child in children]
        # Redis is one process, shared with anything else running on the machine (PostgreSQL's backends come and go,
        # so their time cannot be summed this way).
        roots.update(_servers("redis-server"))
        try:
            connected = sum(self._expect(pipe, "ready", 120) for pipe in pipes)
            cpu_before, cpu_started = _cpu_seconds(roots), time.monotonic()
            # Whole minutes: from the next boundary (a second of margin), for --minutes minutes.
            now_ms = int(time.time() * 1000)
            first_minute = (now_ms + 1000) // MINUTE_MS * MINUTE_MS + MINUTE_MS  # open time of the first minute
            last_minute = first_minute + (options["minutes"] - 1) * MINUTE_MS
            # Wait past the last minute's close, its grace deadline and a REST repair of a silent symbol's candle.
            end = (last_minute + MINUTE_MS) / 1000 + settings.TICK_GRACE_SECONDS + 15
            while time.time() < end:
                time.sleep(min(20.0, max(0.1, end - time.time())))
                closes.update({int(m): v for m, v in httpx.get(sim, timeout=5).json().items()})
                for name, process in processes.items():
                    if process.poll() is not None:
                        raise CommandError(f"{name} exited with {process.returncode} during the run")
            # The alerts first, then a few seconds for their frames: an alert created after the query (a silent
            # symbol's candle repaired at the very end) is left out rather than counted missing.
            cpu_after, cpu_seconds = _cpu_seconds(roots), time.monotonic() - cpu_started
            alerts = self._alerts(database_url, first_minute, last_minute)
            time.sleep(3)
            for pipe in pipes:
                pipe.send("stop")
            receipts = [r for pipe in pipes for r in self._expect(pipe, "receipts", 120)]
        finally:
            for child in children:
                child.join(timeout=10)
                if child.is_alive():
                    child.terminate()
        figures = self._figures(options, alerts, receipts, closes, connected, first_minute, last_minute)
        figures["websocket_frames"] = _websocket_frames(web_port)
        # CPU seconds each part used per minute, on average over the run; the work comes in a rush after each minute
        # boundary, so a second there can be saturated while the minute's average is low.
        figures["cpu_seconds_per_minute"] = {
            name: round((cpu_after[name] - cpu_before[name]) * 60 / cpu_seconds, 2) for name in sorted(roots)
        }
        figures["cpu_count"] = os.cpu_count()
        return figures

    @staticmethod
    def _expect(pipe, kind: str, timeout: float):
        if not pipe.poll(timeout):
            raise CommandError(f"client process did not report {kind!r} in {timeout} s")
        got, value = pipe.recv()
        if got != kind:
            raise CommandError(f"client process reported {got!r}, expected {kind!r}")
        return value

    @staticmethod
    def _alerts(database_url: str, first_minute: int, last_minute: int) -> dict[tuple[str, str, int], dict]:
        """(symbol, alert_type, open time of minute t) -> the pipeline timestamps of the alerts of the measured
        minutes (received_ms: the batch or tick sent, evaluated_ms, pushed_ms)."""
        with psycopg2.connect(database_url) as db, db.cursor() as cursor:
            cursor.execute(
                "SELECT symbol, alert_type, (extract(epoch FROM triggered_at) * 1000)::bigint, "
                "metadata->'timestamps' FROM alert_history "
                "WHERE triggered_at >= to_timestamp(%s) AND triggered_at <= to_timestamp(%s)",
                [(first_minute + MINUTE_MS) / 1000, (last_minute + MINUTE_MS) / 1000],
            )
            return {
                (symbol, alert_type, close_ms - MINUTE_MS): stamps or {}
                for symbol, alert_type, close_ms, stamps in cursor.fetchall()
            }

    @staticmethod
    def _figures(options, alerts, receipts, closes, connected: int, first_minute: int, last_minute: int) -> dict:
        from datetime import datetime

        seen: dict[tuple[str, str, int, int], int] = {}
        duplicates = 0
        for symbol, alert_type, triggered_at, index, received_ns in receipts:
            close_ms = int(datetime.fromisoformat(triggered_at.replace("Z", "+00:00")).timestamp() * 1000)
            key = (symbol, alert_type, close_ms - MINUTE_MS, index)
            if key[:3] not in alerts:
                continue
            if key in seen:
                duplicates += 1
                continue
            seen[key] = received_ns // 1_000_000
        from_close, from_boundary, silent_from_boundary, from_push = [], [], [], []
        for (symbol, alert_type, minute, _index), received_ms in seen.items():
            boundary = minute + MINUTE_MS
            pushed = alerts[(symbol, alert_type, minute)].get("pushed_ms")
            if pushed is not None:
                from_push.append((received_ms - pushed) / 1000)
            sent = closes.get(minute, {}).get(symbol)
            if sent is None:  # a silent symbol: its candle came by REST
                silent_from_boundary.append((received_ms - boundary) / 1000)
                continue
            from_close.append((received_ms - sent) / 1000)
            from_boundary.append((received_ms - boundary) / 1000)
        # Per alert (not per client): closing frame -> batch or tick sent -> evaluated -> pushed.
        stages: dict[str, list[float]] = {"close_to_sent": [], "sent_to_evaluated": [], "evaluated_to_pushed": []}
        for (symbol, _alert_type, minute), stamps in alerts.items():
            sent = closes.get(minute, {}).get(symbol)
            if sent is None or not {"received_ms", "evaluated_ms", "pushed_ms"} <= set(stamps):
                continue
            stages["close_to_sent"].append((stamps["received_ms"] - sent) / 1000)
            stages["sent_to_evaluated"].append((stamps["evaluated_ms"] - stamps["received_ms"]) / 1000)
            stages["evaluated_to_pushed"].append((stamps["pushed_ms"] - stamps["evaluated_ms"]) / 1000)
        arrivals = [
            (sent - (minute + MINUTE_MS)) / 1000
            for minute, sent_by_symbol in closes.items()
            if first_minute <= minute <= last_minute
            for sent in sent_by_symbol.values()
        ]
        profile = CLOSE_PROFILES[options["close_profile"]]
        close = percentiles_ms(from_close)
        boundary = percentiles_ms(from_boundary)
        silent = percentiles_ms(silent_from_boundary)
        observed = percentiles_ms(arrivals)
        return {
            "benchmark": "e2e_close_to_browser",
            "symbols": options["symbols"],
            "clients": options["clients"],
            "connected": connected,
            "minutes": options["minutes"],
            "shards": options["shards"],
            "worker_concurrency": options["concurrency"],
            "batch_ms": options["batch_ms"],
            "close_profile": options["close_profile"],
            "alerts": len(alerts),
            "receipts": len(seen),
            "missing_receipts": len(alerts) * connected - len(seen),
            "duplicate_receipts": duplicates,
            "close_to_receipt_p50_ms": close["p50_ms"],
            "close_to_receipt_p99_ms": close["p99_ms"],
            "close_to_receipt_max_ms": close["max_ms"],
            "boundary_to_receipt_p50_ms": boundary["p50_ms"],
            "boundary_to_receipt_p99_ms": boundary["p99_ms"],
            "boundary_to_receipt_max_ms": boundary["max_ms"],
            **{
                f"{name}_{point}": figures[point]
                for name, values in stages.items()
                for figures in [percentiles_ms(values)]
                for point in ("p50_ms", "p99_ms")
            },
            "pushed_to_receipt_p50_ms": percentiles_ms(from_push)["p50_ms"],
            "pushed_to_receipt_p99_ms": percentiles_ms(from_push)["p99_ms"],
            "close_arrival_p99_ms": observed["p99_ms"],
            "profile_arrival_p99_ms": round(profile.quantile_ms(0.99), 2),
            "silent_symbol_receipts": len(silent_from_boundary),
            "silent_symbol_boundary_to_receipt_p50_ms": silent["p50_ms"],
            "load_average_1m": round(os.getloadavg()[0], 2),
        }
