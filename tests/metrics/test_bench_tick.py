"""bench_tick runs a whole tick on the real Redis and PostgreSQL, prints its figures, and leaves nothing behind."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from apps.alerts.management.commands.bench_tick import STAGES
from apps.metrics.models import MetricsCalculated
from screener_project.kernel.timeframes import SCREENER_TIMEFRAMES


@pytest.mark.django_db
def test_bench_tick_prints_stage_timings_and_cleans_up(redis_client, settings):
    out = io.StringIO()
    call_command("bench_tick", symbols=40, repeat=2, shards=2, stdout=out)
    lines = out.getvalue().strip().splitlines()
    assert lines[0].startswith("built 40 symbols")
    figures = json.loads(lines[-1])
    assert list(figures) == [*STAGES, "total"]
    assert all(value > 0 for value in figures.values())
    assert figures["total"] == pytest.approx(sum(figures[stage] for stage in STAGES), abs=0.1)
    assert list(redis_client.scan_iter(match=settings.REDIS_KEY_PREFIX + ":*")) == []
    assert settings.REDIS_KEY_PREFIX.count(":") == 0  # the run's own prefix was restored
    assert MetricsCalculated.objects.count() == 0


@pytest.mark.django_db
def test_bench_tick_json_mode_prints_only_the_figures():
    out = io.StringIO()
    call_command("bench_tick", symbols=17, repeat=1, json=True, stdout=out)
    (line,) = out.getvalue().strip().splitlines()
    assert json.loads(line)["total"] > 0


@pytest.mark.django_db(transaction=True)  # the worker processes commit their rows on their own connections
def test_bench_tick_with_workers_adds_the_wall_clock_and_cleans_up(redis_client, settings):
    out = io.StringIO()
    call_command("bench_tick", symbols=24, repeat=2, shards=4, workers=2, stdout=out)
    lines = out.getvalue().strip().splitlines()
    figures = json.loads(lines[-1])
    assert list(figures) == [*STAGES, "total", "total_2_workers"]
    assert 0 < figures["total_2_workers"]
    assert "wall clock on 2 worker processes" in lines[-2]
    assert list(redis_client.scan_iter(match=settings.REDIS_KEY_PREFIX + ":*")) == []
    assert MetricsCalculated.objects.count() == 0


@pytest.mark.django_db
def test_the_symbol_by_symbol_baseline_does_the_same_work(redis_client, settings):
    """The pandas-and-ta baseline computes the values the vectorized tick computes, so its time is comparable."""
    from apps.alerts.management.commands import bench_tick
    from apps.collector.candles import data_files
    from apps.metrics.services import shard_indicators_compute

    symbols, minute_ms = bench_tick._build(redis_client, data_files(bench_tick.DEFAULT_DATA), 20)
    try:
        tick = shard_indicators_compute(redis_client, minute_ms=minute_ms, symbols=symbols)
        for row, symbol in enumerate(symbols):
            baseline = bench_tick._symbol_by_symbol(redis_client, symbol, minute_ms)
            for name, column in [
                ("change", "change_pct"),
                ("vol", "volume"),
                ("vcp", "vcp"),
                ("fib_r2", "fib_r2"),
                ("rsi_14", "rsi_14"),
                ("macd", "macd"),
                ("bb_upper", "bb_upper"),
            ]:
                for index, timeframe in enumerate(SCREENER_TIMEFRAMES):
                    assert baseline[f"{name}_{timeframe}"] == pytest.approx(
                        tick.values[column][index, row], rel=1e-9, nan_ok=True
                    ), (symbol, name, timeframe)
    finally:
        bench_tick._cleanup(redis_client, symbols, minute_ms)


@pytest.mark.django_db
def test_bench_tick_baseline_figure_is_printed():
    out = io.StringIO()
    call_command("bench_tick", symbols=16, repeat=1, baseline=4, stdout=out)
    lines = out.getvalue().strip().splitlines()
    assert json.loads(lines[-1])["baseline_pandas_ta_ms"] > 0
    assert "symbol by symbol with pandas and ta" in lines[-2]


@pytest.mark.django_db
def test_bench_tick_times_a_rule_naming_indicators_before_the_alerts():
    out = io.StringIO()
    call_command("bench_tick", symbols=16, repeat=1, json=True, condition=["rsi_14_1h < 30"], stdout=out)
    assert json.loads(out.getvalue().strip().splitlines()[-1])["rules"] > 0


@pytest.mark.django_db
def test_bench_tick_refuses_a_bad_condition_naming_the_token():
    with pytest.raises(CommandError, match="rsi_14_2h"):
        call_command("bench_tick", symbols=16, repeat=1, condition=["rsi_14_2h < 30"], stdout=io.StringIO())
