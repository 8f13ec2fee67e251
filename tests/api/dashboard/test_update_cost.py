"""What one live update of the screener costs the page with 500 symbols changing every second.

Prints the figures the page takes with the Performance API from each body's arrival: `update` (parse, DOM writes,
style and layout) and `to_next_frame` (also paint and the wait for the display's next refresh), and how many
frames the Long Animation Frames API saw over 50 ms. Asserts only that every update landed, in the right order
with the right values.
"""

from __future__ import annotations

import json
import time

import httpx
import numpy as np
import pytest

from .seed import MINUTE, NOW, snapshots_write, symbols_named
from .test_browser import ranked

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SYMBOLS = 500
UPDATES = 20


def percentiles(name: str, values: np.ndarray) -> dict[str, float]:
    return {
        f"{name}_p50_ms": round(float(np.percentile(values, 50)), 1),
        f"{name}_p95_ms": round(float(np.percentile(values, 95)), 1),
        f"{name}_max_ms": round(float(values.max()), 1),
    }


def shown_changes(page) -> list[tuple[str, str]]:
    """(symbol, 1h change as shown) of each row in the page, in order."""
    return [
        tuple(pair)
        for pair in page.eval_on_selector_all(
            "#screener-body [data-symbol]", "rows => rows.map(r => [r.dataset.symbol, r.children[6].textContent])"
        )
    ]


def test_screener_update_cost_with_500_symbols_every_second(page, server, redis_client):
    symbols = symbols_named(SYMBOLS)
    snapshots_write(redis_client, symbols=symbols, minute=NOW)
    page.goto("/?poll=250")
    page.wait_for_function("() => document.querySelector('#screener-count').textContent === '500 of 500'")
    page.wait_for_function("() => Number(document.body.dataset.updates) === 1")
    # Sorted by the 1h change, every update reorders the whole table: the worst case.
    page.locator('#screener-head [data-key="change_1h"]').click()
    body_bytes = 0
    for update in range(1, UPDATES + 1):
        started = time.monotonic()
        values = snapshots_write(redis_client, symbols=symbols, minute=NOW + MINUTE * update, seed=update)
        page.wait_for_function("n => Number(document.body.dataset.updates) === n", arg=update + 1)
        if update == 1:
            body_bytes = len(httpx.get(f"{server}/api/screener").content)
        time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))  # pacing: one new snapshot a second

    # Only the rows on screen (and a margin) are in the page: the top of the order, then the bottom once scrolled.
    order = ranked(values, symbols, "change_pct", "1h", descending=True)
    changes = dict(zip(symbols, values["change_pct"][2], strict=True))
    top = shown_changes(page)
    assert [symbol for symbol, _ in top] == order[: len(top)]
    assert all(text == f"{changes[symbol]:+.2f}%" for symbol, text in top)
    page.mouse.wheel(0, 100_000)
    page.wait_for_function(
        f"() => document.querySelector('#screener-body [data-symbol]:last-child')?.dataset.symbol === '{order[-1]}'"
    )
    bottom = shown_changes(page)
    assert [symbol for symbol, _ in bottom] == order[-len(bottom) :]
    assert all(text == f"{changes[symbol]:+.2f}%" for symbol, text in bottom)

    timings = np.array(page.evaluate("window.screenerTimings"))
    frames = np.array(page.evaluate("window.screenerFrameTimings"))
    assert len(timings) == len(frames) == UPDATES + 1
    figures = {
        "symbols": SYMBOLS,
        "updates": UPDATES,
        "first_fill_ms": round(float(timings[0]), 1),
        # The first fill builds the rows; the figures below are the live updates after it.
        **percentiles("update", timings[1:]),
        **percentiles("to_next_frame", frames[1:]),
        **percentiles("script", np.array(page.evaluate("window.screenerScriptTimings"))[1:]),
        "long_animation_frames": page.evaluate("window.screenerLongFrames"),
        "body_bytes": body_bytes,
    }
    print(json.dumps(figures))
