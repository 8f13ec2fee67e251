"""`python manage.py bench_tick --symbols N [--json]`: time one full minute tick, stage by stage.

Builds N symbols of 1m windows and bar history in the real Redis (the bundled real data; extra symbols are the same
series shifted in time and scaled in price and volume), under a key prefix of its own that it deletes afterwards,
then runs the tick's stages as the workers do, shard by shard: load the 1m block, window metrics, the enabled
rules, bars and indicators, the metrics_calculated upsert, bars rolled forward and the snapshot write. Prints one
JSON object of milliseconds per stage (the median over --repeat ticks) and "total", as its last line. With
--workers N, the same ticks also run with the shards spread over N forked processes, and "total_N_workers" is
their wall clock (next to, not instead of, the single-process figures).
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import ta
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from apps.alerts.engine import CompiledRule, RuleError, rule_compile, rules_load
from apps.alerts.evaluation import minute_evaluate_live
from apps.collector.bars_store import bars_matrices, bars_roll
from apps.collector.candles import FIELD_INDEX, FIELDS, MINUTE_MS, data_files, read_csv_candles
from apps.collector.store import ROW_DTYPE, ring_minutes, rows_decode, rows_encode
from apps.metrics.bars import bars_from_block
from apps.metrics.bars_repair import bars_missed_roll
from apps.metrics.services import metrics_calculated_upsert, minute_time, shard_indicators_compute, snapshot_write
from apps.metrics.sharding import shards_split
from apps.metrics.windows import LONGEST_WINDOW
from screener_project.kernel.redis_keys import bars_key, candles_ring_key, redis_client
from screener_project.kernel.timeframes import BAR_INTERVALS, SCREENER_TIMEFRAMES

DEFAULT_DATA = Path(settings.BASE_DIR) / "data" / "binance-um-1m"
PRICE_FACTORS = (1.0, 2.0, 5.0, 0.5, 10.0, 0.2, 20.0, 0.1)  # keep prices on a decimal grid, as the exchange's are
STAGES = ("load", "window_metrics", "rules", "indicators", "database", "bars_roll", "snapshot")


class Command(BaseCommand):
    help = "Time one full minute tick for N symbols, stage by stage (milliseconds, JSON on the last line)."

    def add_arguments(self, parser):
        parser.add_argument("--symbols", type=int, default=500)
        parser.add_argument("--json", action="store_true", help="print only the JSON line")
        parser.add_argument("--repeat", type=int, default=5, help="ticks to time")
        parser.add_argument(
            "--stat",
            choices=("median", "min"),
            default="median",
            help="figure printed per stage over the ticks (min: the least disturbed by other load on the machine)",
        )
        parser.add_argument("--shards", type=int, default=settings.SHARD_COUNT)
        parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
        parser.add_argument(
            "--condition",
            action="append",
            default=[],
            metavar="TEXT",
            help="evaluate one more rule made of these conditions (repeatable), e.g. 'rsi_14_1h < 30': a rule naming "
            "indicators puts their timeframes before the alerts, timed within rules",
        )
        parser.add_argument(
            "--baseline",
            type=int,
            default=0,
            metavar="M",
            help="also time the same work done symbol by symbol with pandas and `ta` on M of the symbols, "
            "extrapolated to all of them (baseline_pandas_ta_ms)",
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=1,
            help="also time the tick with the shards spread over this many worker processes (wall clock)",
        )

    def handle(self, *args, **options):
        count = options["symbols"]
        if count < 1 or options["repeat"] < 1 or options["shards"] < 1 or options["workers"] < 1:
            raise CommandError("--symbols, --repeat, --shards and --workers must be at least 1")
        files = data_files(options["data"])
        if not files:
            raise CommandError(f"no <SYMBOL>-1m*.csv[.gz] files under {options['data']}")
        extra_rules = []
        if options["condition"]:
            try:
                extra_rules = [
                    rule_compile(rule_type="bench_condition", conditions=options["condition"], parameters={})
                ]
            except RuleError as error:
                raise CommandError(f"--condition: {error}") from None
        original_prefix = settings.REDIS_KEY_PREFIX
        # Every key of the run lives under this prefix (key() reads the setting), so a live screener is untouched.
        settings.REDIS_KEY_PREFIX = f"{original_prefix}:bench:{os.getpid()}"
        client = redis_client()
        symbols: list[str] = []
        minute_ms = 0
        try:
            started = time.perf_counter()
            symbols, minute_ms = _build(client, files, count)
            if not options["json"]:
                ring_bytes = client.memory_usage(candles_ring_key(symbols[0])) or 0
                bar_bytes = client.memory_usage(bars_key(symbols[0])) or 0
                self.stdout.write(
                    f"built {count} symbols in {time.perf_counter() - started:.1f} s; Redis bytes per symbol: "
                    f"1m ring {ring_bytes}, bar history {bar_bytes}; load average {os.getloadavg()[0]:.2f}"
                )
            runs = [
                _tick(client, symbols, minute_ms, options["shards"], rep, extra_rules)
                for rep in range(options["repeat"])
            ]
            baseline_ms = None
            if options["baseline"] > 0:
                sample = symbols[: options["baseline"]]
                started = time.perf_counter()
                for symbol in sample:
                    _symbol_by_symbol(client, symbol, minute_ms)
                baseline_ms = (time.perf_counter() - started) * 1000 * len(symbols) / len(sample)
            walls = []
            if options["workers"] > 1:
                walls = _ticks_in_workers(
                    symbols, minute_ms, options["shards"], options["workers"], options["repeat"], extra_rules
                )
        finally:
            _cleanup(client, symbols, minute_ms)
            settings.REDIS_KEY_PREFIX = original_prefix
        stat = statistics.median if options["stat"] == "median" else min
        result = {stage: round(stat(run[stage] for run in runs), 2) for stage in (*STAGES, "total")}
        wall_key = f"total_{options['workers']}_workers"
        if walls:
            result[wall_key] = round(stat(walls), 2)
        if baseline_ms is not None:
            result["baseline_pandas_ta_ms"] = round(baseline_ms, 1)
        if not options["json"]:
            line = (
                f"{count} symbols, {options['shards']} shard(s), {options['stat']} of {len(runs)} ticks: "
                f"window metrics + rules {result['window_metrics'] + result['rules']:.2f} ms, "
                f"whole tick {result['total']:.2f} ms"
            )
            if walls:
                line += f", wall clock on {options['workers']} worker processes {result[wall_key]:.2f} ms"
            if baseline_ms is not None:
                line += f"; symbol by symbol with pandas and ta {baseline_ms:.0f} ms"
            self.stdout.write(line)
        self.stdout.write(json.dumps(result))


def _series(files: dict[str, list[Path]]) -> list[np.ndarray]:
    """Each bundled symbol as a (len(FIELDS), minutes) float64 array."""
    out = []
    for paths in files.values():
        frame = read_csv_candles(paths)
        out.append(np.stack([frame[name].to_numpy(dtype=np.float64) for name in FIELDS]))
    length = min(s.shape[1] for s in out)
    return [s[:, -length:] for s in out]


def _build(client, files: dict[str, list[Path]], count: int) -> tuple[list[str], int]:
    """Write `count` symbols' 1m rings and bar histories; returns (symbols, minute t)."""
    series = _series(files)
    names = list(files)
    length = series[0].shape[1]
    minute_ms = int(series[0][FIELD_INDEX["open_time"], -1])
    ring = ring_minutes()
    window = LONGEST_WINDOW
    max_shift = length - window
    prices = [FIELD_INDEX[f] for f in ("open", "high", "low", "close")]
    volumes = [FIELD_INDEX[f] for f in ("volume", "quote_volume", "taker_buy_volume", "taker_buy_quote_volume")]
    k = settings.INDICATOR_BARS
    symbols = []
    pipe = client.pipeline(transaction=False)
    history: dict[str, list[np.ndarray]] = {interval: [] for interval in BAR_INTERVALS}
    for i in range(count):
        base, variant = i % len(series), i // len(series)
        symbol = f"B{i:04d}{names[base]}"[:32]
        symbols.append(symbol)
        shift = (variant * 37) % max_shift
        data = series[base][:, : length - shift].copy()
        data[prices] *= PRICE_FACTORS[variant % len(PRICE_FACTORS)]
        # Back onto a decimal grid (exchange prices are decimals), as fine as a uint32 mantissa allows.
        decimals = min(8, int(np.floor(np.log10(4e9 / data[prices].max()))))
        data[prices] = np.round(data[prices], decimals)
        data[volumes] *= 1 + 0.05 * variant
        # Re-stamped so that every symbol's newest candle is minute t.
        data[FIELD_INDEX["open_time"]] = minute_ms - MINUTE_MS * np.arange(data.shape[1])[::-1]
        # The 1m ring exactly as apps.collector.store lays it out: row of minute m at slot m % ring.
        last = data[:, -window:]
        rows = np.zeros(ring, dtype=ROW_DTYPE)
        rows[(last[FIELD_INDEX["open_time"]] // MINUTE_MS).astype(np.int64) % ring] = rows_encode(last.T)
        pipe.set(candles_ring_key(symbol), rows.tobytes())
        # Bar history: the series' own bars, repeated back in time until K bars of each interval exist.
        from_block = bars_from_block(data[:, None, :], end_minute_ms=minute_ms)
        for interval, minutes in BAR_INTERVALS.items():
            bars = from_block[interval][0][:, 0, :]
            reps = -(-k // bars.shape[1])
            tiled = np.tile(bars, reps)[:, -k:]
            step = minutes * MINUTE_MS
            tiled[FIELD_INDEX["open_time"]] = minute_ms // step * step - step * np.arange(k)[::-1]
            history[interval].append(tiled)
    pipe.execute()
    chunk = 50
    for start in range(0, count, chunk):
        part = symbols[start : start + chunk]
        bars_roll(
            client,
            symbols=part,
            bars={i: np.stack(history[i][start : start + chunk], axis=1) for i in BAR_INTERVALS},
        )
    return symbols, minute_ms


def _tick(
    client, symbols: list[str], minute_ms: int, shard_count: int, rep: int, extra_rules: list[CompiledRule]
) -> dict[str, float]:
    """One minute tick of every shard, one after the other as a single worker would run them."""
    return _tick_shards(client, shards_split(symbols, shard_count=shard_count), minute_ms, rep, extra_rules)


def _tick_shards(
    client, shards: list[list[str]], minute_ms: int, rep: int, extra_rules: list[CompiledRule]
) -> dict[str, float]:
    """The tick of these shards, one after the other.

    Each repetition writes its database rows at a minute of its own, so that they are inserts as in a live tick
    (a repeated minute would update its rows instead, which costs more).
    """
    timings = dict.fromkeys(STAGES, 0.0)

    def timed(stage: str, started: float) -> float:
        now = time.perf_counter()
        timings[stage] += (now - started) * 1000
        return now

    for shard in shards:
        if not shard:
            continue
        evaluation, values = minute_evaluate_live(
            client, minute_ms=minute_ms, symbols=shard, rules=[*rules_load(), *extra_rules], timings=timings
        )
        block, metrics, bars = evaluation.block, evaluation.metrics, values.bars
        t = time.perf_counter()
        result = shard_indicators_compute(
            client, minute_ms=minute_ms, symbols=shard, block=block, metrics=metrics, bars=bars
        )
        t = timed("indicators", t)
        metrics_calculated_upsert(result=dataclasses.replace(result, minute_ms=minute_ms - rep * MINUTE_MS))
        t = timed("database", t)
        bars_roll(client, symbols=result.symbols, bars=result.rolled)
        bars_missed_roll(client, symbols=result.symbols, from_block=result.from_block, minute_ms=minute_ms)
        t = timed("bars_roll", t)
        snapshot_write(client, result=result)
        timed("snapshot", t)
    timings["total"] = sum(timings[stage] for stage in STAGES)
    return timings


def _symbol_by_symbol(client, symbol: str, minute_ms: int) -> dict[str, float]:
    """One symbol's windows and indicators the straightforward way, for comparison: its ring read into a pandas
    frame, each window aggregated with pandas, bars resampled with pandas and joined to the stored history, and
    RSI, MACD and Bollinger from `ta` per timeframe. (The rules and the writes are left out: this is a floor.)"""
    ring = pd.DataFrame(rows_decode(client.get(candles_ring_key(symbol))), columns=FIELDS)
    ring = ring[ring["open_time"] > 0].sort_values("open_time")
    frame = ring[ring["open_time"] > minute_ms - LONGEST_WINDOW * MINUTE_MS].set_index(
        pd.to_datetime(ring["open_time"], unit="ms")
    )
    out: dict[str, float] = {}
    for window, n in SCREENER_TIMEFRAMES.items():
        part = frame.tail(n)
        high, low, close = part["high"].max(), part["low"].min(), part["close"].iloc[-1]
        open_, vol, base = part["open"].iloc[0], part["quote_volume"].sum(), part["volume"].sum()
        vwap = vol / base
        spread = high - low
        out[f"change_{window}"] = (close - open_) / open_ * 100
        out[f"vol_{window}"] = vol
        out[f"vwap_{window}"] = vwap
        out[f"vcp_{window}"] = (close / vwap) * ((close - low) - (high - close)) / spread if spread else 0.0
        out[f"trades_{window}"] = part["trades"].sum()
        out[f"taker_buy_ratio_{window}"] = part["taker_buy_quote_volume"].sum() / vol
        pivot = (high + low + close) / 3
        for level, ratio in (("1", 0.382), ("2", 0.618), ("3", 1.0)):
            out[f"fib_r{level}_{window}"] = pivot + ratio * spread
            out[f"fib_s{level}_{window}"] = pivot - ratio * spread
    k = settings.INDICATOR_BARS
    for interval, minutes in SCREENER_TIMEFRAMES.items():
        recent = frame["close"].resample(f"{minutes}min", origin="epoch").last().dropna().to_numpy()
        if len(recent) < k and interval in BAR_INTERVALS:  # bars older than the 1m window: the bar store
            first_ms = (
                minute_ms // (minutes * MINUTE_MS) * (minutes * MINUTE_MS) - (len(recent) - 1) * minutes * MINUTE_MS
            )
            older = bars_matrices(
                client, [symbol], last_open_ms={interval: first_ms - minutes * MINUTE_MS}, count=k, close_only=True
            )[interval][0]
            recent = np.concatenate([older, recent])
        closes = pd.Series(recent[-k:])
        macd = ta.trend.MACD(closes)
        bands = ta.volatility.BollingerBands(closes)
        out[f"rsi_14_{interval}"] = ta.momentum.RSIIndicator(closes).rsi().iloc[-1]
        out[f"macd_{interval}"] = macd.macd().iloc[-1]
        out[f"macd_signal_{interval}"] = macd.macd_signal().iloc[-1]
        out[f"bb_upper_{interval}"] = bands.bollinger_hband().iloc[-1]
        out[f"bb_lower_{interval}"] = bands.bollinger_lband().iloc[-1]
    return out


def _worker_tick(shards: list[list[str]], minute_ms: int, rep: int, extra_rules: list[CompiledRule]) -> None:
    _tick_shards(redis_client(), shards, minute_ms, rep, extra_rules)


def _ticks_in_workers(
    symbols: list[str], minute_ms: int, shard_count: int, workers: int, repeat: int, extra_rules: list[CompiledRule]
) -> list[float]:
    """Wall-clock milliseconds of `repeat` ticks whose shards are spread over `workers` processes, as a deployment
    with that many worker processes runs them (each shard a task, taken by whichever worker is free)."""
    shards = [s for s in shards_split(symbols, shard_count=shard_count) if s]
    share = [shards[i::workers] for i in range(workers)]
    connection.close()  # each forked worker opens its own database connection
    walls = []
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        # Warm-up: connections, caches.
        pool.starmap(_worker_tick, [(part, minute_ms, repeat, extra_rules) for part in share])
        for rep in range(repeat):
            started = time.perf_counter()
            # Minutes of their own again, after those of the single-process ticks.
            pool.starmap(_worker_tick, [(part, minute_ms, repeat + 1 + rep, extra_rules) for part in share])
            walls.append((time.perf_counter() - started) * 1000)
    return walls


def _cleanup(client, symbols: list[str], minute_ms: int) -> None:
    for found in client.scan_iter(match=settings.REDIS_KEY_PREFIX + ":*", count=1000):
        client.delete(found)
    if symbols:
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM metrics_calculated WHERE time <= %s AND symbol = ANY(%s)",
                [minute_time(minute_ms), symbols],
            )
