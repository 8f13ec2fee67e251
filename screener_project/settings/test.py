from __future__ import annotations

import os

from .base import *  # noqa: F403
from .base import CELERY_BROKER_TRANSPORT_OPTIONS, DATABASES, env

# Tests use their own Redis databases and key prefix so a running screener on the same server is untouched.
REDIS_URL = env("TEST_REDIS_URL", default="redis://127.0.0.1:6379/14")
REDIS_KEY_PREFIX = env("TEST_REDIS_KEY_PREFIX", default="scrtest")
# Each pytest-xdist worker gets keys of its own (pytest-django gives it a database of its own the same way). Processes
# a test starts (and prefixes derived from this one) inherit both, already suffixed, hence the check.
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if _XDIST_WORKER and f"-{_XDIST_WORKER}" not in REDIS_KEY_PREFIX:
    REDIS_KEY_PREFIX = f"{REDIS_KEY_PREFIX}-{_XDIST_WORKER}"
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": REDIS_KEY_PREFIX + ":cache",
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": REDIS_KEY_PREFIX + ":asgi"},
    }
}
CELERY_BROKER_URL = env("TEST_CELERY_BROKER_URL", default="redis://127.0.0.1:6379/15")
# Celery prefers the CELERY_BROKER_URL environment variable to its settings: align it, so a value exported for a
# running screener never sends test tasks to that screener's broker (child processes inherit it too).
os.environ["CELERY_BROKER_URL"] = CELERY_BROKER_URL
CELERY_BROKER_TRANSPORT_OPTIONS = {**CELERY_BROKER_TRANSPORT_OPTIONS, "global_keyprefix": REDIS_KEY_PREFIX + ":celery:"}
CELERY_REDBEAT_REDIS_URL = CELERY_BROKER_URL
CELERY_REDBEAT_KEY_PREFIX = REDIS_KEY_PREFIX + ":redbeat:"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SUPABASE_JWT_SECRET = "test-supabase-secret-with-at-least-32-bytes!"
# Fixed, so processes a test starts (daphne, celery) verify the tokens the test process signs.
SECRET_KEY = env("DJANGO_SECRET_KEY", default="test-only-django-secret-key-not-for-any-deployment")
COMPAT_JWT_SECRET = env("COMPAT_JWT_SECRET", default="test-only-compat-token-secret-not-for-any-deployment")
# Django's test client loads the middleware for every client it makes, and WhiteNoise would then list every static
# file again (about 50 ms a client, hundreds of clients a run); looking each file up when asked serves the same files.
WHITENOISE_AUTOREFRESH = True
# Django's PostgreSQL backend, emptying tables after a transactional test with DELETE (tests/database/base.py).
DATABASES["default"]["ENGINE"] = "tests.database"
# Parallel test runs on one machine each name their own database.
DATABASES["default"]["TEST"] = {"NAME": env("TEST_DATABASE_NAME", default="test_screener")}
# A commit need not wait for the disk: a crash of the test server loses nothing a test still needs, and the many
# commits of transactional tests and of the code under test cost far less. A benchmark running on these settings
# (bench_e2e) turns it off, to time commits as a deployment makes them.
TEST_DATABASE_ASYNC_COMMIT = env.bool("TEST_DATABASE_ASYNC_COMMIT", default=True)
if TEST_DATABASE_ASYNC_COMMIT:
    DATABASES["default"]["OPTIONS"] = {
        **DATABASES["default"].get("OPTIONS", {}),
        "options": "-c synchronous_commit=off",
    }
