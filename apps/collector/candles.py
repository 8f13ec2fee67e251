"""The closed 1m candle, its validation (docs/windows-and-indicators.md), parsed from frames, REST rows, CSV files."""

from __future__ import annotations

import gzip
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

MINUTE_MS = 60_000

# Column order of a candle row everywhere numeric (Redis ring rows, shard matrices).
FIELDS: tuple[str, ...] = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "trades",
    "taker_buy_volume",
    "taker_buy_quote_volume",
)
FIELD_INDEX = {name: i for i, name in enumerate(FIELDS)}

CSV_COLUMNS = [
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
]


class InvalidCandle(ValueError):
    """A frame or row that is not a valid closed candle; `reason` is a short stable label for counters."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Candle:
    symbol: str
    open_time: int  # ms since the epoch, UTC
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    trades: int = 0
    taker_buy_volume: float = 0.0
    taker_buy_quote_volume: float = 0.0
    quote_volume_estimated: bool = False

    @property
    def close_time(self) -> int:
        return self.open_time + MINUTE_MS - 1

    def as_row(self) -> tuple[float, ...]:
        return tuple(float(getattr(self, name)) for name in FIELDS)


def estimate_quote_volume(volume: float, high: float, low: float, close: float) -> float:
    return volume * (high + low + close) / 3


def candle_validate(candle: Candle, *, close_time: int | None = None) -> Candle:
    """The candle if valid (docs/windows-and-indicators.md), else raise InvalidCandle naming the first broken rule."""
    prices = (candle.open, candle.high, candle.low, candle.close)
    if not all(math.isfinite(p) for p in prices) or min(prices) <= 0:
        raise InvalidCandle("non_positive_price", candle.symbol)
    if candle.low > min(candle.open, candle.close):
        raise InvalidCandle("low_above_body", candle.symbol)
    if candle.high < max(candle.open, candle.close):
        raise InvalidCandle("high_below_body", candle.symbol)
    volumes = (candle.volume, candle.quote_volume, candle.taker_buy_volume, candle.taker_buy_quote_volume)
    if not all(math.isfinite(v) and v >= 0 for v in volumes) or candle.trades < 0:
        raise InvalidCandle("negative_volume", candle.symbol)
    if candle.open_time % MINUTE_MS != 0:
        raise InvalidCandle("open_time_not_on_minute", candle.symbol)
    if close_time is not None and close_time != candle.close_time:
        raise InvalidCandle("bad_close_time", candle.symbol)
    return candle


def _number(value: object, field: str) -> float:
    if isinstance(value, bool) or value is None:
        raise InvalidCandle("malformed", f"field {field}")
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidCandle("malformed", f"field {field}") from None


def _integer(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidCandle("malformed", f"field {field}")
    try:
        return int(value)
    except ValueError:
        raise InvalidCandle("malformed", f"field {field}") from None


def candle_from_kline(k: dict) -> tuple[Candle, bool]:
    """Parse the `k` object of a kline event; returns (candle, is_closed). Validates the candle."""
    if not isinstance(k, dict):
        raise InvalidCandle("malformed", "kline is not an object")
    try:
        symbol = k["s"]
        if not isinstance(symbol, str) or not symbol:
            raise InvalidCandle("malformed", "field s")
        if k.get("i", "1m") != "1m":
            raise InvalidCandle("wrong_interval", symbol)
        candle = Candle(
            symbol=symbol,
            open_time=_integer(k["t"], "t"),
            open=_number(k["o"], "o"),
            high=_number(k["h"], "h"),
            low=_number(k["l"], "l"),
            close=_number(k["c"], "c"),
            volume=_number(k["v"], "v"),
            quote_volume=_number(k["q"], "q"),
            trades=_integer(k.get("n", 0), "n"),
            taker_buy_volume=_number(k.get("V", 0), "V"),
            taker_buy_quote_volume=_number(k.get("Q", 0), "Q"),
        )
        close_time = _integer(k["T"], "T")
        closed = k["x"]
    except KeyError as missing:
        raise InvalidCandle("malformed", f"missing field {missing.args[0]}") from None
    if not isinstance(closed, bool):
        raise InvalidCandle("malformed", "field x")
    return candle_validate(candle, close_time=close_time), closed


def candle_from_rest_row(symbol: str, row: list) -> Candle:
    """Parse one row of GET /fapi/v1/klines."""
    if not isinstance(row, list) or len(row) < 11:
        raise InvalidCandle("malformed", "kline row")
    candle = Candle(
        symbol=symbol,
        open_time=_integer(row[0], "open_time"),
        open=_number(row[1], "open"),
        high=_number(row[2], "high"),
        low=_number(row[3], "low"),
        close=_number(row[4], "close"),
        volume=_number(row[5], "volume"),
        quote_volume=_number(row[7], "quote_volume"),
        trades=_integer(row[8], "trades"),
        taker_buy_volume=_number(row[9], "taker_buy_volume"),
        taker_buy_quote_volume=_number(row[10], "taker_buy_quote_volume"),
    )
    return candle_validate(candle, close_time=_integer(row[6], "close_time"))


def symbol_from_filename(path: Path) -> str:
    """`BTCUSDT-1m.csv.gz` or `BTCUSDT-1m-2025-05.csv` -> `BTCUSDT`."""
    return path.name.split("-", 1)[0].upper()


def data_files(data_dir: Path) -> dict[str, list[Path]]:
    """Every `<SYMBOL>-1m*.csv[.gz]` file under data_dir, grouped by symbol, sorted by name."""
    files: dict[str, list[Path]] = {}
    for path in sorted(data_dir.iterdir()):
        if path.is_file() and "-1m" in path.name and path.name.endswith((".csv", ".csv.gz")):
            files.setdefault(symbol_from_filename(path), []).append(path)
    return files


def read_csv_candles(paths: list[Path] | Path) -> pd.DataFrame:
    """Read Binance public-dump CSV files of one symbol into a frame with the FIELDS columns.

    Rows are sorted by open time and de-duplicated; an empty quote volume is estimated (see estimate_quote_volume) and
    flagged in the `quote_volume_estimated` column. Files with or without a header row are accepted.
    """
    if isinstance(paths, Path):
        paths = [paths]
    frames = []
    for path in paths:
        raw = path.read_bytes()
        if path.name.endswith(".gz"):
            raw = gzip.decompress(raw)
        has_header = raw[:9].lower().startswith(b"open_time")
        frame = pd.read_csv(io.BytesIO(raw), header=0 if has_header else None, names=CSV_COLUMNS)
        frames.append(frame)
    df = pd.concat(frames, ignore_index=True)
    df = df.drop_duplicates("open_time").sort_values("open_time", kind="stable").reset_index(drop=True)
    for column in (
        "open",
        "high",
        "low",
        "close",
        "volume",
        "quote_volume",
        "taker_buy_volume",
        "taker_buy_quote_volume",
        "count",
    ):
        df[column] = pd.to_numeric(df[column], errors="coerce")
    estimated = df["quote_volume"].isna()
    df.loc[estimated, "quote_volume"] = estimate_quote_volume(
        df.loc[estimated, "volume"], df.loc[estimated, "high"], df.loc[estimated, "low"], df.loc[estimated, "close"]
    )
    out = pd.DataFrame(
        {
            "open_time": df["open_time"].astype(np.int64),
            "open": df["open"].astype(float),
            "high": df["high"].astype(float),
            "low": df["low"].astype(float),
            "close": df["close"].astype(float),
            "volume": df["volume"].astype(float),
            "quote_volume": df["quote_volume"].astype(float),
            "trades": df["count"].fillna(0).astype(np.int64),
            "taker_buy_volume": df["taker_buy_volume"].fillna(0.0).astype(float),
            "taker_buy_quote_volume": df["taker_buy_quote_volume"].fillna(0.0).astype(float),
            "quote_volume_estimated": estimated.to_numpy(),
        }
    )
    return out
