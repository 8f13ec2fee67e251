from __future__ import annotations

import pandas as pd
import pytest

from apps.collector.candles import data_files, read_csv_candles

SYMBOLS = ["BTCUSDT", "ETHUSDT", "LAYERUSDT", "XMRUSDT"]


@pytest.fixture(scope="session")
def frames(bundled_data_dir) -> dict[str, pd.DataFrame]:
    """Eight days of real 1m candles of four symbols, as read from the bundled files."""
    files = data_files(bundled_data_dir)
    return {symbol: read_csv_candles(files[symbol]) for symbol in SYMBOLS}
