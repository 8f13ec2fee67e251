"""bench_compat_metrics: runs, reports its figures and leaves no keys behind."""

from __future__ import annotations

import io
import json

import pytest
from django.conf import settings
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_bench_reports_figures_and_cleans_up(redis_client):
    out = io.StringIO()
    call_command("bench_compat_metrics", "--symbols", "7", "--repeat", "2", stdout=out)
    figures = json.loads(out.getvalue().strip().splitlines()[-1])
    assert figures["symbols"] == 7 and figures["metrics_body_bytes"] > 7 * 1000
    assert figures["metrics_warm"]["median_ms"] > 0 and figures["tickers_cold"]["p95_ms"] > 0
    assert not list(redis_client.scan_iter(match=f"{settings.REDIS_KEY_PREFIX}:bench-compat:*"))
