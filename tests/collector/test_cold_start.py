"""Cold start of the collector against the simulator: every symbol warmed up, no 429 from the exchange.

In the suite with 40 symbols (16 real + 24 synthesized). As a benchmark, with 500 (a few minutes; `-s` prints the
figures):
    COLD_START_SYMBOLS=500 python -m pytest -s tests/collector/test_cold_start.py
Figures: time to full warm-up, peak REST weight per minute, 429 answers (must be none), Redis bytes per symbol.
"""

from __future__ import annotations

import json
import os
import re
import time

import pytest

from screener_project.kernel.redis_keys import bars_key, candles_ring_key, collector_heartbeat_key, persist_queue_key
from tests.e2e.processes import free_port

from .processes import collector_start, simulator_start, simulator_status, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

SYMBOLS = int(os.environ.get("COLD_START_SYMBOLS", "40"))
WEIGHT_BUDGET = os.environ.get("COLD_START_WEIGHT_BUDGET", "2200")


def test_cold_start_warms_every_symbol_without_a_429(redis_client, tmp_path, bundled_data_dir):
    port = free_port()
    sim = simulator_start(tmp_path, port, "--speed", "1", "--synthesize", str(SYMBOLS - 16))
    started = time.monotonic()
    collector = collector_start(tmp_path, port, "--weight-budget", WEIGHT_BUDGET)
    try:
        collector.wait_for_log("collector ready", 600)
        ready_after = time.monotonic() - started
        status = simulator_status(port)
        beat = json.loads(redis_client.hget(collector_heartbeat_key(), "0"))
        symbols = sorted(s.decode().rsplit(":", 1)[-1] for s in redis_client.scan_iter(candles_ring_key("*")))
        ring_bytes = [redis_client.memory_usage(candles_ring_key(s)) for s in symbols]
        bar_bytes = [redis_client.memory_usage(bars_key(s)) or 0 for s in symbols]
        wait_until(lambda: redis_client.xlen(persist_queue_key()) == 0, 600, "candles_1m to catch up", collector)
        persisted_after = time.monotonic() - started
    finally:
        collector.stop()
        sim.stop()
    line = re.search(r"collector ready: .*?\)", collector.log()).group(0)
    per_symbol = (sum(ring_bytes) + sum(bar_bytes)) / len(symbols)
    print(
        f"\ncold start, {len(symbols)} symbols, weight budget {WEIGHT_BUDGET}/min:\n"
        f"  {line}\n"
        f"  ready after {ready_after:.1f} s from process start; candles_1m caught up after {persisted_after:.1f} s\n"
        f"  peak REST weight in one minute (exchange header): {beat['rest_weight_peak_1m']}\n"
        f"  429 answers from the exchange: {status['stats']['rest_429']}\n"
        f"  Redis bytes per symbol: ring {sum(ring_bytes) / len(symbols):.0f}"
        f" + bars {sum(bar_bytes) / len(symbols):.0f} = {per_symbol:.0f}"
    )
    assert len(symbols) == SYMBOLS
    assert status["stats"]["rest_429"] == 0
