"""GET {p}/api/klines (apps/api/compat/README.md): Binance kline arrays from the stored candles and the bar history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.conf import settings
from rest_framework.test import APIClient

from apps.collector.bars_store import bars_write
from apps.collector.candles import FIELD_INDEX, FIELDS
from apps.collector.models import Candle1m, Symbol

pytestmark = pytest.mark.django_db

P = f"/{settings.COMPAT_PREFIX}"
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@pytest.fixture
def candles() -> list[Candle1m]:
    """12 minutes of BTCUSDT from 10:00, prices that differ every minute."""
    rows = []
    for n in range(12):
        base = 100.0 + n
        rows.append(
            Candle1m(
                time=T0 + timedelta(minutes=n),
                symbol="BTCUSDT",
                open=base,
                high=base + 0.75,
                low=base - 0.5,
                close=base + 0.25,
                volume=10.0 + n,
                quote_volume=(10.0 + n) * base,
                trades=5 + n,
                taker_buy_volume=4.0 + n,
                taker_buy_quote_volume=(4.0 + n) * base,
            )
        )
    Candle1m.objects.bulk_create(rows)
    return rows


def get(**params):
    return APIClient().get(f"{P}/api/klines", params)


def num(value: float) -> str:
    return repr(round(value, 8)).removesuffix(".0")


def test_1m_klines_are_binance_arrays_oldest_first(candles):
    response = get(symbol="BTCUSDT", interval="1m", limit=3)
    assert response.status_code == 200
    body = response.json()
    assert [k[0] for k in body] == [ms(c.time) for c in candles[-3:]]
    last = candles[-1]
    assert body[-1] == [
        ms(last.time),
        "111",
        "111.75",
        "110.5",
        "111.25",
        "21",
        ms(last.time) + 59_999,
        num(last.quote_volume),
        16,
        "15",
        num(last.taker_buy_quote_volume),
        "0",
    ]


def test_5m_klines_aggregate_the_candles_on_utc_boundaries(candles):
    body = get(symbol="btcusdt", interval="5m").json()
    assert [k[0] for k in body] == [T0_MS, T0_MS + 300_000, T0_MS + 600_000]
    first = candles[:5]
    assert body[0] == [
        T0_MS,
        num(first[0].open),
        num(max(c.high for c in first)),
        num(min(c.low for c in first)),
        num(first[-1].close),
        num(sum(c.volume for c in first)),
        T0_MS + 299_999,
        num(sum(c.quote_volume for c in first)),
        sum(c.trades for c in first),
        num(sum(c.taker_buy_volume for c in first)),
        num(sum(c.taker_buy_quote_volume for c in first)),
        "0",
    ]
    assert body[2][4] == num(candles[-1].close) and body[2][8] == candles[10].trades + candles[11].trades


def bar_rows(open_times: list[int], *, price: float, trades: int) -> np.ndarray:
    rows = np.zeros((len(FIELDS), 1, len(open_times)))
    for j, open_ms in enumerate(open_times):
        values = {"open_time": open_ms, "open": price + j, "high": price + j + 2, "low": price + j - 1,
                  "close": price + j + 1, "volume": 1000.0, "quote_volume": 100_000.0 * (j + 1), "trades": trades,
                  "taker_buy_volume": 500.0, "taker_buy_quote_volume": 50_000.0}  # fmt: skip
        for name, value in values.items():
            rows[FIELD_INDEX[name], 0, j] = value
    return rows


def test_older_1h_bars_come_from_the_bar_history(candles, redis_client):
    hour = 3_600_000
    older = [T0_MS - 3 * hour, T0_MS - 2 * hour, T0_MS - hour]
    bars_write(redis_client, interval="1h", symbols=["BTCUSDT"], bars=bar_rows(older, price=50.0, trades=700))
    body = get(symbol="BTCUSDT", interval="1h", limit=3).json()
    assert [k[0] for k in body] == [T0_MS - 2 * hour, T0_MS - hour, T0_MS]
    assert body[0][1:5] == ["51", "53", "50", "52"] and body[0][6] == T0_MS - hour - 1 and body[0][8] == 700
    assert body[0][7] == "200000" and body[0][11] == "0"
    # The newest (forming) hour comes from the candles.
    assert body[2][1] == num(candles[0].open) and body[2][4] == num(candles[-1].close)
    assert body[2][8] == sum(c.trades for c in candles)


def test_a_stored_bar_cut_by_the_retention_is_completed_from_the_bar_history(candles, redis_client):
    hour = 3_600_000
    # Candles of 09:58-09:59 only: the 09:00 hour is partial in candles_1m, whole in the bar history.
    Candle1m.objects.bulk_create(
        Candle1m(
            time=T0 - timedelta(minutes=m),
            symbol="BTCUSDT",
            open=99.0,
            high=99.5,
            low=98.5,
            close=99.0,
            volume=1.0,
            quote_volume=99.0,
            trades=1,
        )
        for m in (1, 2)
    )
    bars_write(redis_client, interval="1h", symbols=["BTCUSDT"], bars=bar_rows([T0_MS - hour], price=90.0, trades=900))
    body = get(symbol="BTCUSDT", interval="1h").json()
    assert [k[0] for k in body] == [T0_MS - hour, T0_MS]
    assert body[0][1] == "90" and body[0][8] == 900


def test_unknown_symbol_is_404(candles):
    response = get(symbol="NOPEUSDT", interval="1m")
    assert response.status_code == 404 and "NOPEUSDT" in response.json()["detail"]


def test_listed_symbol_without_candles_is_an_empty_array(db):
    Symbol.objects.create(symbol="NEWUSDT")
    assert get(symbol="NEWUSDT", interval="1h").json() == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"interval": "1m"}, "symbol"),
        ({"symbol": "BTC/USDT", "interval": "1m"}, "symbol"),
        ({"symbol": "BTCUSDT"}, "interval"),
        ({"symbol": "BTCUSDT", "interval": "7m"}, "interval"),
        ({"symbol": "BTCUSDT", "interval": "1m", "limit": "0"}, "limit"),
        ({"symbol": "BTCUSDT", "interval": "1m", "limit": "1501"}, "limit"),
        ({"symbol": "BTCUSDT", "interval": "1m", "limit": "ten"}, "limit"),
    ],
)
def test_bad_parameters_get_400_naming_the_field(candles, params, field):
    response = get(**params)
    assert response.status_code == 400
    assert field in response.json()
