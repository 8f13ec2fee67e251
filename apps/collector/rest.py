"""Binance USD-M REST client (async) that paces itself inside the per-minute request-weight budget."""

from __future__ import annotations

import asyncio
import logging
import random
import time

import httpx

from .candles import Candle, InvalidCandle, candle_from_rest_row
from .instruments import REJECTIONS, REST_REQUESTS, REST_WEIGHT

logger = logging.getLogger(__name__)


def klines_weight(limit: int) -> int:
    """Weight of GET /fapi/v1/klines for `limit` rows, as the exchange publishes it."""
    return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10


class RestError(RuntimeError):
    pass


class WeightBudget:
    """Request weight spent per wall-clock minute (the exchange's window), kept under `budget`.

    The exchange's `X-MBX-USED-WEIGHT-1M` header corrects our count (other clients on the same IP count too).
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.window = int(time.time() // 60)
        self.used = 0
        self.peak = 0  # highest weight seen in any one minute
        self.blocked_until = 0.0  # monotonic time before which no request may go out
        self._lock = asyncio.Lock()

    def _roll(self) -> None:
        window = int(time.time() // 60)
        if window != self.window:
            self.window, self.used = window, 0

    async def acquire(self, weight: int) -> None:
        async with self._lock:
            while True:
                blocked = self.blocked_until - time.monotonic()
                if blocked > 0:  # the exchange said 429/418: nobody sends until Retry-After has passed
                    await asyncio.sleep(blocked)
                    continue
                self._roll()
                if self.used + weight <= self.budget:
                    self.used += weight
                    return
                await asyncio.sleep(60 - time.time() % 60 + 0.05)

    def observe(self, used: int) -> None:
        self._roll()
        self.used = max(self.used, used)
        self.peak = max(self.peak, used)
        REST_WEIGHT.set(used)

    def block(self, seconds: float) -> None:
        self.blocked_until = max(self.blocked_until, time.monotonic() + seconds)


class RestClient:
    def __init__(self, base_url: str, *, budget: int = 2000, concurrency: int = 8, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.weight = WeightBudget(budget)
        self._sem = asyncio.Semaphore(concurrency)
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout)
        self.rate_limited = 0  # 429/418 answers received

    async def close(self) -> None:
        await self._http.aclose()

    async def get(self, path: str, *, params: dict | None = None, weight: int = 1, attempts: int = 6) -> object:
        """GET a JSON endpoint, paced by weight, retrying network errors, 5xx and 429/418 with backoff."""
        endpoint = path.rsplit("/", 1)[-1]
        delay = 0.5
        for attempt in range(attempts):
            await self.weight.acquire(weight)
            try:
                async with self._sem:
                    response = await self._http.get(path, params=params)
            except httpx.HTTPError as error:
                REST_REQUESTS.labels(endpoint, "error").inc()
                logger.warning("REST %s failed (%s), attempt %d", path, error, attempt + 1)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 30)
                continue
            REST_REQUESTS.labels(endpoint, str(response.status_code)).inc()
            used = response.headers.get("X-MBX-USED-WEIGHT-1M")
            if used and used.isdigit():
                self.weight.observe(int(used))
            if response.status_code in (418, 429):
                self.rate_limited += 1
                retry_after = float(response.headers.get("Retry-After") or 5)
                logger.warning("REST %s answered %d; backing off %.0f s", path, response.status_code, retry_after)
                self.weight.block(retry_after)
                continue
            if response.status_code >= 500:
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 30)
                continue
            if response.status_code != 200:
                raise RestError(f"GET {path} {params}: {response.status_code} {response.text[:200]}")
            return response.json()
        raise RestError(f"GET {path} {params}: gave up after {attempts} attempts")

    async def server_time(self) -> int:
        return int((await self.get("/fapi/v1/time"))["serverTime"])

    async def exchange_info(self) -> dict:
        return await self.get("/fapi/v1/exchangeInfo")

    async def tickers_24h(self) -> list[dict]:
        return await self.get("/fapi/v1/ticker/24hr", weight=40)

    async def klines(
        self, symbol: str, interval: str, *, limit: int, start_ms: int | None = None, end_ms: int | None = None
    ) -> list[Candle]:
        """Klines as Candles (open_time = the bar's open); invalid rows are counted and skipped."""
        params: dict[str, object] = {"symbol": symbol, "interval": interval, "limit": limit}
        if start_ms is not None:
            params["startTime"] = start_ms
        if end_ms is not None:
            params["endTime"] = end_ms
        rows = await self.get("/fapi/v1/klines", params=params, weight=klines_weight(limit))
        candles = []
        for row in rows if isinstance(rows, list) else []:
            try:
                if interval == "1m":
                    candles.append(candle_from_rest_row(symbol, row))
                else:
                    # Bars close at open + interval - 1: validate prices and volumes, keep the bar's own times.
                    bar = candle_from_rest_row(symbol, [*row[:6], int(row[0]) + 59_999, *row[7:]])
                    candles.append(bar)
            except InvalidCandle as invalid:
                REJECTIONS.labels(invalid.reason).inc()
                logger.warning("REST kline of %s rejected: %s", symbol, invalid)
        return candles
