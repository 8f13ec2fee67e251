"""Wall-clock helpers shared by the apps."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now_ms() -> int:
    """Epoch milliseconds now."""
    return time.time_ns() // 1_000_000


def iso_utc(moment: datetime) -> str:
    """ISO-8601 in UTC with a trailing Z (microseconds kept when there are any)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def iso_utc_seconds(ms: int) -> str:
    """Epoch milliseconds as ISO-8601 in UTC to the second, with a trailing Z."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
