"""The secrets a screener keeps between runs: created once in its `.env` (mode 0600), never a public default.

`python -m screener_project.env_file [PATH]` (run by `./screener run`) adds DJANGO_SECRET_KEY, COMPAT_JWT_SECRET and
FLOWER_BASIC_AUTH (`admin:<random password>`) to the file when they are missing, each a fresh random value, and leaves
every other line as it is; `... get PATH NAME` prints one value. Values already exported in the environment win over
the file (settings read it with overwrite=False).
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

GENERATED = ("DJANGO_SECRET_KEY", "COMPAT_JWT_SECRET", "FLOWER_BASIC_AUTH")
MODE = 0o600


def _keys_in(text: str) -> set[str]:
    keys = set()
    for line in text.splitlines():
        name, sep, value = line.strip().removeprefix("export ").partition("=")
        if sep and value.strip():
            keys.add(name.strip())
    return keys


def _new_value(name: str) -> str:
    # Flower's basic auth is user:password; the others are keys.
    return f"admin:{secrets.token_urlsafe(18)}" if name == "FLOWER_BASIC_AUTH" else secrets.token_urlsafe(48)


def env_file_value(path: Path, name: str) -> str:
    """The value of `name` in the file ("" when absent), for the shell that starts the processes."""
    if not path.exists():
        return ""
    for line in path.read_text().splitlines():
        key, sep, value = line.strip().removeprefix("export ").partition("=")
        if sep and key.strip() == name:
            return value.strip().strip("'\"")
    return ""


def env_file_ensure(path: Path) -> list[str]:
    """Add the missing secrets to `path` (created 0600; an existing file is narrowed to 0600); returns their names."""
    old_umask = os.umask(0o077)
    try:
        text = path.read_text() if path.exists() else ""
        missing = [name for name in GENERATED if name not in _keys_in(text) and not os.environ.get(name)]
        if missing:
            lines = [f"{name}={_new_value(name)}" for name in missing]
            prefix = "" if not text or text.endswith("\n") else "\n"
            with path.open("a") as handle:
                handle.write(prefix + "\n".join(lines) + "\n")
    finally:
        os.umask(old_umask)
    if path.exists():
        path.chmod(MODE)
    return missing


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[1] == "get":
        print(env_file_value(Path(argv[2]), argv[3]))
        return 0
    path = Path(argv[1] if len(argv) > 1 else ".env")
    for name in env_file_ensure(path):
        print(f"[screener] generated {name} in {path} (mode 0600)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
