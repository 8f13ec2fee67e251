"""bench_tick runs a whole tick on the real Redis and PostgreSQL, prints its figures, and leaves nothing behind."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from apps.alerts.management.commands.bench_tick import STAGES
from apps.metrics.models import MetricsCalculated


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
