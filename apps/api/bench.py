"""Shared parts of the bench_api and bench_ws commands: a daphne on loopback, percentiles, the last JSON line."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence

import numpy as np
from django.conf import settings


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


@contextlib.contextmanager
def daphne_running(
    *,
    port: int,
    env: dict[str, str] | None = None,
    application: str = "screener_project.asgi:application",
    timeout: float = 30.0,
) -> Iterator[str]:
    """Starts `daphne` for this project on 127.0.0.1:port and stops it afterwards; yields its base address."""
    if port_open("127.0.0.1", port):
        raise RuntimeError(f"port {port} is already in use")
    child_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", settings.SETTINGS_MODULE),
        "DJANGO_DEBUG": "false",
        **(env or {}),
    }
    command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), application]
    # Its log goes to a file, not a pipe: nobody reads a pipe during the run, and once its 64 KB buffer is full
    # (a minute of access and 404 log lines) daphne blocks on the write and every request hangs.
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(command, env=child_env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + timeout
        while not port_open("127.0.0.1", port):
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"daphne exited: {log.read().decode(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("daphne did not start listening in time")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def percentiles_ms(values_s: Sequence[float], *, points: Sequence[int] = (50, 95, 99)) -> dict[str, float | None]:
    """Percentiles (and max) of durations in seconds, as milliseconds rounded to 0.01."""
    if not values_s:
        return {f"p{p}_ms": None for p in points} | {"max_ms": None}
    data = np.asarray(values_s, dtype=float) * 1000.0
    figures = {f"p{p}_ms": round(float(np.percentile(data, p)), 2) for p in points}
    return figures | {"max_ms": round(float(data.max()), 2)}
