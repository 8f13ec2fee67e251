"""Timing the stages of a run."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def stage(
    name: str, timings: dict[str, float], *, observe: Callable[[str, float], None] | None = None
) -> Iterator[None]:
    """Add the block's wall time to `timings[name]` (milliseconds); `observe(name, seconds)` also gets it."""
    started = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - started
        timings[name] = timings.get(name, 0.0) + elapsed * 1000
        if observe is not None:
            observe(name, elapsed)
