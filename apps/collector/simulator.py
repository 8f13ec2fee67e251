"""A Binance USD-M futures exchange simulator that replays 1m candle files over the exchange's own protocol.

One asyncio server on one port answers both:
- WebSocket `/market/stream?streams=a/b` (and `/stream`, `/ws`): combined-stream kline frames, SUBSCRIBE /
  UNSUBSCRIBE / LIST_SUBSCRIPTIONS, forming updates (x false) and the closed kline (x true) once the simulated
  clock passes a minute's close, protocol ping frames;
- REST `/fapi/v1/exchangeInfo`, `/fapi/v1/klines`, `/fapi/v1/ticker/24hr`, `/fapi/v1/time` with request weights,
  the `X-MBX-USED-WEIGHT-1M` header and 429 past the per-minute budget, plus `/sim/status` for operators,
  `/sim/closes` (when each closing frame went out, the last 30 minutes) for measurements, and `/sim/end?minute_ms=`
  to end the replay earlier than planned (a test that replays until something has happened, not a fixed time).

The simulated clock runs at `speed` times wall time from `start_ms`. A close-time profile (CloseProfile, off by
default) sends each symbol's closing kline after the minute boundary with a seeded per-(symbol, minute) delay, as
the exchange spreads them, some symbols' never. Faults (disconnects, silence, dropped,
duplicated, reordered and malformed frames, forced rotation, REST 429s) are injected at configurable rates so the
collector's recovery paths can be exercised deterministically (seeded).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
import zlib
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from screener_project.kernel.timeframes import KLINE_INTERVAL_MINUTES

from .candles import MINUTE_MS, data_files, read_csv_candles

logger = logging.getLogger(__name__)

WEIGHT_LIMIT_1M = 2400
CLOSE_SENT_MINUTES = 30
_ABORT = "\0abort"
# Columns of the per-symbol value matrix.
_O, _H, _L, _C, _V, _Q, _N, _TV, _TQ = range(9)


def klines_weight(limit: int) -> int:
    """Request weight of GET /fapi/v1/klines, as the exchange publishes it (1, 2, 5 or 10 by `limit`)."""
    if limit < 100:
        return 1
    if limit < 500:
        return 2
    if limit <= 1000:
        return 5
    return 10


@dataclass
class SymbolSeries:
    open_times: np.ndarray  # int64, sorted
    values: np.ndarray  # (n, 9) float64: open, high, low, close, volume, quote, trades, taker base, taker quote

    def index_of(self, open_ms: int) -> int | None:
        i = int(np.searchsorted(self.open_times, open_ms))
        if i < len(self.open_times) and self.open_times[i] == open_ms:
            return i
        return None


def market_load(data_dir: Path, *, synthesize: int = 0) -> dict[str, SymbolSeries]:
    """Load every symbol's candles; `synthesize` adds SYNnnnnUSDT symbols replaying the real ones' data."""
    series: dict[str, SymbolSeries] = {}
    for symbol, paths in data_files(data_dir).items():
        df = read_csv_candles(paths)
        values = df[
            [
                "open",
                "high",
                "low",
                "close",
                "volume",
                "quote_volume",
                "trades",
                "taker_buy_volume",
                "taker_buy_quote_volume",
            ]
        ].to_numpy(dtype=np.float64)
        series[symbol] = SymbolSeries(df["open_time"].to_numpy(dtype=np.int64), values)
    if not series:
        raise ValueError(f"no <SYMBOL>-1m*.csv[.gz] files in {data_dir}")
    real = sorted(series)
    for k in range(synthesize):
        series[f"SYN{k:04d}USDT"] = series[real[k % len(real)]]
    return series


def replay_start_default(market: dict[str, SymbolSeries], *, history_days: int = 1) -> int:
    """Where a replay starts when not told: `history_days` after the first candle, so REST has that much history."""
    first_open = min(int(s.open_times[0]) for s in market.values())
    return first_open + history_days * 1440 * MINUTE_MS


def market_shift(market: dict[str, SymbolSeries], offset_ms: int) -> dict[str, SymbolSeries]:
    """The same candles moved in time by a whole number of minutes: open times change, prices and volumes do not.

    Series shared between symbols (synthesized ones) stay shared.
    """
    if offset_ms % MINUTE_MS:
        raise ValueError("the shift must be a whole number of minutes")
    shifted: dict[int, SymbolSeries] = {}
    result = {}
    for symbol, series in market.items():
        if id(series) not in shifted:
            shifted[id(series)] = SymbolSeries(series.open_times + np.int64(offset_ms), series.values)
        result[symbol] = shifted[id(series)]
    return result


def shift_to_now(market: dict[str, SymbolSeries], *, start_ms: int | None, now_ms: int) -> tuple[dict, int, int]:
    """Move the replay so that it starts at the current minute: returns (shifted market, its start, the offset).

    A replay dated in the past would look dead to a client asking for "the last 48 hours", and to anything that
    compares data times with the wall clock; shifted, it reads like a live market from the moment it starts.
    """
    start = start_ms if start_ms is not None else replay_start_default(market)
    start -= start % MINUTE_MS
    offset = (now_ms - now_ms % MINUTE_MS) - start
    return market_shift(market, offset), start + offset, offset


@dataclass
class Faults:
    """Fault rates; probabilities are per closed frame unless said otherwise."""

    disconnect_per_minute: float = 0.0  # chance per simulated minute that a connection is dropped abruptly
    silence_per_minute: float = 0.0  # chance per simulated minute that a connection goes silent
    silence_seconds: float = 5.0  # wall seconds a silent connection stays silent (open, no frames)
    drop: float = 0.0  # a closed frame never sent
    duplicate: float = 0.0  # a closed frame sent twice
    out_of_order: float = 0.0  # a closed frame held back and sent after the next minute's frames
    malformed: float = 0.0  # an extra malformed frame injected
    rotate_after_seconds: float = 0.0  # server closes every connection after this many wall seconds (24 h limit)
    rest_429: float = 0.0  # chance a REST klines request gets 429
    seed: int = 1


@dataclass(frozen=True)
class CloseProfile:
    """When each symbol's closing kline of a minute goes out, after the minute boundary (exchange milliseconds).

    Off (`median_ms` 0): every closing frame at the boundary, event time 100 ms after it. On: a share `1 - tail -
    silent` of the (symbol, minute) pairs come within `body_max_ms`, log-normally around `median_ms`; a share `tail`
    uniformly between `body_max_ms` and `tail_max_ms`; a share `silent` never (the symbol stays silent for that
    minute: its candle reaches a client only through REST). Each pair's draw depends on (seed, symbol, minute)
    alone, so a run is reproducible whatever the symbols, clients and timing. The frame's event time is the moment
    it goes out.
    """

    median_ms: float = 0.0
    body_max_ms: float = 300.0
    sigma: float = 0.6  # of the body's log-normal
    tail: float = 0.0
    tail_max_ms: float = 3000.0
    silent: float = 0.0
    seed: int = 1

    @property
    def enabled(self) -> bool:
        return self.median_ms > 0 or self.tail > 0 or self.silent > 0

    def delay_ms(self, symbol: str, minute_ms: int) -> float | None:
        """The closing frame's delay after the boundary, None for a silent pair."""
        rng = random.Random(zlib.crc32(f"{self.seed}:{symbol}:{minute_ms}".encode()))
        draw = rng.random()
        if draw < self.silent:
            return None
        if draw < self.silent + self.tail:
            return rng.uniform(self.body_max_ms, self.tail_max_ms)
        if self.median_ms <= 0:
            return 0.0
        return min(self.body_max_ms, math.exp(rng.gauss(math.log(self.median_ms), self.sigma)))

    def quantile_ms(self, q: float, *, symbols: int = 500, minutes: int = 60) -> float:
        """The profile's own q-quantile of the delays (silent pairs left out), sampled as a run would draw them."""
        delays = [
            d
            for m in range(minutes)
            for i in range(symbols)
            if (d := self.delay_ms(f"S{i}", m * MINUTE_MS)) is not None
        ]
        return float(np.quantile(delays, q)) if delays else 0.0


# `--close-profile binance`: most closing frames within 300 ms of the boundary (median 120 ms), 2 % up to 2.5 s,
# one symbol in 500 silent for the minute.
CLOSE_PROFILES = {
    "off": CloseProfile(),
    "binance": CloseProfile(median_ms=120.0, body_max_ms=300.0, tail=0.02, tail_max_ms=2500.0, silent=0.002),
}


def _fmt(value: float) -> str:
    # repr round-trips a float64 exactly, so the collector stores the very numbers of the data file.
    return repr(float(value))


def kline_frame(symbol: str, open_ms: int, v: np.ndarray, *, closed: bool, event_ms: int) -> str:
    stream = f"{symbol.lower()}@kline_1m"
    k = {
        "t": open_ms,
        "T": open_ms + MINUTE_MS - 1,
        "s": symbol,
        "i": "1m",
        "f": 0,
        "L": int(v[_N]),
        "o": _fmt(v[_O]),
        "c": _fmt(v[_C]),
        "h": _fmt(v[_H]),
        "l": _fmt(v[_L]),
        "v": _fmt(v[_V]),
        "n": int(v[_N]),
        "x": closed,
        "q": _fmt(v[_Q]),
        "V": _fmt(v[_TV]),
        "Q": _fmt(v[_TQ]),
        "B": "0",
    }
    return json.dumps({"stream": stream, "data": {"e": "kline", "E": event_ms, "s": symbol, "k": k}})


def forming_values(v: np.ndarray, fraction: float) -> np.ndarray:
    """A plausible partial candle `fraction` of the way through its minute (valid: docs/windows-and-indicators.md)."""
    out = v.copy()
    close = v[_O] + (v[_C] - v[_O]) * fraction
    out[_C] = close
    out[_H] = max(v[_O], close)
    out[_L] = min(v[_O], close)
    for col in (_V, _Q, _N, _TV, _TQ):
        out[col] = v[col] * fraction
    out[_N] = float(int(out[_N]))
    return out


def malformed_frame(rng: random.Random, symbol: str, open_ms: int, v: np.ndarray) -> str:
    kind = rng.choice(
        [
            "not_json",
            "no_data",
            "negative_price",
            "high_below_body",
            "bad_close_time",
            "off_minute",
            "string_field",
            "negative_volume",
        ]
    )
    if kind == "not_json":
        return '{"stream": "broken'
    if kind == "no_data":
        return json.dumps({"stream": f"{symbol.lower()}@kline_1m", "data": {"e": "kline", "E": open_ms}})
    bad = v.copy()
    t, close_ms = open_ms, open_ms + MINUTE_MS - 1
    if kind == "negative_price":
        bad[_O] = -abs(bad[_O])
    elif kind == "high_below_body":
        bad[_H] = min(bad[_O], bad[_C]) * 0.5
    elif kind == "negative_volume":
        bad[_V] = -1.0
    elif kind == "bad_close_time":
        close_ms += 1234
    elif kind == "off_minute":
        t += 17
    frame = json.loads(kline_frame(symbol, t, bad, closed=True, event_ms=open_ms + MINUTE_MS))
    frame["data"]["k"]["T"] = close_ms
    if kind == "string_field":
        frame["data"]["k"]["o"] = "abc"
    return json.dumps(frame)


class SimClock:
    def __init__(
        self, start_ms: int, speed: float, end_ms: int, *, running: bool = True, origin_ms: int | None = None
    ) -> None:
        self.start_ms = start_ms
        self.speed = speed
        self.end_ms = end_ms
        # Where the clock runs from (default the start): a replay shifted to now runs from now itself, so that its
        # minute boundaries are the wall clock's, as on the exchange.
        self.origin_ms = start_ms if origin_ms is None else origin_ms
        self._t0 = time.monotonic() if running else None

    @property
    def running(self) -> bool:
        return self._t0 is not None

    def run(self) -> None:
        if self._t0 is None:
            self._t0 = time.monotonic()

    def raw_ms(self) -> int:
        if self._t0 is None:
            return self.origin_ms
        return self.origin_ms + int((time.monotonic() - self._t0) * 1000 * self.speed)

    def now_ms(self) -> int:
        """The exchange's now: it keeps running after the replay's data ends."""
        return self.raw_ms()

    def data_now_ms(self) -> int:
        """The simulated now as far as market data goes: held at the end of the replay."""
        return min(self.raw_ms(), self.end_ms)


@dataclass
class _Client:
    ws: ServerConnection
    id: int
    streams: set[str] = field(default_factory=set)
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    silent_until: float = 0.0
    held: list[str] = field(default_factory=list)  # out-of-order frames waiting for the next minute
    opened_at: float = field(default_factory=time.monotonic)


class ExchangeSimulator:
    def __init__(
        self,
        market: dict[str, SymbolSeries],
        *,
        speed: float = 1.0,
        start_ms: int | None = None,
        minutes: int | None = None,
        faults: Faults | None = None,
        weight_limit: int = WEIGHT_LIMIT_1M,
        ping_interval: float = 180.0,
        hold_until_connect: int = 0,
        unlisted: tuple[str, ...] = (),
        close_profile: CloseProfile | None = None,
        clock_origin_ms: int | None = None,
    ) -> None:
        self.market = market
        # Listed symbols are in exchangeInfo and stream; /sim/list and /sim/delist change that at runtime.
        self.listed = set(market) - set(unlisted)
        self.symbols = sorted(self.listed)
        last_close = max(int(s.open_times[-1]) for s in market.values()) + MINUTE_MS
        start = start_ms if start_ms is not None else replay_start_default(market)
        start -= start % MINUTE_MS
        end = last_close if minutes is None else min(last_close, start + minutes * MINUTE_MS)
        # Held, the clock waits at `start` until `hold_until_connect` WebSocket clients have connected, so slow-starting
        # collectors miss nothing.
        self.hold_until_connect = hold_until_connect
        self._connected_total = 0
        if clock_origin_ms is not None and not start <= clock_origin_ms < start + MINUTE_MS:
            raise ValueError("the clock's origin must lie in the replay's first minute")
        self.clock = SimClock(start, speed, end, running=not hold_until_connect, origin_ms=clock_origin_ms)
        self.faults = faults or Faults()
        self.close_profile = close_profile or CloseProfile()
        # minute -> symbol -> wall time (epoch ms) its closing frame went out, the last CLOSE_SENT_MINUTES minutes,
        # for measurements (/sim/closes).
        self.close_sent: dict[int, dict[str, int]] = {}
        self.rng = random.Random(self.faults.seed)
        # Connection faults draw from their own generator, once per simulated minute, so a seed fixes the minutes
        # they strike at whatever the number of connections and frames.
        self.connection_rng = random.Random(self.faults.seed + 1)
        self.weight_limit = weight_limit
        self.ping_interval = ping_interval
        self.last_closed_open_ms = start - MINUTE_MS  # the newest minute whose closed frames went out
        self.clients: dict[int, _Client] = {}
        self._next_client_id = 1
        self._weight_window = 0
        self._weight_used = 0
        self._last_forming_wall = 0.0
        self._last_forming_sim = 0
        self.stats = {
            "closed_frames": 0,
            "forming_frames": 0,
            "dropped": 0,
            "duplicated": 0,
            "reordered": 0,
            "malformed": 0,
            "disconnects": 0,
            "silences": 0,
            "rotations": 0,
            "rest_429": 0,
            "silent_closes": 0,
        }
        self._server = None
        self._tasks: list[asyncio.Task] = []

    # ----------------------------------------------------------------------------------------------- lifecycle
    async def start(self, host: str, port: int) -> None:
        self._server = await serve(
            self._handle_ws,
            host,
            port,
            process_request=self._process_request,
            ping_interval=self.ping_interval,
            ping_timeout=600,  # Binance drops a client that has not answered within 10 minutes
            max_queue=64,
        )
        self._tasks.append(asyncio.create_task(self._replay_loop()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def done(self) -> bool:
        return self.last_closed_open_ms + MINUTE_MS >= self.clock.end_ms

    def end_at(self, minute_ms: int) -> None:
        """Make `minute_ms` the replay's last minute: never before a minute already closed (what went out stays
        out), never past the planned end."""
        minute_ms = max(minute_ms - minute_ms % MINUTE_MS, self.last_closed_open_ms)
        self.clock.end_ms = min(self.clock.end_ms, minute_ms + MINUTE_MS)

    def status(self) -> dict:
        return {
            "now_ms": self.clock.now_ms(),
            "start_ms": self.clock.start_ms,
            "end_ms": self.clock.end_ms,
            "last_closed_open_ms": self.last_closed_open_ms,
            "done": self.done,
            "speed": self.clock.speed,
            "running": self.clock.running,
            "symbols": len(self.symbols),
            "connections": len(self.clients),
            "subscribed": sorted(set().union(*(c.streams for c in self.clients.values()))),
            "stats": self.stats,
        }

    # ----------------------------------------------------------------------------------------------- replay
    async def _replay_loop(self) -> None:
        tick = max(0.01, min(0.25, 60.0 / self.clock.speed / 4))
        while True:
            try:
                self._replay_step()
            except Exception:  # the replay must go on whatever one step did
                logger.exception("simulator replay step failed")
            # Wake at the next minute boundary rather than up to a step after it.
            now = self.clock.raw_ms()
            to_boundary = ((now // MINUTE_MS + 1) * MINUTE_MS - now) / 1000 / self.clock.speed
            await asyncio.sleep(max(0.001, min(tick, to_boundary + 0.001)))

    def _replay_step(self) -> None:
        now = self.clock.data_now_ms()
        newest_closed = (now // MINUTE_MS) * MINUTE_MS - MINUTE_MS
        newest_closed = min(newest_closed, self.clock.end_ms - MINUTE_MS)
        minute = self.last_closed_open_ms + MINUTE_MS
        while minute <= newest_closed:
            self._emit_closed_minute(minute)
            self.last_closed_open_ms = minute
            minute += MINUTE_MS
        if not self.done:
            self._maybe_emit_forming(now)
        self._apply_connection_faults()

    def _emit_closed_minute(self, minute: int) -> None:
        f = self.faults
        profile = self.close_profile
        if not profile.enabled:
            self._emit_closed_frames(minute, self.symbols, event_ms=minute + MINUTE_MS + 100, last=True)
        else:
            # Each symbol's frame at its own delay after the boundary, the stragglers last; held frames of the
            # previous minute follow the last of them.
            close = minute + MINUTE_MS
            by_delay: dict[float, list[str]] = {}
            for symbol in self.symbols:
                delay = profile.delay_ms(symbol, minute)
                if delay is None:
                    self.stats["silent_closes"] += 1
                    continue
                by_delay.setdefault(delay, []).append(symbol)
            loop = asyncio.get_running_loop()
            delays = sorted(by_delay)
            for i, delay in enumerate(delays):
                wait = (close + delay - self.clock.raw_ms()) / 1000 / self.clock.speed
                args = (minute, by_delay[delay])
                kwargs = {"event_ms": None, "last": i == len(delays) - 1}
                if wait <= 0:
                    self._emit_closed_frames(*args, **kwargs)
                else:
                    loop.call_later(wait, lambda a=args, k=kwargs: self._emit_closed_frames(*a, **k))
        disconnect = self.connection_rng.random() < f.disconnect_per_minute
        silence = self.connection_rng.random() < f.silence_per_minute
        victims = list(self.clients.values())
        if victims and disconnect:
            self._close_client(self.rng.choice(victims), "random disconnect", abrupt=True)
            self.stats["disconnects"] += 1
        elif victims and silence:
            self.rng.choice(victims).silent_until = time.monotonic() + f.silence_seconds
            self.stats["silences"] += 1

    def _emit_closed_frames(self, minute: int, symbols: list[str], *, event_ms: int | None, last: bool) -> None:
        """Send the closing frames of `symbols` for `minute` to every subscribed client (faults applied); event
        time `event_ms`, or now by the simulated clock. `last`: the minute's last ones, held frames follow them."""
        f = self.faults
        sent_ms = int(time.time() * 1000)
        if event_ms is None:
            event_ms = self.clock.raw_ms()
        sent = self.close_sent.setdefault(minute, {})
        for symbol in symbols:
            sent[symbol] = sent_ms
        for old in [m for m in self.close_sent if m <= minute - CLOSE_SENT_MINUTES * MINUTE_MS]:
            del self.close_sent[old]
        for client in list(self.clients.values()):
            # Frames held back last minute now follow this minute's frames: out of order by one minute.
            held: list[str] = []
            if last:
                held, client.held = client.held, []
            for symbol in symbols:
                stream = f"{symbol.lower()}@kline_1m"
                if stream not in client.streams:
                    continue
                series = self.market[symbol]
                i = series.index_of(minute)
                if i is None:
                    continue
                v = series.values[i]
                frame = kline_frame(symbol, minute, v, closed=True, event_ms=event_ms)
                if f.malformed and self.rng.random() < f.malformed:
                    self._send(client, malformed_frame(self.rng, symbol, minute, v))
                    self.stats["malformed"] += 1
                if f.drop and self.rng.random() < f.drop:
                    self.stats["dropped"] += 1
                    continue
                if f.out_of_order and self.rng.random() < f.out_of_order:
                    client.held.append(frame)
                    self.stats["reordered"] += 1
                    continue
                self._send(client, frame)
                self.stats["closed_frames"] += 1
                if f.duplicate and self.rng.random() < f.duplicate:
                    self._send(client, frame)
                    self.stats["duplicated"] += 1
            for frame in held:
                self._send(client, frame)

    def _maybe_emit_forming(self, now: int) -> None:
        wall = time.monotonic()
        # Binance updates every ~250 ms; a few updates per simulated minute, at least one per wall second.
        if now - self._last_forming_sim < 15_000 and wall - self._last_forming_wall < 1.0:
            return
        self._last_forming_sim, self._last_forming_wall = now, wall
        minute = (now // MINUTE_MS) * MINUTE_MS
        fraction = (now - minute) / MINUTE_MS
        frames: dict[str, str] = {}
        for symbol in self.symbols:
            series = self.market[symbol]
            i = series.index_of(minute)
            if i is not None:
                frames[f"{symbol.lower()}@kline_1m"] = kline_frame(
                    symbol, minute, forming_values(series.values[i], fraction), closed=False, event_ms=now
                )
        for client in list(self.clients.values()):
            for stream in client.streams:
                frame = frames.get(stream)
                if frame is not None:
                    self._send(client, frame)
                    self.stats["forming_frames"] += 1

    def _apply_connection_faults(self) -> None:
        rotate = self.faults.rotate_after_seconds
        if not rotate:
            return
        now = time.monotonic()
        for client in list(self.clients.values()):
            if now - client.opened_at >= rotate:
                self._close_client(client, "connection lifetime reached")
                self.stats["rotations"] += 1

    def _send(self, client: _Client, frame: str) -> None:
        if time.monotonic() < client.silent_until:
            return  # a silent connection loses what it would have sent, as a stalled feed does
        client.queue.put_nowait(frame)

    def _close_client(self, client: _Client, reason: str, *, abrupt: bool = False) -> None:
        self.clients.pop(client.id, None)
        client.queue.put_nowait(_ABORT if abrupt else None)
        logger.info("simulator closes connection %s: %s", client.id, reason)

    # ----------------------------------------------------------------------------------------------- websocket
    async def _handle_ws(self, ws: ServerConnection) -> None:
        client = _Client(ws=ws, id=self._next_client_id)
        self._next_client_id += 1
        query = parse_qs(urlsplit(ws.request.path).query)
        for part in query.get("streams", []):
            client.streams.update(s for s in part.split("/") if s)
        self.clients[client.id] = client
        self._connected_total += 1
        if self._connected_total >= self.hold_until_connect:
            self.clock.run()
        writer = asyncio.create_task(self._writer(client))
        try:
            async for message in ws:
                self._on_client_message(client, message)
        except ConnectionClosed:
            pass
        finally:
            self.clients.pop(client.id, None)
            client.queue.put_nowait(None)
            await asyncio.gather(writer, return_exceptions=True)

    async def _writer(self, client: _Client) -> None:
        ws = client.ws
        try:
            while True:
                frame = await client.queue.get()
                if frame is None:
                    await ws.close(1001, "going away")
                    return
                if frame is _ABORT:
                    ws.transport.abort()  # a dropped TCP connection: no closing handshake
                    return
                await ws.send(frame)
        except ConnectionClosed:
            return

    def _on_client_message(self, client: _Client, message: str | bytes) -> None:
        try:
            request = json.loads(message)
            method = request["method"]
            request_id = request.get("id")
        except (ValueError, KeyError, TypeError):
            client.queue.put_nowait(json.dumps({"error": {"code": 2, "msg": "Invalid request"}}))
            return
        params = request.get("params") or []
        if method == "SUBSCRIBE":
            client.streams.update(str(p) for p in params)
            reply: dict = {"result": None, "id": request_id}
        elif method == "UNSUBSCRIBE":
            client.streams.difference_update(str(p) for p in params)
            reply = {"result": None, "id": request_id}
        elif method == "LIST_SUBSCRIPTIONS":
            reply = {"result": sorted(client.streams), "id": request_id}
        else:
            reply = {"error": {"code": 2, "msg": f"Invalid method {method}"}, "id": request_id}
        client.queue.put_nowait(json.dumps(reply))

    # ----------------------------------------------------------------------------------------------- REST
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if url.path in ("/market/stream", "/stream", "/ws", "/market/ws") or url.path.startswith("/ws/"):
            return None  # the WebSocket handshake proceeds
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            return self._rest(url.path, params)
        except Exception:
            logger.exception("simulator REST %s failed", request.path)
            return _json_response(500, {"code": -1000, "msg": "internal error"})

    def _use_weight(self, weight: int) -> Response | None:
        window = int(time.time() // 60)
        if window != self._weight_window:
            self._weight_window, self._weight_used = window, 0
        if self._weight_used + weight > self.weight_limit:
            retry = 60 - int(time.time() % 60)
            self.stats["rest_429"] += 1
            return _json_response(
                429,
                {"code": -1003, "msg": "Too many requests; current limit of IP is 2400 requests per minute."},
                weight=self._weight_used,
                retry_after=retry,
            )
        self._weight_used += weight
        return None

    def _rest(self, path: str, params: dict[str, str]) -> Response:
        if path == "/sim/status":
            return _json_response(200, self.status())
        if path == "/sim/closes":
            # When each closing frame went out (wall epoch ms), per minute (open time) and symbol.
            return _json_response(200, {str(m): sent for m, sent in self.close_sent.items()})
        if path == "/sim/end":
            try:
                minute_ms = int(params.get("minute_ms", ""))
            except ValueError:
                return _json_response(400, {"code": -1100, "msg": "minute_ms must be an integer (epoch ms)."})
            self.end_at(minute_ms)
            logger.info("simulator replay ends after minute %d", self.clock.end_ms - MINUTE_MS)
            return _json_response(200, self.status())
        if path in ("/sim/list", "/sim/delist"):
            symbol = params.get("symbol", "")
            if symbol not in self.market:
                return _json_response(400, {"code": -1121, "msg": "Invalid symbol."})
            if path == "/sim/list":
                self.listed.add(symbol)
            else:
                self.listed.discard(symbol)
            self.symbols = sorted(self.listed)
            logger.info("simulator %ss %s", path.rsplit("/", 1)[-1], symbol)
            return _json_response(200, {"listed": self.symbols})
        if path == "/fapi/v1/time":
            return self._weighted(1, lambda: {"serverTime": self.clock.now_ms()})
        if path == "/fapi/v1/exchangeInfo":
            return self._weighted(1, self._exchange_info)
        if path == "/fapi/v1/ticker/24hr":
            symbol = params.get("symbol")
            if symbol is not None and symbol not in self.market:
                return _json_response(400, {"code": -1121, "msg": "Invalid symbol."})
            return self._weighted(1 if symbol else 40, lambda: self._tickers(symbol))
        if path == "/fapi/v1/klines":
            return self._klines(params)
        return _json_response(404, {"code": -1, "msg": f"unknown path {path}"})

    def _weighted(self, weight: int, body) -> Response:
        refused = self._use_weight(weight)
        if refused is not None:
            return refused
        return _json_response(200, body(), weight=self._weight_used)

    def _exchange_info(self) -> dict:
        symbols = [
            {
                "symbol": s,
                "pair": s,
                "contractType": "PERPETUAL",
                "status": "TRADING",
                "baseAsset": s[:-4],
                "quoteAsset": "USDT",
                "marginAsset": "USDT",
                "pricePrecision": 8,
                "quantityPrecision": 8,
            }
            for s in self.symbols
        ]
        # Contracts the screener must filter out: a quarterly future, a USDC perpetual and a settling one.
        symbols += [
            {
                "symbol": s,
                "pair": s,
                "contractType": "PERPETUAL",
                "status": "SETTLING",
                "baseAsset": s[:-4],
                "quoteAsset": "USDT",
                "marginAsset": "USDT",
            }
            for s in sorted(set(self.market) - self.listed)
        ]
        symbols += [
            {
                "symbol": "BTCUSDT_251226",
                "pair": "BTCUSDT",
                "contractType": "CURRENT_QUARTER",
                "status": "TRADING",
                "baseAsset": "BTC",
                "quoteAsset": "USDT",
                "marginAsset": "USDT",
            },
            {
                "symbol": "BTCUSDC",
                "pair": "BTCUSDC",
                "contractType": "PERPETUAL",
                "status": "TRADING",
                "baseAsset": "BTC",
                "quoteAsset": "USDC",
                "marginAsset": "USDC",
            },
            {
                "symbol": "OLDUSDT",
                "pair": "OLDUSDT",
                "contractType": "PERPETUAL",
                "status": "SETTLING",
                "baseAsset": "OLD",
                "quoteAsset": "USDT",
                "marginAsset": "USDT",
            },
        ]
        return {
            "timezone": "UTC",
            "serverTime": self.clock.now_ms(),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": self.weight_limit}
            ],
            "symbols": symbols,
        }

    def _closed_slice(self, symbol: str, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """Candles of `symbol` with start <= open <= end that closed before the simulated now."""
        series = self.market[symbol]
        newest = self.clock.data_now_ms() - MINUTE_MS  # open times up to here have closed
        end = min(end, newest)
        lo = int(np.searchsorted(series.open_times, start, side="left"))
        hi = int(np.searchsorted(series.open_times, end, side="right"))
        return series.open_times[lo:hi], series.values[lo:hi]

    def _tickers(self, symbol: str | None) -> list[dict] | dict:
        now = self.clock.data_now_ms()
        out = []
        for s in [symbol] if symbol else self.symbols:
            times, v = self._closed_slice(s, now - 1440 * MINUTE_MS, now)
            if len(times) == 0:
                continue
            open_price, last = v[0, _O], v[-1, _C]
            quote, base = float(v[:, _Q].sum()), float(v[:, _V].sum())
            out.append(
                {
                    "symbol": s,
                    "lastPrice": _fmt(last),
                    "openPrice": _fmt(open_price),
                    "highPrice": _fmt(v[:, _H].max()),
                    "lowPrice": _fmt(v[:, _L].min()),
                    "volume": _fmt(base),
                    "quoteVolume": _fmt(quote),
                    "priceChange": _fmt(last - open_price),
                    "priceChangePercent": f"{(last - open_price) / open_price * 100:.3f}",
                    "weightedAvgPrice": _fmt(quote / base if base else last),
                    "openTime": int(times[0]),
                    "closeTime": now,
                    "count": int(v[:, _N].sum()),
                }
            )
        return out[0] if symbol and out else out

    def _klines(self, params: dict[str, str]) -> Response:
        symbol = params.get("symbol", "")
        interval = params.get("interval", "")
        try:
            limit = int(params.get("limit", 500))
            start = int(params["startTime"]) if "startTime" in params else None
            end = int(params["endTime"]) if "endTime" in params else None
        except ValueError:
            return _json_response(400, {"code": -1100, "msg": "Illegal characters found in a parameter."})
        if not 1 <= limit <= 1500:
            return _json_response(400, {"code": -1130, "msg": "Invalid limit."})
        refused = self._use_weight(klines_weight(limit))
        if refused is not None:
            return refused
        if self.faults.rest_429 and self.rng.random() < self.faults.rest_429:
            self.stats["rest_429"] += 1
            return _json_response(
                429, {"code": -1003, "msg": "Too many requests."}, weight=self._weight_used, retry_after=1
            )
        if symbol not in self.market:
            return _json_response(400, {"code": -1121, "msg": "Invalid symbol."}, weight=self._weight_used)
        if interval not in KLINE_INTERVAL_MINUTES:
            return _json_response(400, {"code": -1120, "msg": "Invalid interval."}, weight=self._weight_used)
        step = KLINE_INTERVAL_MINUTES[interval] * MINUTE_MS
        now = self.clock.now_ms()
        if interval == "1m":
            bars = self._closed_slice(symbol, -1 if start is None else start, now if end is None else end)
            times, values = bars
        else:
            times, values = self._bars(symbol, step)
            keep = np.ones(len(times), dtype=bool)
            if start is not None:
                keep &= times >= start
            if end is not None:
                keep &= times <= end
            times, values = times[keep], values[keep]
        if start is not None:
            times, values = times[:limit], values[:limit]
        else:
            times, values = times[-limit:], values[-limit:]
        rows = [
            [
                int(t),
                _fmt(v[_O]),
                _fmt(v[_H]),
                _fmt(v[_L]),
                _fmt(v[_C]),
                _fmt(v[_V]),
                int(t) + step - 1,
                _fmt(v[_Q]),
                int(v[_N]),
                _fmt(v[_TV]),
                _fmt(v[_TQ]),
                "0",
            ]
            for t, v in zip(times, values, strict=True)
        ]
        return _json_response(200, rows, weight=self._weight_used)

    def _bars(self, symbol: str, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Clock-aligned bars of `step` ms from the closed 1m candles; the newest one may be forming."""
        times, v = self._closed_slice(symbol, -1, self.clock.data_now_ms())
        if len(times) == 0:
            return times, v
        bar = times - times % step
        starts = np.flatnonzero(np.r_[True, bar[1:] != bar[:-1]])
        out = np.empty((len(starts), v.shape[1]))
        out[:, _O] = v[starts, _O]
        out[:, _H] = np.maximum.reduceat(v[:, _H], starts)
        out[:, _L] = np.minimum.reduceat(v[:, _L], starts)
        ends = np.r_[starts[1:], len(times)] - 1
        out[:, _C] = v[ends, _C]
        for col in (_V, _Q, _N, _TV, _TQ):
            out[:, col] = np.add.reduceat(v[:, col], starts)
        return bar[starts], out


def _json_response(status: int, body: object, *, weight: int | None = None, retry_after: int | None = None) -> Response:
    payload = json.dumps(body).encode()
    headers = Headers()
    headers["Content-Type"] = "application/json"
    headers["Content-Length"] = str(len(payload))
    headers["Connection"] = "close"
    if weight is not None:
        headers["X-MBX-USED-WEIGHT-1M"] = str(weight)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return Response(status, HTTPStatus(status).phrase, headers, payload)
