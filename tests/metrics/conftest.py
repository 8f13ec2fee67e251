from __future__ import annotations

import pandas as pd
import pytest

from apps.collector.candles import Candle, data_files, read_csv_candles

SYMBOLS = ["BTCUSDT", "ETHUSDT", "LAYERUSDT", "XMRUSDT"]


@pytest.fixture(scope="session")
def frames(bundled_data_dir) -> dict[str, pd.DataFrame]:
    """Eight days of real 1m candles of four symbols, as read from the bundled files."""
    files = data_files(bundled_data_dir)
    return {symbol: read_csv_candles(files[symbol]) for symbol in SYMBOLS}


def as_candles(symbol: str, rows: pd.DataFrame) -> list[Candle]:
    """Rows of a candle frame (the FIELDS columns) as Candles of `symbol`."""
    return [
        Candle(
            symbol,
            int(r.open_time),
            r.open,
            r.high,
            r.low,
            r.close,
            r.volume,
            r.quote_volume,
            int(r.trades),
            r.taker_buy_volume,
            r.taker_buy_quote_volume,
        )
        for r in rows.itertuples()
    ]
