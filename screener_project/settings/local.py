from __future__ import annotations

from .base import *  # noqa: F403
from .base import LOCALHOST_ORIGIN_REGEX, env

# Debug pages show tracebacks and settings: only when asked for (`./screener run --debug` or DJANGO_DEBUG=1).
DEBUG = env.bool("DJANGO_DEBUG", default=False)
# A web client served from this machine, on any port, may call a local run.
CORS_ALLOW_LOCALHOST = env.bool("CORS_ALLOW_LOCALHOST", default=True)
CORS_ALLOWED_ORIGIN_REGEXES = [LOCALHOST_ORIGIN_REGEX] if CORS_ALLOW_LOCALHOST else []
