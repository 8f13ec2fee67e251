"""Compiled numeric kernels (numba) for the few loops numpy cannot express without interpreter overhead."""

from __future__ import annotations

from collections.abc import Callable

import numba


def compiled(function: Callable) -> Callable:
    """`function` compiled to machine code at its first call, the result cached on disk where that is possible.

    Without a writable cache directory (a read-only image and home), numba refuses to cache at decoration time;
    the function is then compiled in memory, once per process, instead of failing the import.
    """
    try:
        return numba.njit(cache=True, nogil=True)(function)
    except RuntimeError:
        return numba.njit(nogil=True)(function)
