"""Settings shared by every environment; behaviour is switched by environment variables."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# `./screener run` keeps its generated secrets here (screener_project.env_file); exported variables win.
ENV_FILE = Path(os.environ.get("DJANGO_ENV_FILE", BASE_DIR / ".env"))
environ.Env.read_env(ENV_FILE, overwrite=False)

# Keys once shipped as defaults: anyone could sign sessions and tokens with them, so they are never accepted.
PUBLIC_SECRET_KEYS = frozenset({"insecure-development-key-change-me", "compose-only-insecure-secret-key-change-me"})
# Without a configured key a process gets a random one of its own: safe, though sessions and compat tokens then
# last only as long as the process (`./screener run` generates and keeps one in .env).
SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY or SECRET_KEY in PUBLIC_SECRET_KEYS:
    SECRET_KEY = secrets.token_urlsafe(48)
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
    "axes",
    "apps.collector",
    "apps.metrics",
    "apps.alerts",
    "apps.alerts.notifications",
    "apps.api",
    "apps.api.compat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before anything reads a body: one too large is a 413, not a traceback.
    "apps.api.middleware.BodySizeLimitMiddleware",
    # Serves the admin's and the API docs' static files from daphne itself; no separate web server needed.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out admin login into its 429 answer.
    "axes.middleware.AxesMiddleware",
]

# Admin login lockout (django-axes): after ADMIN_LOGIN_FAILURE_LIMIT wrong passwords for one username, or from one IP
# address, further attempts are refused for ADMIN_LOGIN_LOCKOUT_MINUTES, even with the right password. The
# compatibility surface's login has limits of its own (COMPAT_LOGIN_RATE_LIMIT); its failures are not counted here.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ONLY_ADMIN_SITE = True
AXES_HANDLER = "screener_project.admin_lockout.AdminLoginHandler"
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_FAILURE_LIMIT = env.int("ADMIN_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("ADMIN_LOGIN_LOCKOUT_MINUTES", default=15.0))
AXES_RESET_ON_SUCCESS = True

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

# Checked when users choose a password themselves (sign-up, reset and change in the web client).
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

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
    "alerts.shard_closed": {"queue": "shards"},
    "alerts.tick_late": {"queue": "shards"},
    "metrics.shard_indicators": {"queue": "indicators"},
    "notifications.deliver": {"queue": "notifications"},
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
# REST weight one collector process may spend per minute: the exchange allows 2,400 per IP, and the margin leaves room
# for other requests from the same address.
COLLECTOR_REST_WEIGHT_BUDGET = env.int("COLLECTOR_REST_WEIGHT_BUDGET", default=2200)
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
# The collector sends the symbols of a shard that closed the minute for evaluation at most this often (the first at
# once); 0 turns that off, and every minute then waits for its tick (every symbol closed, or the grace deadline).
TICK_BATCH_MS = env.int("TICK_BATCH_MS", default=100)
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
# Pages served from this machine (localhost, 127.0.0.1, [::1], any port, http or https) may call the API: a web client
# started next to a local run works out of the box. Off in production settings; deployments list CORS_ALLOWED_ORIGINS.
CORS_ALLOW_LOCALHOST = env.bool("CORS_ALLOW_LOCALHOST", default=False)
LOCALHOST_ORIGIN_REGEX = r"^https?://(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?$"
CORS_ALLOWED_ORIGIN_REGEXES = [LOCALHOST_ORIGIN_REGEX] if CORS_ALLOW_LOCALHOST else []
ANON_RATE_LIMIT = env("ANON_RATE_LIMIT", default="100/minute")

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON only (other content types: 415), refusing deep nesting, lone surrogates and NUL (400), big bodies (413).
    "DEFAULT_PARSER_CLASSES": ["apps.api.parsers.StrictJSONParser"],
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
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.api.schema_errors.error_responses_add",
    ],
}

LOG_LEVEL = env("LOG_LEVEL", default="INFO")

# --- API: WebSocket delivery, health thresholds, authentication caches ----------------------------
# Seconds between server pings on /ws/alerts; a client that leaves WS_MAX_MISSED_PONGS pings unanswered is closed.
WS_PING_INTERVAL_SECONDS = env.float("WS_PING_INTERVAL_SECONDS", default=30.0)
WS_MAX_MISSED_PONGS = env.int("WS_MAX_MISSED_PONGS", default=2)
# Frames waiting for one client; a client that falls this far behind is closed instead of buffering forever.
WS_SEND_QUEUE_SIZE = env.int("WS_SEND_QUEUE_SIZE", default=1000)
# Alerts arriving within this many milliseconds of the last delivery to the clients wait for the end of that interval
# and go out together: every delivery costs one write per client, whatever it carries. 0 sends each at once.
WS_FANOUT_COALESCE_MS = env.float("WS_FANOUT_COALESCE_MS", default=25.0)
# How far back a reconnecting /ws/alerts client may resume: alerts created at most this many seconds ago.
WS_RESUME_WINDOW_SECONDS = env.float("WS_RESUME_WINDOW_SECONDS", default=600.0)
# The most alerts one resume replays (the newest of them; the answer says when older ones were left out).
WS_RESUME_MAX_ALERTS = env.int("WS_RESUME_MAX_ALERTS", default=300)
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

# --- API: compatibility surface for the existing web client (apps/api/compat/README.md) -------------
# Mounted at /<COMPAT_PREFIX>/api/... and /<COMPAT_PREFIX>/ws/alerts; empty turns it off.
COMPAT_PREFIX = env("COMPAT_PREFIX", default="compat/pulsaryx").strip("/")
# Signs the tokens its login issues (HS256); separate from Supabase's, so neither surface accepts the other's.
# When not configured it is derived from SECRET_KEY (never equal to it, never a public value).
COMPAT_JWT_SECRET = (
    env("COMPAT_JWT_SECRET", default="")
    or hmac.new(SECRET_KEY.encode(), b"screener compat tokens", hashlib.sha256).hexdigest()
)
COMPAT_TOKEN_TTL_SECONDS = env.int("COMPAT_TOKEN_TTL_SECONDS", default=7 * 24 * 3600)
# The client polls about 75 requests a minute per tab: its signed-in users get a limit well above ANON_RATE_LIMIT.
COMPAT_USER_RATE_LIMIT = env("COMPAT_USER_RATE_LIMIT", default="1200/minute")
# Login attempts per IP and per email (brute force), and webhook test sends per user.
COMPAT_LOGIN_RATE_LIMIT = env("COMPAT_LOGIN_RATE_LIMIT", default="10/minute")
COMPAT_WEBHOOK_TEST_RATE_LIMIT = env("COMPAT_WEBHOOK_TEST_RATE_LIMIT", default="6/minute")
# Sign-ups, reset emails and reset attempts per IP (and reset emails per address).
COMPAT_ACCOUNT_RATE_LIMIT = env("COMPAT_ACCOUNT_RATE_LIMIT", default="5/minute")
COMPAT_WEBHOOKS_PER_USER = env.int("COMPAT_WEBHOOKS_PER_USER", default=10)
# Alerts of rules the client has no switch for (this screener's whale, volume and flat rules, rules made in the
# admin) are left out of this surface unless this is set.
COMPAT_SEND_ALL_RULES = env.bool("COMPAT_SEND_ALL_RULES", default=False)
# Who may sign up from the client: "closed" (operators create accounts), "invite" (an invite code made in the
# admin), "open" (anyone).
COMPAT_REGISTRATION = env("COMPAT_REGISTRATION", default="invite")
# Trial days of an account signed up without an invite (open registration); an invite carries its own.
COMPAT_SIGNUP_TRIAL_DAYS = env.int("COMPAT_SIGNUP_TRIAL_DAYS", default=7)
# The client's address, for the link of the password-reset email; empty: the page's origin when CORS allows it.
COMPAT_CLIENT_URL = env("COMPAT_CLIENT_URL", default="").rstrip("/")
# Where the billing page's "manage" button leads (there is no payment provider: plans are set in the admin).
COMPAT_BILLING_MANAGE_URL = env("COMPAT_BILLING_MANAGE_URL", default="")

# --- Notifications (apps/alerts/notifications) ---------------------------------------------------
# Loopback destinations (127.0.0.0/8, ::1) are refused unless this is on: self-hosting and tests.
NOTIFICATIONS_ALLOW_LOOPBACK = env.bool("NOTIFICATIONS_ALLOW_LOOPBACK", default=False)
# Connect / read timeouts of one request, seconds.
NOTIFICATIONS_CONNECT_TIMEOUT = env.float("NOTIFICATIONS_CONNECT_TIMEOUT", default=3.0)
NOTIFICATIONS_READ_TIMEOUT = env.float("NOTIFICATIONS_READ_TIMEOUT", default=5.0)
# A delivery that keeps failing (5xx, timeouts, refused connections) is retried for NOTIFICATIONS_RETRY_SECONDS and
# at least NOTIFICATIONS_MAX_ATTEMPTS times, then given up (failed).
NOTIFICATIONS_MAX_ATTEMPTS = env.int("NOTIFICATIONS_MAX_ATTEMPTS", default=3)
NOTIFICATIONS_RETRY_SECONDS = env.float("NOTIFICATIONS_RETRY_SECONDS", default=3600.0)
# Backoff before attempt n+1 is base * 2**(n-1) seconds (2, 4, ...) up to NOTIFICATIONS_MAX_BACKOFF, or the server's
# Retry-After if longer.
NOTIFICATIONS_BACKOFF_BASE = env.float("NOTIFICATIONS_BACKOFF_BASE", default=2.0)
NOTIFICATIONS_MAX_BACKOFF = env.float("NOTIFICATIONS_MAX_BACKOFF", default=60.0)
# A Retry-After longer than this is capped (a hostile or broken server must not park deliveries for days).
NOTIFICATIONS_MAX_RETRY_AFTER = env.float("NOTIFICATIONS_MAX_RETRY_AFTER", default=300.0)
# Consecutive failed requests after which a destination is paused.
NOTIFICATIONS_PAUSE_AFTER_FAILURES = env.int("NOTIFICATIONS_PAUSE_AFTER_FAILURES", default=6)
NOTIFICATIONS_TELEGRAM_API_URL = env("NOTIFICATIONS_TELEGRAM_API_URL", default="https://api.telegram.org")
# Minimum seconds between two messages to one destination. Telegram: ~1/s per chat, 20/min per group
# (group chat ids are negative); Discord: 30 messages/min per webhook's channel.
NOTIFICATIONS_INTERVAL_TELEGRAM_CHAT = env.float("NOTIFICATIONS_INTERVAL_TELEGRAM_CHAT", default=1.0)
NOTIFICATIONS_INTERVAL_TELEGRAM_GROUP = env.float("NOTIFICATIONS_INTERVAL_TELEGRAM_GROUP", default=3.0)
NOTIFICATIONS_INTERVAL_DISCORD = env.float("NOTIFICATIONS_INTERVAL_DISCORD", default=2.0)
NOTIFICATIONS_INTERVAL_WEBHOOK = env.float("NOTIFICATIONS_INTERVAL_WEBHOOK", default=0.2)
# Slack incoming webhooks: about one message a second.
NOTIFICATIONS_INTERVAL_SLACK = env.float("NOTIFICATIONS_INTERVAL_SLACK", default=1.0)
# Alerts per message: Discord allows 10 embeds; Telegram is cut by its 4096-character limit too.
NOTIFICATIONS_BATCH_DISCORD = 10
NOTIFICATIONS_BATCH_TELEGRAM = env.int("NOTIFICATIONS_BATCH_TELEGRAM", default=25)
NOTIFICATIONS_BATCH_WEBHOOK = env.int("NOTIFICATIONS_BATCH_WEBHOOK", default=50)
NOTIFICATIONS_BATCH_SLACK = env.int("NOTIFICATIONS_BATCH_SLACK", default=20)

# --- Email (password-reset links) ------------------------------------------------------------------
# Printed to the console unless an SMTP host is named.
EMAIL_HOST = env("EMAIL_HOST", default="")
EMAIL_BACKEND = env(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_PORT = env.int("EMAIL_PORT", default=587)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=True)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="screener@localhost")
PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_TIMEOUT", default=24 * 3600)

# --- Operations ----------------------------------------------------------------------------------
# Structured logs: one JSON object per line (LOG_FORMAT=console for a readable terminal). Django hands LOGGING to
# observability.logging_setup, which also configures structlog, so stdlib and structlog lines share one format and
# both carry the tick id bound by observability.tick_context.
from screener_project.observability import logging_dict  # noqa: E402

LOG_FORMAT = env("LOG_FORMAT", default="json")
LOGGING_CONFIG = "screener_project.observability.logging_setup"
# Celery's per-task "received"/"succeeded" lines (INFO shows them again) and the web's access lines (one JSON line per
# HTTP request, screener_project.access_log; WARNING hides them).
LOG_LEVEL_CELERY_TASKS = env("LOG_LEVEL_CELERY_TASKS", default="WARNING")
LOG_LEVEL_ACCESS = env("LOG_LEVEL_ACCESS", default="INFO")
LOGGING = logging_dict(
    log_format=LOG_FORMAT, level=LOG_LEVEL, celery_tasks_level=LOG_LEVEL_CELERY_TASKS, access_level=LOG_LEVEL_ACCESS
)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Modules holding tasks outside an app's tasks.py.
CELERY_IMPORTS = ["apps.alerts.housekeeping"]
# The retention purge deletes at most this many rows per statement, so it never holds long locks.
RETENTION_BATCH_SIZE = env.int("RETENTION_BATCH_SIZE", default=5000)
# When set, GET /metrics requires "Authorization: Bearer <token>" (leave empty when only the cluster can reach it).
METRICS_TOKEN = env("METRICS_TOKEN", default="")
