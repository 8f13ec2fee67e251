"""One structured line per HTTP request (logger `screener.access`), in the process's JSON log format.

Daphne's own access log is plain text on stdout; the web process runs with `--access-log /dev/null` and this ASGI
wrapper logs the same facts (method, path, status, bytes, duration, client) through logging instead.
"""

from __future__ import annotations

import logging
import time
from typing import Any

logger = logging.getLogger("screener.access")


class AccessLogMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not logger.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        facts: dict[str, Any] = {"status": None, "bytes": 0}

        async def send_logged(message: dict) -> None:
            if message["type"] == "http.response.start":
                facts["status"] = message["status"]
            elif message["type"] == "http.response.body":
                facts["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        finally:
            client = scope.get("client") or (None, None)
            logger.info(
                "%s %s %s",
                scope.get("method"),
                scope.get("path"),
                facts["status"],
                extra={
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status_code": facts["status"],
                    "bytes": facts["bytes"],
                    "duration_ms": round((time.monotonic() - started) * 1000, 1),
                    "client": client[0],
                },
            )
