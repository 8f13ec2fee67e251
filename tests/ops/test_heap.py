"""Long-running processes keep their start-up objects out of full garbage collections (screener_project.heap)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Starts processes (scripts, workers, daphne): not in `./screener test --fast`.
pytestmark = pytest.mark.e2e


def _frozen_after(code: str) -> int:
    """gc.get_freeze_count() printed by a fresh interpreter after running `code` (the test process stays as is)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "screener_project.settings.test"}
    result = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport gc\nprint(gc.get_freeze_count())"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return int(result.stdout.strip().splitlines()[-1])


def test_a_plain_django_process_freezes_nothing():
    assert _frozen_after("import django; django.setup()") == 0


def test_the_asgi_application_freezes_what_it_loaded():
    # Tens of thousands of module-level objects; a full collection skips all of them.
    assert _frozen_after("import screener_project.asgi") > 20_000


@pytest.mark.parametrize("started", [False, True])
def test_a_celery_pool_process_freezes_its_heap_once_started(started):
    code = "import django; django.setup()\nfrom screener_project.celery import app\n"
    if started:
        code += "from celery.signals import worker_process_init\nworker_process_init.send(sender=None)\n"
    frozen = _frozen_after(code)
    assert (frozen > 20_000) if started else (frozen == 0)
