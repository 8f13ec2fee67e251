"""Settings shared by every environment; behaviour is switched by environment variables."""

from __future__ import annotations

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env("DJANGO_SECRET_KEY", default="insecure-development-key-change-me")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "apps.collector",
    "apps.metrics",
    "apps.alerts",
    "apps.alerts.notifications",
    "apps.api",
    "apps.api.compat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves the admin's and the API docs' static files from daphne itself; no separate web server needed.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "screener_project.urls"
ASGI_APPLICATION = "screener_project.asgi.application"
WSGI_APPLICATION = "screener_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/screener"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Without collectstatic (development, tests) WhiteNoise finds files in the apps, as runserver would.
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=True)

# --- Redis: one server, separate logical databases for each role -------------------------------
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
# Every key the screener writes starts with this prefix, so several deployments (or test runs) can
# share one Redis server without seeing each other's candles.
REDIS_KEY_PREFIX = env("REDIS_KEY_PREFIX", default="scr")

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": env("CACHE_URL", default=REDIS_URL),
        "KEY_PREFIX": REDIS_KEY_PREFIX + ":cache",
    }
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {
            "hosts": [env("CHANNELS_REDIS_URL", default=REDIS_URL)],
            "prefix": REDIS_KEY_PREFIX + ":asgi",
        },
    }
}

# --- Celery -------------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/1")
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None  # a lost broker is retried for ever (with backoff), never fatal
# A task whose worker was killed is delivered again after visibility_timeout (its effects are single: the shard
# progress and the alerts' exactly-once key); the unacked sweep runs every few seconds so that it is prompt.
# Socket timeouts and health checks make a dead connection (a restarted Redis) fail fast and reconnect.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "global_keyprefix": REDIS_KEY_PREFIX + ":celery:",
    "visibility_timeout": env.int("BROKER_VISIBILITY_TIMEOUT_SECONDS", default=60),
    "unacked_restore_interval": 5,
    "unacked_restore_throttle": 1,
    "socket_timeout": 10,
    "socket_connect_timeout": 5,
    "health_check_interval": 10,
}
CELERY_TASK_DEFAULT_QUEUE = "default"
# Queues: the minute tick (alerts.tick) fans out shard tasks on "shards" (the alert critical path); indicators run
# after them on "indicators"; webhooks wait on "notifications"; housekeeping stays on "default".
CELERY_TASK_ROUTES = {
    "alerts.tick": {"queue": "ticks"},
    "alerts.shard_tick": {"queue": "shards"},
    "alerts.tick_late": {"queue": "shards"},
    "metrics.shard_indicators": {"queue": "indicators"},
    "alerts.deliver_notification": {"queue": "notifications"},
}
CELERY_QUEUES_ALL = ["ticks", "shards", "indicators", "notifications", "default"]
# RedBeat (schedule and scheduler lock in Redis), kept alive through Redis restarts, with a heartbeat for health.
CELERY_BEAT_SCHEDULER = "screener_project.beat.ScreenerBeatScheduler"
CELERY_REDBEAT_REDIS_URL = CELERY_BROKER_URL
CELERY_REDBEAT_KEY_PREFIX = REDIS_KEY_PREFIX + ":redbeat:"
# Beat ticks at least this often and extends its lock each time; a killed beat's lock expires after the timeout,
# so its replacement schedules again within that many seconds (RedBeat's default would hold it 25 minutes).
CELERY_BEAT_MAX_LOOP_INTERVAL = env.float("BEAT_MAX_LOOP_INTERVAL_SECONDS", default=2.0)
CELERY_REDBEAT_LOCK_TIMEOUT = env.int("BEAT_LOCK_TIMEOUT_SECONDS", default=10)
CELERY_REDBEAT_REDIS_OPTIONS = {"socket_timeout": 5, "socket_connect_timeout": 5, "health_check_interval": 10}

# --- Screener ------------------------------------------------------------------------------------
BINANCE_WS_BASE_URL = env("BINANCE_WS_BASE_URL", default="wss://fstream.binance.com")
BINANCE_REST_BASE_URL = env("BINANCE_REST_BASE_URL", default="https://fapi.binance.com")
SYMBOL_ALLOWLIST = env.list("SYMBOL_ALLOWLIST", default=[])
SYMBOL_DENYLIST = env.list("SYMBOL_DENYLIST", default=[])
SYMBOL_TOP_N = env.int("SYMBOL_TOP_N", default=0)  # 0 = no cap
STREAMS_PER_CONNECTION = env.int("STREAMS_PER_CONNECTION", default=200)
# Minutes of 1m candles kept per symbol in Redis: the 1d window's 1440 plus a margin, so a tick that runs late
# (or catches up a missed minute) still finds its whole window before newer candles overwrite its oldest ones.
CANDLE_RING_MINUTES = env.int("CANDLE_RING_MINUTES", default=1500)
INDICATOR_BARS = env.int("INDICATOR_BARS", default=200)
SHARD_COUNT = env.int("SHARD_COUNT", default=4)
# A shard's lock lasts this long unless its holder renews it (every third of it while working): a worker killed
# mid-tick delays its shard by at most this much before the next shard task takes over.
SHARD_LOCK_SECONDS = env.int("SHARD_LOCK_SECONDS", default=10)
# Seconds after a minute closes (by the exchange's clock) before the tick runs without stragglers.
TICK_GRACE_SECONDS = env.float("TICK_GRACE_SECONDS", default=5.0)
RETENTION_HOURS = env.int("RETENTION_HOURS", default=48)
ALERT_DEFAULT_COOLDOWN_MINUTES = env.int("ALERT_DEFAULT_COOLDOWN_MINUTES", default=5)
# Near-real-time alerts: also evaluate the forming candle every few seconds (at most one alert per symbol, rule and
# minute still). Off by default: with it on, live alerts can differ from the backtest of the closed candles.
ALERTS_NEAR_REAL_TIME = env.bool("ALERTS_NEAR_REAL_TIME", default=False)
ALERTS_NEAR_REAL_TIME_SECONDS = env.float("ALERTS_NEAR_REAL_TIME_SECONDS", default=5.0)

# --- API -----------------------------------------------------------------------------------------
SUPABASE_JWT_SECRET = env("SUPABASE_JWT_SECRET", default="")
SUPABASE_JWKS_URL = env("SUPABASE_JWKS_URL", default="")
SUPABASE_JWT_AUDIENCE = env("SUPABASE_JWT_AUDIENCE", default="authenticated")
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
ANON_RATE_LIMIT = env("ANON_RATE_LIMIT", default="100/minute")

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Screener API",
    "DESCRIPTION": "Real-time screener and alert engine for Binance USD-M futures.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI's assets are served from this installation, so /api/docs/ works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- API: WebSocket delivery, health thresholds, authentication caches ----------------------------
# Seconds between server pings on /ws/alerts; a client that leaves WS_MAX_MISSED_PONGS pings unanswered is closed.
WS_PING_INTERVAL_SECONDS = env.float("WS_PING_INTERVAL_SECONDS", default=30.0)
WS_MAX_MISSED_PONGS = env.int("WS_MAX_MISSED_PONGS", default=2)
# Frames waiting for one client; a client that falls this far behind is closed instead of buffering forever.
WS_SEND_QUEUE_SIZE = env.int("WS_SEND_QUEUE_SIZE", default=1000)
# Browser origins allowed on /ws/ besides ALLOWED_HOSTS (same-site pages); defaults to the CORS origins.
WS_ALLOWED_ORIGINS = env.list("WS_ALLOWED_ORIGINS", default=CORS_ALLOWED_ORIGINS)
# Non-browser clients send no Origin header; browsers always do, so allowing its absence opens no cross-site hole.
WS_ALLOW_MISSING_ORIGIN = env.bool("WS_ALLOW_MISSING_ORIGIN", default=True)
# /api/health: a signal older than its threshold makes the service "stale".
HEALTH_COLLECTOR_STALE_SECONDS = env.float("HEALTH_COLLECTOR_STALE_SECONDS", default=30.0)
HEALTH_TICK_STALE_SECONDS = env.float("HEALTH_TICK_STALE_SECONDS", default=150.0)
HEALTH_INDICATORS_STALE_SECONDS = env.float("HEALTH_INDICATORS_STALE_SECONDS", default=300.0)
# Beat writes its heartbeat every tick (at most BEAT_MAX_LOOP_INTERVAL_SECONDS apart): older means it stopped.
HEALTH_BEAT_STALE_SECONDS = env.float("HEALTH_BEAT_STALE_SECONDS", default=30.0)
# Signed-in users are limited per user id instead of per IP.
USER_RATE_LIMIT = env("USER_RATE_LIMIT", default="1000/minute")
SUPABASE_JWKS_CACHE_SECONDS = env.int("SUPABASE_JWKS_CACHE_SECONDS", default=600)
# Persistent threads (each with its own reused database connection) that run the REST views under ASGI; 0 = Django's
# default of a fresh thread, and so a fresh database connection, per request.
API_VIEW_THREADS = env.int("API_VIEW_THREADS", default=8)

# --- API: compatibility surface for the existing web client (SPEC §5b) -----------------------------
# Mounted at /<COMPAT_PREFIX>/api/... and /<COMPAT_PREFIX>/ws/alerts; empty turns it off.
COMPAT_PREFIX = env("COMPAT_PREFIX", default="compat/pulsaryx").strip("/")
# Signs the tokens its login issues (HS256); separate from Supabase's, so neither surface accepts the other's.
COMPAT_JWT_SECRET = env("COMPAT_JWT_SECRET", default=SECRET_KEY)
COMPAT_TOKEN_TTL_SECONDS = env.int("COMPAT_TOKEN_TTL_SECONDS", default=7 * 24 * 3600)
# The client polls about 75 requests a minute per tab: its signed-in users get a limit well above ANON_RATE_LIMIT.
COMPAT_USER_RATE_LIMIT = env("COMPAT_USER_RATE_LIMIT", default="1200/minute")
# Login attempts per IP and per email (brute force), and webhook test sends per user.
COMPAT_LOGIN_RATE_LIMIT = env("COMPAT_LOGIN_RATE_LIMIT", default="10/minute")
COMPAT_WEBHOOK_TEST_RATE_LIMIT = env("COMPAT_WEBHOOK_TEST_RATE_LIMIT", default="6/minute")

# --- Operations ----------------------------------------------------------------------------------
# Structured logs: one JSON object per line (LOG_FORMAT=console for a readable terminal). Django hands LOGGING to
# observability.logging_setup, which also configures structlog, so stdlib and structlog lines share one format and
# both carry the tick id bound by observability.tick_context.
from screener_project.observability import logging_dict  # noqa: E402

LOG_FORMAT = env("LOG_FORMAT", default="json")
LOGGING_CONFIG = "screener_project.observability.logging_setup"
LOGGING = logging_dict(log_format=LOG_FORMAT, level=LOG_LEVEL)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Modules holding tasks outside an app's tasks.py.
CELERY_IMPORTS = ["apps.alerts.housekeeping"]
# The retention purge deletes at most this many rows per statement, so it never holds long locks.
RETENTION_BATCH_SIZE = env.int("RETENTION_BATCH_SIZE", default=5000)
# When set, GET /metrics requires "Authorization: Bearer <token>" (leave empty when only the cluster can reach it).
METRICS_TOKEN = env("METRICS_TOKEN", default="")
