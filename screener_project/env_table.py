"""docs/configuration.md, generated: every environment variable the screener reads, with its default.

`python -m screener_project.env_table --write` rewrites the file, `--check` exits 1 when it is out of date (a test
runs the check). The settings are read as source, never imported, so the table shows the defaults as written, not
the values of the machine that generates it. A variable's meaning is the comment just above the line that reads it
(or at its end), unless MEANINGS words it better (a comment covering several lines, or none at all).
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "configuration.md"

# Settings modules, in the order their variables are listed; later modules only add rows or per-module defaults.
SETTINGS_SOURCES = (
    "screener_project/settings/base.py",
    "screener_project/settings/local.py",
    "screener_project/settings/production.py",
    "screener_project/settings/test.py",
)
# What reads variables outside the settings: the entry script, the image's start and probe scripts (shell or
# Python, by their first line), and the code.
SCRIPT_SOURCES = ("screener", "docker/start-*", "docker/healthcheck-*")
PYTHON_SOURCES = ("apps/**/*.py", "screener_project/*.py")

_ENV_NAMES = {"env", "_env"}
_SECTION = re.compile(r"^# -+ (.+?) -+$")
_SHELL_READ = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(:[-?])?")

MEANINGS = {
    "DJANGO_SECRET_KEY": "Django's signing key; production refuses to start without it",
    "DJANGO_DEBUG": "Django debug mode (off unless asked for: `./screener run --debug` sets it)",
    "COMPAT_JWT_SECRET": (
        "signs the compatibility surface's login tokens (default: derived from DJANGO_SECRET_KEY, never equal to it;"
        " `./screener run` generates one into .env)"
    ),
    "COMPAT_WEBHOOKS_PER_USER": "webhooks a web client user may have",
    "EMAIL_BACKEND": "Django email backend (default: SMTP when EMAIL_HOST is set, else printed on the console)",
    "EMAIL_PORT": "SMTP port for password-reset emails",
    "EMAIL_HOST_USER": "SMTP user",
    "EMAIL_HOST_PASSWORD": "SMTP password",
    "EMAIL_USE_TLS": "SMTP with STARTTLS",
    "EMAIL_TIMEOUT": "seconds an SMTP connection may take",
    "DEFAULT_FROM_EMAIL": "sender of password-reset emails",
    "PASSWORD_RESET_TIMEOUT": "seconds a password-reset link stays valid (it works once)",
    "BROKER_VISIBILITY_TIMEOUT_SECONDS": "when a task whose worker was killed is delivered again",
    "BEAT_LOCK_TIMEOUT_SECONDS": "beat's RedBeat lock, renewed every loop: how long a killed beat blocks the next",
    "ADMIN_LOGIN_FAILURE_LIMIT": "wrong admin passwords, per username or per IP address, before the admin login locks",
    "ADMIN_LOGIN_LOCKOUT_MINUTES": "how long a locked admin login stays locked",
    "LOG_LEVEL_CELERY_TASKS": "level of Celery's per-task received/succeeded lines (INFO shows them)",
    "LOG_LEVEL_ACCESS": "level of the web's one-JSON-line-per-request access log (WARNING hides it)",
    "DJANGO_ALLOWED_HOSTS": "host names the web process answers to",
    "DATABASE_URL": "PostgreSQL (TimescaleDB features are used when the extension is present)",
    "DATABASE_CONN_MAX_AGE": "seconds a database connection is reused",
    "REDIS_URL": "the hot store (candles, bars, snapshots, locks); also the cache and the channel layer by default",
    "CACHE_URL": "Redis of Django's cache (rate limits)",
    "CHANNELS_REDIS_URL": "Redis of the channel layer (live alerts to web processes)",
    "CELERY_BROKER_URL": "Celery broker; RedBeat keeps the beat schedule there too",
    "BINANCE_WS_BASE_URL": "exchange WebSocket endpoint (the simulator's in offline runs)",
    "BINANCE_REST_BASE_URL": "exchange REST endpoint (the simulator's in offline runs)",
    "SYMBOL_ALLOWLIST": "only these symbols (comma separated; empty: every USDT perpetual that trades)",
    "SYMBOL_DENYLIST": "never these symbols",
    "STREAMS_PER_CONNECTION": "kline streams per exchange WebSocket connection (the exchange allows 200)",
    "INDICATOR_BARS": "clock-aligned bars per timeframe the indicators are computed over (K)",
    "SHARD_COUNT": "shards the symbols are hashed into; one task per shard each minute",
    "TICK_BATCH_MS": "how often (ms) at most the collector sends a shard's symbols that closed the minute for "
    "evaluation (the first at once), so no symbol waits for the slowest; 0: every minute waits for its tick",
    "RETENTION_HOURS": "hours of candles, metrics, alerts and delivery records kept",
    "ALERT_DEFAULT_COOLDOWN_MINUTES": "cooldown of a rule that sets none",
    "ALERTS_NEAR_REAL_TIME_SECONDS": "seconds between two evaluations of the forming candle",
    "SUPABASE_JWT_SECRET": "HS256 secret of the Supabase project (REST and WebSocket sign-in)",
    "SUPABASE_JWKS_URL": "JWKS of the Supabase project, for ES256/RS256 tokens",
    "SUPABASE_JWT_AUDIENCE": "audience a Supabase token must carry",
    "CORS_ALLOWED_ORIGINS": "browser origins allowed to call the API (comma separated)",
    "ANON_RATE_LIMIT": "requests per client address for anonymous callers",
    "LOG_LEVEL": "root log level",
    "LOG_FORMAT": "`json` (one object per line, carrying the tick id) or `console` (readable in a terminal)",
    "HEALTH_COLLECTOR_STALE_SECONDS": "age of the newest collector heartbeat after which the collector is stale",
    "COMPAT_LOGIN_RATE_LIMIT": "compatibility login attempts per client address and per email",
    "COMPAT_WEBHOOK_TEST_RATE_LIMIT": "webhook test sends per user of the compatibility surface",
    "SYMBOL_TOP_N": "keep only the N symbols with the largest 24 h quote volume (0: no cap)",
    "NOTIFICATIONS_INTERVAL_SLACK": "minimum seconds between two messages to a Slack incoming webhook",
    "WS_MAX_MISSED_PONGS": "unanswered pings after which a /ws/alerts client is closed",
    "HEALTH_TICK_STALE_SECONDS": "age of the last tick after which the alert engine is stale",
    "HEALTH_INDICATORS_STALE_SECONDS": "age of the last indicators run after which the metrics calculator is stale",
    "SUPABASE_JWKS_CACHE_SECONDS": "seconds a fetched JWKS is reused",
    "COMPAT_TOKEN_TTL_SECONDS": "lifetime of a token the compatibility login issues",
    "CSRF_TRUSTED_ORIGINS": "origins trusted for the admin's forms behind a proxy",
    "TEST_REDIS_URL": "Redis of the test suite (the channel layer and cache too)",
    "TEST_REDIS_KEY_PREFIX": "key prefix of a test run, so parallel runs share one Redis",
    "PYTEST_XDIST_WORKER": "set by pytest-xdist in each test worker: its Redis key prefix gets the worker's name",
    "TEST_WORKERS": "pytest-xdist workers of `./screener test` (2, or 3 with `--fast`; 0: one process)",
    "TEST_CELERY_BROKER_URL": "Celery broker of the test suite",
    "TEST_DATABASE_NAME": "database the test suite creates, so parallel runs share one server",
    "NOTIFICATIONS_CONNECT_TIMEOUT": "seconds to connect to a destination",
    "NOTIFICATIONS_ALLOW_LOOPBACK": "allow destinations on loopback (self-hosting, tests); private ones never",
    "NOTIFICATIONS_READ_TIMEOUT": "seconds to wait for a destination's answer",
    "NOTIFICATIONS_MAX_ATTEMPTS": "the fewest tries of a failing delivery (see NOTIFICATIONS_RETRY_SECONDS)",
    "NOTIFICATIONS_RETRY_SECONDS": "seconds a failing delivery is retried (and NOTIFICATIONS_MAX_ATTEMPTS times)",
    "NOTIFICATIONS_MAX_BACKOFF": "the longest backoff (seconds) between two attempts of a failing delivery",
    "NOTIFICATIONS_TELEGRAM_API_URL": "Telegram Bot API base URL",
    "NOTIFICATIONS_INTERVAL_TELEGRAM_CHAT": "minimum seconds between two messages to a private Telegram chat",
    "NOTIFICATIONS_BACKOFF_BASE": (
        "backoff before attempt n+1 is base x 2^(n-1) seconds (up to NOTIFICATIONS_MAX_BACKOFF), or the server's"
        " Retry-After"
    ),
    "NOTIFICATIONS_INTERVAL_TELEGRAM_GROUP": "minimum seconds between two messages to a Telegram group",
    "NOTIFICATIONS_INTERVAL_DISCORD": "minimum seconds between two messages to a Discord webhook",
    "NOTIFICATIONS_INTERVAL_WEBHOOK": "minimum seconds between two messages to a generic JSON webhook",
    "NOTIFICATIONS_BATCH_TELEGRAM": "alerts per Telegram message at most",
    "NOTIFICATIONS_BATCH_WEBHOOK": "alerts per generic JSON message at most",
    "NOTIFICATIONS_BATCH_SLACK": "alerts per Slack message at most",
    # Outside the settings.
    "VENV": "virtualenv `./screener` creates and uses",
    "DJANGO_SETTINGS_MODULE": "settings module (`./screener test` uses `screener_project.settings.test`)",
    "SCREENER_OFFLINE": "`1`: `./screener run` replays the bundled data through the exchange simulator",
    "OFFLINE_DATABASE_URL": "database of an offline run (reset at every start)",
    "OFFLINE_REDIS_KEY_PREFIX": "Redis key prefix of an offline run (reset at every start)",
    "SCREENER_SANDBOX": "set by `./screener run --offline`; `replay_reset` refuses to run without it",
    "SIM_PORT": "port of the exchange simulator in an offline run",
    "WORKER_CONCURRENCY": "Celery worker processes of `./screener run`",
    "WEB_PORT": "daphne's port in `./screener run`",
    "FLOWER_PORT": "Flower's port",
    "FLOWER_BASIC_AUTH": "Flower's `user:password` (required in the image)",
    "FLOWER_URL_PREFIX": "path Flower is served under behind a proxy",
    "PORT": "daphne's port in the image",
    "PROMETHEUS_MULTIPROC_DIR": "directory of the per-process Prometheus files of a web or worker pod",
    "METRICS_PORT": "port the collector or a worker serves its Prometheus metrics on (0: off)",
    "CELERY_QUEUES": "queues a worker consumes when none is given as argument",
    "CELERY_CONCURRENCY": "worker processes of a worker container",
    "COLLECTOR_SLICE_COUNT": "collector replicas sharing the symbols",
    "COLLECTOR_SLICE_INDEX": "which slice this collector replica owns (required with several)",
    "COLLECTOR_MAX_HEARTBEAT_AGE": "collector probe: seconds a slice's heartbeat may be old",
    "BEAT_PROBE_ENTRY": "beat probe: the schedule entry that must have run recently",
    "BEAT_MAX_STALE_SECONDS": "beat probe: seconds that entry may be overdue",
    "PING_TIMEOUT": "worker probe: seconds to wait for the worker's answer",
    "APP_DIR": "probes: the application directory",
    "prometheus_multiproc_dir": "older spelling of PROMETHEUS_MULTIPROC_DIR",
}


@dataclass
class Read:
    """One environment variable as the settings read it."""

    name: str
    setting: str
    kind: str
    section: str
    defaults: dict[str, str] = field(default_factory=dict)  # settings module -> default as written
    meaning: str = ""


def _comment_above(lines: list[str], lineno: int) -> str:
    """The `#` lines right above line `lineno` (1-based) or the comment at its end, as one sentence."""
    own = lines[lineno - 1]
    if "  # " in own and not own.lstrip().startswith("#"):
        return own.split("  # ", 1)[1].strip()
    found: list[str] = []
    i = lineno - 2
    while i >= 0 and lines[i].lstrip().startswith("#") and not _SECTION.match(lines[i].strip()):
        found.insert(0, lines[i].strip().lstrip("#").strip())
        i -= 1
    return " ".join(found)


def _env_call(node: ast.AST) -> tuple[str, str, ast.expr | None, bool] | None:
    """(variable, kind, default expression, has default) when node is env(...) / env.<kind>(...)."""
    if not isinstance(node, ast.Call) or not node.args or not isinstance(node.args[0], ast.Constant):
        return None
    func = node.func
    if isinstance(func, ast.Name) and func.id in _ENV_NAMES:
        kind = "str"
    elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in _ENV_NAMES:
        kind = func.attr
    else:
        return None
    default = next((k.value for k in node.keywords if k.arg == "default"), None)
    return str(node.args[0].value), kind, default, default is not None


def _reads_in(value: ast.expr, path: str) -> list[tuple[str, ast.expr]]:
    """(setting path, expression) of every env read in an assigned value, through nested dicts and lists."""
    if isinstance(value, ast.Dict):
        return [
            read
            for k, v in zip(value.keys, value.values, strict=True)
            if isinstance(k, ast.Constant)
            for read in _reads_in(v, f"{path}[{k.value!r}]")
        ]
    if isinstance(value, ast.List):
        return [read for i, v in enumerate(value.elts) for read in _reads_in(v, f"{path}[{i}]")]
    # Anything else: the env calls anywhere in it (a read may be wrapped, as in env("X").strip("/")).
    return [(path, node) for node in ast.walk(value) if isinstance(node, ast.expr) and _env_call(node)]


def _render_default(default: ast.expr | None, has_default: bool, settings_vars: dict[str, str]) -> str:
    if not has_default:
        return "required"
    assert default is not None
    if isinstance(default, ast.Name) and default.id in settings_vars:
        return f"`{settings_vars[default.id]}`"
    if isinstance(default, ast.Constant):
        if default.value == "":
            return "empty"
        if isinstance(default.value, bool):
            return str(default.value).lower()
        return f"`{default.value}`"
    if isinstance(default, ast.List) and not default.elts:
        return "empty"
    if isinstance(default, ast.List):
        return "`" + ",".join(str(ast.literal_eval(e)) for e in default.elts) + "`"
    return f"`{ast.unparse(default)}`"


def settings_reads(root: Path = ROOT) -> list[Read]:
    reads: dict[str, Read] = {}
    settings_vars: dict[str, str] = {}  # setting name -> the variable it is read from, to render defaults
    for source in SETTINGS_SOURCES:
        path = root / source
        text = path.read_text()
        lines = text.splitlines()
        module = path.stem
        section = {"test": "Tests"}.get(module, "Django")
        headings = {i + 1: m.group(1) for i, line in enumerate(lines) if (m := _SECTION.match(line.strip()))}
        for statement in (n for n in ast.parse(text).body if isinstance(n, ast.Assign | ast.AnnAssign)):
            assigned = statement.targets[0] if isinstance(statement, ast.Assign) else statement.target
            if statement.value is None:
                continue
            for target, value in _reads_in(statement.value, ast.unparse(assigned)):
                call = _env_call(value)
                if call is None:
                    continue
                name, kind, default, has_default = call
                if module in ("base", "test"):
                    section_here = next(
                        (title for line, title in sorted(headings.items(), reverse=True) if line < value.lineno),
                        section,
                    )
                else:
                    section_here = section
                read = reads.setdefault(name, Read(name, target, kind, section_here))
                read.defaults[module] = _render_default(default, has_default, settings_vars)
                read.meaning = read.meaning or MEANINGS.get(name) or _comment_above(lines, value.lineno)
                if isinstance(assigned, ast.Name) and target == assigned.id:
                    settings_vars[assigned.id] = name
    return list(reads.values())


def process_reads(root: Path = ROOT) -> dict[str, list[str]]:
    """Variables read outside the settings: name -> the files that read it."""
    found: dict[str, list[str]] = {}

    def add(name: str, path: Path) -> None:
        where = str(path.relative_to(root))
        if where not in found.setdefault(name, []):
            found[name].append(where)

    python: list[Path] = []
    for pattern in SCRIPT_SOURCES:
        for path in sorted(root.glob(pattern)):
            text = path.read_text()
            if text.startswith("#!") and "python" in text.splitlines()[0]:
                python.append(path)
                continue
            for match in _SHELL_READ.finditer(text):
                if match.group(2):  # ${X:-default} or ${X:?message}: read from the environment
                    add(match.group(1), path)
    for pattern in PYTHON_SOURCES:
        python += [p for p in sorted(root.glob(pattern)) if str(p.relative_to(root)) not in SETTINGS_SOURCES]
    for path in python:
        if "settings" not in path.parts:
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "get"
                    and ast.unparse(node.func.value) == "os.environ"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                ):
                    add(str(node.args[0].value), path)
    return found


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(root: Path = ROOT) -> str:
    reads = settings_reads(root)
    settings_names = {r.name for r in reads}
    out = [
        "# Configuration",
        "",
        "<!-- Generated by `python -m screener_project.env_table --write` from the settings; edit those, not this. -->",
        "",
        "Every setting that varies between installations is an environment variable (or a line of a `.env` file in",
        "the project root; the environment wins). `screener_project/settings/base.py` reads most of them for every",
        "environment; `local.py` (the default of `manage.py` and `./screener run`), `production.py` (the image) and",
        "`test.py` (`./screener test`) change a few defaults.",
        "",
        "Types: `str` as given, `int` and `float` numbers, `bool` true/false/1/0/yes/no, `list` comma separated,",
        "`db` a database URL. A default naming another variable takes that variable's value.",
        "",
    ]
    sections: dict[str, list[Read]] = {}
    for read in reads:
        sections.setdefault(read.section, []).append(read)
    for section, rows in sections.items():
        out += [f"## {section}", "", "| variable | setting | type | default | meaning |", "|---|---|---|---|---|"]
        for read in rows:
            defaults = list(read.defaults.items())
            default = defaults[0][1]
            default += "".join(f" ({module}: {value})" for module, value in defaults[1:] if value != default)
            out.append(
                f"| `{read.name}` | `{_cell(read.setting)}` | {read.kind} | {_cell(default)} | {_cell(read.meaning)} |"
            )
        out.append("")
    others = {name: files for name, files in process_reads(root).items() if name not in settings_names}
    out += [
        "## Outside the settings",
        "",
        "Read by `./screener`, the image's start and probe scripts (`docker/`) or the code directly, before or",
        "beside Django's settings. The compose file's own variables are in [docker/README.md](../docker/README.md).",
        "",
        "| variable | read by | meaning |",
        "|---|---|---|",
    ]
    for name, files in sorted(others.items()):
        out.append(f"| `{name}` | {', '.join(f'`{f}`' for f in files)} | {_cell(MEANINGS.get(name, ''))} |")
    out += ["", f"{len(reads)} variables in the settings, {len(others)} outside them.", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help=f"rewrite {OUTPUT.relative_to(ROOT)}")
    group.add_argument("--check", action="store_true", help="exit 1 when the file is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        OUTPUT.parent.mkdir(exist_ok=True)
        OUTPUT.write_text(text)
    elif args.check:
        current = OUTPUT.read_text() if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT.relative_to(ROOT)} is out of date: python -m screener_project.env_table --write")
            return 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
