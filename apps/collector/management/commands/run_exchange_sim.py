"""`python manage.py run_exchange_sim`: serve the Binance USD-M exchange simulator on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import signal
import time
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.collector.simulator import (
    CLOSE_PROFILES,
    WEIGHT_LIMIT_1M,
    CloseProfile,
    ExchangeSimulator,
    Faults,
    market_load,
    replay_start_default,
    shift_to_now,
)

logger = logging.getLogger("apps.collector.simulator")


def _iso_ms(value: str) -> int:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise CommandError("--start needs a time zone, e.g. 2025-05-10T18:18:00Z")
    return int(moment.timestamp() * 1000)


def close_profile_from_options(options: dict) -> CloseProfile:
    """The --close-profile preset with the --close-* options given over it, seeded by --seed."""
    overrides = {
        name: options[f"close_{option}"]
        for name, option in (
            ("median_ms", "median_ms"),
            ("body_max_ms", "body_max_ms"),
            ("tail", "tail"),
            ("tail_max_ms", "tail_max_ms"),
            ("silent", "silent"),
        )
        if options.get(f"close_{option}") is not None
    }
    return dataclasses.replace(CLOSE_PROFILES[options["close_profile"]], seed=options["seed"], **overrides)


class Command(BaseCommand):
    help = "Replay 1m candle files over Binance USD-M's WebSocket and REST protocol (exchange simulator)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--data",
            default=str(settings.BASE_DIR / "data" / "binance-um-1m"),
            help="directory of <SYMBOL>-1m*.csv[.gz] files",
        )
        parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per wall second")
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument(
            "--start",
            default=None,
            help="ISO time the replay starts at (default: --history-days after the first candle)",
        )
        parser.add_argument(
            "--history-days",
            type=int,
            default=1,
            help="without --start, days of the data before the replay starts: what REST serves as history (bars "
            "for the charts, daily changes for the rules)",
        )
        parser.add_argument("--minutes", type=int, default=None, help="stop the replay after N simulated minutes")
        parser.add_argument(
            "--shift-to-now",
            action="store_true",
            help="move the data in time so the replay starts at the current minute (prices and volumes unchanged), "
            "its clock the wall clock (minute boundaries as live) unless --hold-until-connect",
        )
        parser.add_argument(
            "--synthesize",
            type=int,
            default=0,
            help="add N synthetic symbols (SYNnnnnUSDT) replaying the real data, for scale runs",
        )
        parser.add_argument("--weight-limit", type=int, default=WEIGHT_LIMIT_1M, help="REST weight per minute")
        parser.add_argument(
            "--hold-until-connect",
            type=int,
            nargs="?",
            const=1,
            default=0,
            metavar="N",
            help="keep the simulated clock at --start until N WebSocket clients have connected (default N: 1)",
        )
        parser.add_argument(
            "--unlisted",
            default="",
            help="comma-separated symbols of the data not listed at start (GET /sim/list?symbol= lists one)",
        )
        parser.add_argument("--ping-interval", type=float, default=180.0, help="wall seconds between ping frames")
        closes = parser.add_argument_group(
            "close-time profile: when each symbol's closing kline goes out after the minute boundary (seeded by --seed)"
        )
        closes.add_argument(
            "--close-profile",
            choices=sorted(CLOSE_PROFILES),
            default="off",
            help="off: every closing frame at the boundary; binance: median 120 ms, all but a tail within 300 ms, "
            "2%% of them 0.3-2.5 s late, 0.2%% of (symbol, minute) silent (the options below override its parts)",
        )
        closes.add_argument("--close-median-ms", type=float, default=None, help="median delay of the body (ms)")
        closes.add_argument("--close-body-max-ms", type=float, default=None, help="the body's longest delay (ms)")
        closes.add_argument(
            "--close-tail", type=float, default=None, help="share of closing frames late, up to --close-tail-max-ms"
        )
        closes.add_argument("--close-tail-max-ms", type=float, default=None, help="the tail's longest delay (ms)")
        closes.add_argument(
            "--close-silent",
            type=float,
            default=None,
            help="share of (symbol, minute) whose closing frame never comes (REST still has the candle)",
        )
        faults = parser.add_argument_group("fault injection (rates are probabilities)")
        faults.add_argument(
            "--fault-disconnect",
            type=float,
            default=0.0,
            help="per simulated minute: drop one connection abruptly (no closing handshake)",
        )
        faults.add_argument(
            "--fault-silence",
            type=float,
            default=0.0,
            help="per simulated minute: one connection goes silent for --fault-silence-seconds",
        )
        faults.add_argument("--fault-silence-seconds", type=float, default=5.0)
        faults.add_argument("--fault-drop", type=float, default=0.0, help="per closed frame: never sent")
        faults.add_argument("--fault-duplicate", type=float, default=0.0, help="per closed frame: sent twice")
        faults.add_argument(
            "--fault-out-of-order",
            type=float,
            default=0.0,
            help="per closed frame: sent after the next minute's frames",
        )
        faults.add_argument(
            "--fault-malformed", type=float, default=0.0, help="per closed frame: an extra malformed frame"
        )
        faults.add_argument(
            "--fault-rotate-after",
            type=float,
            default=0.0,
            help="close every connection after this many wall seconds (the 24 h limit)",
        )
        faults.add_argument("--fault-429", type=float, default=0.0, help="per klines request: answer 429")
        faults.add_argument("--seed", type=int, default=1)

    def handle(self, *args, **options) -> None:
        for noisy in ("httpx", "httpcore", "websockets"):  # one line per request or connection is too much
            logging.getLogger(noisy).setLevel(logging.WARNING)
        data = Path(options["data"])
        if not data.is_dir():
            raise CommandError(f"--data {data} is not a directory")
        market = market_load(data, synthesize=options["synthesize"])
        start_ms = _iso_ms(options["start"]) if options["start"] else None
        if start_ms is None:
            start_ms = replay_start_default(market, history_days=options["history_days"])
            last_open = max(int(s.open_times[-1]) for s in market.values())
            if options["history_days"] < 1 or start_ms > last_open:
                raise CommandError("--history-days must be at least 1 and leave some of the data to replay")
        clock_origin_ms = None
        if options["shift_to_now"]:
            now_ms = int(time.time() * 1000)
            market, start_ms, offset = shift_to_now(market, start_ms=start_ms, now_ms=now_ms)
            # Its clock is the wall clock (unless held): minute boundaries, closing frames and event times as live.
            clock_origin_ms = None if options["hold_until_connect"] else now_ms
            logger.info("replay shifted by %+.2f days so that it starts now", offset / 86_400_000)
        faults = Faults(
            disconnect_per_minute=options["fault_disconnect"],
            silence_per_minute=options["fault_silence"],
            silence_seconds=options["fault_silence_seconds"],
            drop=options["fault_drop"],
            duplicate=options["fault_duplicate"],
            out_of_order=options["fault_out_of_order"],
            malformed=options["fault_malformed"],
            rotate_after_seconds=options["fault_rotate_after"],
            rest_429=options["fault_429"],
            seed=options["seed"],
        )
        simulator = ExchangeSimulator(
            market,
            close_profile=close_profile_from_options(options),
            clock_origin_ms=clock_origin_ms,
            speed=options["speed"],
            start_ms=start_ms,
            minutes=options["minutes"],
            faults=faults,
            weight_limit=options["weight_limit"],
            ping_interval=options["ping_interval"],
            hold_until_connect=options["hold_until_connect"],
            unlisted=tuple(s.strip().upper() for s in options["unlisted"].split(",") if s.strip()),
        )
        asyncio.run(self._serve(simulator, options["host"], options["port"]))

    async def _serve(self, simulator: ExchangeSimulator, host: str, port: int) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await simulator.start(host, port)  # binds first: "ready" is logged only once clients can connect
        status = simulator.status()
        logger.info(
            "exchange simulator ready on http://%s:%s (ws://%s:%s/market/stream): %d symbols, speed %sx, "
            "replay %s .. %s",
            host,
            port,
            host,
            port,
            status["symbols"],
            status["speed"],
            datetime.utcfromtimestamp(status["start_ms"] / 1000).isoformat() + "Z",
            datetime.utcfromtimestamp(status["end_ms"] / 1000).isoformat() + "Z",
        )
        try:
            await stop.wait()
        finally:
            await simulator.stop()
        logger.info("exchange simulator stopped: %s", json.dumps(simulator.status()))
