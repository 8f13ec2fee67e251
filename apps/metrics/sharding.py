"""A stable symbol -> shard mapping: the same symbol lands in the same shard in every process and release."""

from __future__ import annotations

import zlib
from collections.abc import Iterable


def shard_of(symbol: str, *, shard_count: int) -> int:
    # crc32, not hash(): Python's str hash is salted per process.
    return zlib.crc32(symbol.encode()) % shard_count


def shards_split(symbols: Iterable[str], *, shard_count: int) -> list[list[str]]:
    """Symbols grouped by shard, each group sorted, one list per shard index (possibly empty)."""
    shards: list[list[str]] = [[] for _ in range(shard_count)]
    for symbol in sorted(set(symbols)):
        shards[shard_of(symbol, shard_count=shard_count)].append(symbol)
    return shards
