from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import PUBLIC_SECRET_KEYS, env

DEBUG = False
# A real secret or no start: a random per-process key (as in development) would break sessions across processes.
SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY or SECRET_KEY in PUBLIC_SECRET_KEYS:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set to a secret of your own (it signs sessions and tokens).")
# The login tokens of the compatibility surface: its own secret, or one derived from SECRET_KEY (base settings).
if env("COMPAT_JWT_SECRET", default="") in (SECRET_KEY, *PUBLIC_SECRET_KEYS):
    raise ImproperlyConfigured("COMPAT_JWT_SECRET must differ from DJANGO_SECRET_KEY and from any public default.")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
