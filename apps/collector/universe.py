"""Which contracts the screener watches (docs/windows-and-indicators.md) and which of them one collector slice owns."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence

from django.db import transaction

from .models import Symbol


def universe_select(
    exchange_info: dict,
    tickers: Sequence[dict] = (),
    *,
    allowlist: Iterable[str] = (),
    denylist: Iterable[str] = (),
    top_n: int = 0,
) -> list[dict]:
    """USDT perpetuals in TRADING status, filtered by allow/deny lists, capped to the top N by 24 h quote volume.

    Returns the exchangeInfo entries kept, sorted by symbol; each gains `quoteVolume24h` (float or None).
    """
    allow = {s.upper() for s in allowlist}
    deny = {s.upper() for s in denylist}
    volumes: dict[str, float] = {}
    for ticker in tickers:
        try:
            volumes[ticker["symbol"]] = float(ticker["quoteVolume"])
        except (KeyError, TypeError, ValueError):
            continue
    kept = []
    for entry in exchange_info.get("symbols", []):
        if not isinstance(entry, dict):
            continue
        symbol = entry.get("symbol")
        if (
            not isinstance(symbol, str)
            or entry.get("contractType") != "PERPETUAL"
            or entry.get("quoteAsset") != "USDT"
            or entry.get("status") != "TRADING"
            or (allow and symbol not in allow)
            or symbol in deny
        ):
            continue
        kept.append({**entry, "quoteVolume24h": volumes.get(symbol)})
    if top_n > 0:
        kept.sort(key=lambda e: (-(e["quoteVolume24h"] or 0.0), e["symbol"]))
        kept = kept[:top_n]
    return sorted(kept, key=lambda e: e["symbol"])


def slice_of(symbol: str, *, slice_count: int) -> int:
    """The slice owning `symbol`: a stable hash, the same in every process and every run."""
    return zlib.crc32(symbol.encode()) % slice_count


def slice_symbols(symbols: Iterable[str], *, slice_index: int, slice_count: int) -> list[str]:
    return sorted(s for s in symbols if slice_of(s, slice_count=slice_count) == slice_index)


def symbols_upsert(*, entries: Sequence[dict]) -> None:
    """Record the universe in `symbols`: listed ones active (created or updated), all others inactive."""
    names = [e["symbol"] for e in entries]
    with transaction.atomic():
        for entry in entries:
            Symbol.objects.update_or_create(
                symbol=entry["symbol"],
                defaults={
                    "base_asset": str(entry.get("baseAsset", ""))[:24],
                    "quote_asset": str(entry.get("quoteAsset", "USDT"))[:12],
                    "status": str(entry.get("status", "TRADING"))[:24],
                    "is_active": True,
                    "quote_volume_24h": entry.get("quoteVolume24h"),
                },
            )
        Symbol.objects.filter(is_active=True).exclude(symbol__in=names).update(is_active=False)
