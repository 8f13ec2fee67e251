"""Run the API's (sync) DRF views on long-lived threads under ASGI, so their database connections are reused.

Django's ASGI handler gives every request a fresh thread context for sync code, and database connections belong to
that context: under daphne each API request opened and closed its own PostgreSQL connection (a backend fork, ~4-9 ms
here). A view wrapped by `pooled_view` runs, when served over ASGI, on one of API_VIEW_THREADS persistent threads
whose connections live for CONN_MAX_AGE, checked around each call as Django checks them for a sync request. Served
any other way (WSGI, Django's test client), the view runs exactly as Django would run it.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import markcoroutinefunction, sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import close_old_connections

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=settings.API_VIEW_THREADS, thread_name_prefix="api-view")
        return _executor


def _rendered(response):
    # DRF responses render here, in the thread that read the data, not in one more thread hop.
    render = getattr(response, "render", None)
    return render() if callable(render) else response


def _call_pooled(view: Callable, request, args: tuple, kwargs: dict):
    close_old_connections()
    try:
        return _rendered(view(request, *args, **kwargs))
    finally:
        close_old_connections()


def _call_plain(view: Callable, request, args: tuple, kwargs: dict):
    return _rendered(view(request, *args, **kwargs))


def pooled_view(view: Callable) -> Callable:
    """An async view running `view` on the persistent API threads (see the module docstring)."""

    @functools.wraps(view)
    async def run(request, *args, **kwargs):
        if isinstance(request, ASGIRequest) and settings.API_VIEW_THREADS > 0:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(_pool(), _call_pooled, view, request, args, kwargs)
        return await sync_to_async(_call_plain, thread_sensitive=True)(view, request, args, kwargs)

    markcoroutinefunction(run)
    return run
