"""bin/supervise, which keeps each process of `./screener run` running: restarts, their limit, and stopping."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.e2e.processes import wait_for

# Starts processes (scripts, workers, daphne): not in `./screener test --fast`.
pytestmark = pytest.mark.e2e

SUPERVISE = Path(__file__).resolve().parents[2] / "bin" / "supervise"


def supervise(tmp_path: Path, *command: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(SUPERVISE), "collector", *command],
        env={**os.environ, "SCREENER_RESTART_DELAY": "0.1", **env},
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_a_process_that_exits_is_restarted_until_the_limit_then_it_gives_up_saying_so(tmp_path):
    runs = tmp_path / "runs"
    process = supervise(tmp_path, "sh", "-c", f"echo run >> {runs}; exit 3", SCREENER_RESTART_LIMIT="2")
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 1
    assert runs.read_text().count("run") == 3  # the first run and two restarts
    assert stderr.count("collector exited with status 3; restarting it in") == 2
    assert "restart 2 of 2" in stderr
    assert "collector exited with status 3 after 2 restarts within 600 s: giving up, stopping the screener" in stderr


def test_a_killed_process_comes_back_and_term_stops_both(tmp_path):
    pids = tmp_path / "pids"
    process = supervise(tmp_path, "sh", "-c", f"echo $$ >> {pids}; exec sleep 60")
    try:
        first = int(wait_for(lambda: pids.exists() and pids.read_text().split(), timeout=10, what="a start")[0])
        os.kill(first, signal.SIGKILL)  # as the OOM killer or an operator would
        lines = wait_for(
            lambda: len(pids.read_text().split()) == 2 and pids.read_text().split(), timeout=10, what="a restart"
        )
        second = int(lines[1])
        os.kill(process.pid, signal.SIGTERM)
        process.wait(10)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0
    assert (
        "collector exited with status 137; restarting it in 0.1 s (restart 1 of 5 within 600 s)"
        in process.stderr.read()
    )
    wait_for(
        lambda: not Path(f"/proc/{second}").exists() or "zombie" in Path(f"/proc/{second}/status").read_text().lower(),
        timeout=5,
        what="the restarted process to stop",
    )
