"""Start the exchange simulator and the collector as real processes, the way an operator does."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import redis as redis_lib
from django.conf import settings

REPO_ROOT = Path(__file__).resolve().parents[2]


def process_env(**extra: str) -> dict[str, str]:
    """The test settings, pointed at the test database pytest-django created."""
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "screener_project.settings.test",
        "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/"
        f"{db['NAME']}",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


class Process:
    def __init__(self, name: str, args: list[str], log_dir: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            [sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float) -> None:
        wait_until(lambda: text in self.log(), timeout, f"{self.name} to log {text!r}", self)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()
        return self.popen.returncode


def wait_until(condition: Callable[[], bool], timeout: float, what: str, process: Process | None = None) -> None:
    """Poll `condition`; fail with the process's log tail on timeout or if the process exits meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process is not None and process.popen.poll() is not None:
            raise AssertionError(f"{process.name} exited ({process.popen.returncode}):\n{process.log()[-3000:]}")
        time.sleep(0.2)
    tail = process.log()[-3000:] if process is not None else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{tail}")


def simulator_start(log_dir: Path, port: int, *args: str) -> Process:
    process = Process("simulator", ["run_exchange_sim", "--port", str(port), *args], log_dir, process_env())
    process.wait_for_log("exchange simulator ready", 30)
    return process


def simulator_status(port: int) -> dict:
    return httpx.get(f"http://127.0.0.1:{port}/sim/status", timeout=5).json()


def collector_start(log_dir: Path, port: int, *args: str, name: str = "collector") -> Process:
    env = process_env(BINANCE_WS_BASE_URL=f"ws://127.0.0.1:{port}", BINANCE_REST_BASE_URL=f"http://127.0.0.1:{port}")
    return Process(name, ["run_collector", *args], log_dir, env)


def broker_client() -> redis_lib.Redis:
    return redis_lib.Redis.from_url(settings.CELERY_BROKER_URL)


def broker_clear() -> None:
    client = broker_client()
    prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"]
    for found in client.scan_iter(match=prefix + "*", count=1000):
        client.delete(found)


def tick_messages() -> list[dict]:
    """The `alerts.tick` tasks waiting in the Celery broker's `ticks` queue, as their kwargs."""
    prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"]
    out = []
    for raw in broker_client().lrange(prefix + "ticks", 0, -1):
        message = json.loads(raw)
        if message["headers"]["task"] != "alerts.tick":
            continue
        _args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        out.append(kwargs)
    return out


class TcpProxy:
    """A loopback TCP forwarder that can be cut and restored, to take PostgreSQL away from one process."""

    def __init__(self, listen_port: int, target_port: int) -> None:
        import asyncio
        import threading

        self.listen_port, self.target_port = listen_port, target_port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server = None
        self._writers: set = set()

    def _call(self, coro):
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _pipe(self, reader, writer) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, client_reader, client_writer) -> None:
        import asyncio

        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.close()
            return
        self._writers |= {client_writer, server_writer}
        await asyncio.gather(self._pipe(client_reader, server_writer), self._pipe(server_reader, client_writer))

    async def _start(self) -> None:
        import asyncio

        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.listen_port, reuse_address=True)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()  # the database "goes away": every open connection breaks
        self._writers.clear()

    def up(self) -> None:
        self._call(self._start())

    def down(self) -> None:
        self._call(self._stop())

    def close(self) -> None:
        self.down()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
