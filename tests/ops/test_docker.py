"""The image's start scripts, health checks and compose file (no Docker engine here: checked as files and processes)."""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis as redis_lib
import yaml
from django.conf import settings

from tests.conftest import REPO_ROOT
from tests.e2e.processes import free_port, wait_for

# Starts processes (scripts, workers, daphne): not in `./screener test --fast`.
pytestmark = pytest.mark.e2e

DOCKER = REPO_ROOT / "docker"
START_SCRIPTS = ("start-web", "start-worker", "start-beat", "start-collector", "start-flower", "start-migrate")
WORKER_METRICS_PORT = free_port()


def _stub_path(tmp_path: Path) -> str:
    """A PATH whose daphne, celery and python print their arguments instead of running."""
    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    for name in ("daphne", "celery", "python"):
        stub = stubs / name
        stub.write_text(f'#!/bin/sh\necho {name} "$@"\n')
        stub.chmod(0o755)
    return f"{stubs}:{os.environ['PATH']}"


def _run_script(name: str, tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": _stub_path(tmp_path), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"), "HOME": str(tmp_path)}
    return subprocess.run(
        ["bash", str(DOCKER / name), *args], env={**base, **env}, capture_output=True, text=True, cwd=tmp_path
    )


@pytest.mark.parametrize("name", START_SCRIPTS + ("healthcheck-worker",))
def test_start_script_is_strict_executable_and_ends_in_one_exec(name: str):
    path = DOCKER / name
    text = path.read_text()
    assert path.stat().st_mode & stat.S_IXUSR
    assert "set -o errexit -o nounset -o pipefail" in text
    assert len(re.findall(r"^\s*exec ", text, flags=re.MULTILINE)) == 1
    subprocess.run(["bash", "-n", str(path)], check=True)


def test_web_runs_daphne_on_8000_with_a_fresh_metrics_directory(tmp_path: Path):
    stale = tmp_path / "prom" / "counter_123.db"
    stale.parent.mkdir()
    stale.write_bytes(b"x")
    done = _run_script("start-web", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "daphne",
        "-b",
        "0.0.0.0",
        "-p",
        "8000",
        "--proxy-headers",
        "--access-log",
        "/dev/null",
        "screener_project.asgi:application",
    ]
    assert (tmp_path / "prom").is_dir() and not stale.exists()


def test_worker_takes_queues_from_argument_or_environment(tmp_path: Path):
    by_arg = _run_script("start-worker", tmp_path, "shards", CELERY_CONCURRENCY="4").stdout.split()
    assert by_arg[:8] == ["celery", "-A", "screener_project", "worker", "-Q", "shards", "--concurrency", "4"]
    by_env = _run_script("start-worker", tmp_path, CELERY_QUEUES="ticks,default").stdout.split()
    assert by_env[by_env.index("-Q") + 1] == "ticks,default"
    every = _run_script("start-worker", tmp_path).stdout.split()
    assert set(every[every.index("-Q") + 1].split(",")) == set(settings.CELERY_QUEUES_ALL)


def test_beat_and_migrate_commands(tmp_path: Path):
    assert _run_script("start-beat", tmp_path).stdout.split()[:4] == ["celery", "-A", "screener_project", "beat"]
    assert _run_script("start-migrate", tmp_path).stdout.split() == ["python", "manage.py", "migrate", "--noinput"]


def test_collector_slices_need_an_index(tmp_path: Path):
    whole = _run_script("start-collector", tmp_path)
    assert whole.stdout.split() == ["python", "manage.py", "run_collector", "--metrics-port", "9100"]
    sliced = _run_script("start-collector", tmp_path, COLLECTOR_SLICE_COUNT="3", COLLECTOR_SLICE_INDEX="2")
    assert sliced.stdout.split()[5:] == ["--slice-index", "2", "--slice-count", "3"]
    missing = _run_script("start-collector", tmp_path, COLLECTOR_SLICE_COUNT="3")
    assert missing.returncode != 0 and "COLLECTOR_SLICE_INDEX is required" in missing.stderr


def test_flower_refuses_to_start_without_basic_auth(tmp_path: Path):
    refused = _run_script("start-flower", tmp_path)
    assert refused.returncode != 0 and "FLOWER_BASIC_AUTH" in refused.stderr
    started = _run_script("start-flower", tmp_path, FLOWER_BASIC_AUTH="ops:s3cret").stdout.split()
    assert started[:4] == ["celery", "-A", "screener_project", "flower"]
    assert "--basic-auth=ops:s3cret" in started


def _stages(dockerfile: str) -> list[str]:
    return re.split(r"^FROM ", dockerfile, flags=re.MULTILINE)[1:]


def test_dockerfile_is_multi_stage_slim_non_root_without_compilers_at_run_time():
    text = (DOCKER / "Dockerfile").read_text()
    stages = _stages(text)
    assert len(stages) >= 2
    runtime = stages[-1]
    assert "slim" in runtime.splitlines()[0]
    assert not re.search(r"build-essential|gcc|g\+\+|-dev\b", runtime)
    users = re.findall(r"^USER\s+(\S+)", runtime, flags=re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"ARG APP_UID=(\d+)", runtime).group(1) != "0"
    assert "COPY --from=build" in runtime
    for script in START_SCRIPTS:
        assert (DOCKER / script).exists()


def test_compose_runs_every_process_with_health_checks():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert "timescale/timescaledb:" in services["timescaledb"]["image"]
    commands = {name: " ".join(svc.get("command", [])) for name, svc in services.items()}
    for queue in settings.CELERY_QUEUES_ALL:
        assert any(c == f"start-worker {queue}" for c in commands.values()), queue
    for process in ("start-web", "start-beat", "start-collector", "start-flower", "start-migrate"):
        assert process in commands.values()
    for name, service in services.items():
        if name != "migrate":
            assert service.get("healthcheck", {}).get("test"), name
    assert [n for n, c in commands.items() if c == "start-beat"] == ["beat"]
    assert "FLOWER_BASIC_AUTH" in services["flower"]["environment"]
    # processes start only after the migrations finished
    assert services["web"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def _clear_broker(url: str) -> None:
    client = redis_lib.Redis.from_url(url)
    for found in client.scan_iter(match=settings.REDIS_KEY_PREFIX + ":*", count=1000):
        client.delete(found)
    client.close()


def _env() -> dict[str, str]:
    # The processes and health checks run `celery` by name: this interpreter's own comes first, as in the image.
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "screener_project.settings.test",
        "PYTHONPATH": str(REPO_ROOT),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


@pytest.fixture
def broker():
    _clear_broker(settings.CELERY_BROKER_URL)
    yield
    _clear_broker(settings.CELERY_BROKER_URL)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_beat_health_check_follows_the_real_scheduler(broker, tmp_path: Path):
    check = [sys.executable, str(DOCKER / "healthcheck-beat")]
    assert subprocess.run(check, env=_env(), cwd=REPO_ROOT).returncode == 1  # nothing scheduled yet
    beat = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "celery"),
            "-A",
            "screener_project",
            "beat",
            "-s",
            str(tmp_path / "beat-schedule"),
        ],
        env=_env(),
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90  # beat's start-up is slow on a loaded machine
        while subprocess.run(check, env=_env(), cwd=REPO_ROOT, capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, "beat never became healthy"
            time.sleep(1)
    finally:
        _stop(beat)

    def stale_check() -> subprocess.CompletedProcess | None:
        found = subprocess.run(check, env={**_env(), "BEAT_MAX_STALE_SECONDS": "2"}, cwd=REPO_ROOT, capture_output=True)
        return found if found.returncode != 0 else None

    stale = wait_for(stale_check, timeout=30, interval=0.5, what="the stopped beat's entry to turn stale")
    assert stale.returncode == 1 and b"last ran" in stale.stderr


def test_worker_health_check_pings_its_own_node_and_worker_serves_metrics(broker, tmp_path: Path):
    hostname = socket.gethostname()
    env = {
        **_env(),
        "HOSTNAME": hostname,
        "METRICS_PORT": str(WORKER_METRICS_PORT),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
    }
    worker = subprocess.Popen(
        [
            "celery",
            "-A",
            "screener_project",
            "worker",
            "-Q",
            "default",
            "--concurrency",
            "1",
            "--hostname",
            "celery@%h",
            "--without-mingle",
            "--without-gossip",
        ],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120  # a worker's start-up is slow on a loaded machine
        while True:
            ping = subprocess.run(
                ["bash", str(DOCKER / "healthcheck-worker")], env=env, cwd=REPO_ROOT, capture_output=True, text=True
            )
            if ping.returncode == 0:
                break
            assert time.monotonic() < deadline, ping.stderr
            time.sleep(1)
        assert f"celery@{hostname}" in ping.stdout
        metrics = httpx.get(f"http://127.0.0.1:{WORKER_METRICS_PORT}/metrics", timeout=5)
        # unlabelled instruments appear as soon as the process has them: proof of the multiprocess registry
        assert metrics.status_code == 200 and "screener_tick_lag_seconds_count" in metrics.text
    finally:
        _stop(worker)
    # with the worker gone the probe fails
    gone = subprocess.run(
        ["bash", str(DOCKER / "healthcheck-worker")],
        env={**env, "PING_TIMEOUT": "2"},
        cwd=REPO_ROOT,
        capture_output=True,
    )
    assert gone.returncode != 0


def test_collector_health_check_follows_its_slice_heartbeat(redis_client):
    import json as json_lib

    check = [sys.executable, str(DOCKER / "healthcheck-collector")]
    heartbeat = f"{settings.REDIS_KEY_PREFIX}:collector:heartbeat"

    def run(**env: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(check, env={**_env(), **env}, cwd=REPO_ROOT, capture_output=True)

    def beat(slice_index: str, *, age_seconds: float, state: str = "live") -> None:
        ts_ms = int((time.time() - age_seconds) * 1000)
        redis_client.hset(heartbeat, slice_index, json_lib.dumps({"ts_ms": ts_ms, "state": state, "symbols": 16}))

    assert run().returncode == 1  # no heartbeat at all
    beat("0", age_seconds=1)
    assert run().returncode == 0
    assert run(COLLECTOR_SLICE_INDEX="1").returncode == 1  # another slice's pod
    beat("1", age_seconds=120)
    stale = run(COLLECTOR_SLICE_INDEX="1")
    assert stale.returncode == 1 and b"old" in stale.stderr
    beat("1", age_seconds=2, state="warming_up")
    assert run(COLLECTOR_SLICE_INDEX="1").returncode == 0
    beat("0", age_seconds=1, state="stopped")
    assert run().returncode == 1
    redis_client.hset(heartbeat, "2", b"not json")
    assert run(COLLECTOR_SLICE_INDEX="2").returncode == 1
