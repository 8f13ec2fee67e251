from __future__ import annotations

from .base import *  # noqa: F403
from .base import env

# Debug pages show tracebacks and settings: only when asked for (`./screener run --debug` or DJANGO_DEBUG=1).
DEBUG = env.bool("DJANGO_DEBUG", default=False)
