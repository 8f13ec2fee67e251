"""Safe by default: no public secret key, DEBUG only when asked for, production refusing to start without secrets,
and a compat token forged with the key once shipped as the default refused."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
from django.conf import settings
from rest_framework.test import APIClient

from screener_project.env_file import GENERATED, env_file_ensure, env_file_value
from tests.conftest import REPO_ROOT

# Starts processes (scripts, workers, daphne): not in `./screener test --fast`.
pytestmark = pytest.mark.e2e

OLD_PUBLIC_KEY = "insecure-development-key-change-me"
SHOW_SETTINGS = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'debug': s.DEBUG, 'key': s.SECRET_KEY, 'compat': s.COMPAT_JWT_SECRET}))"
)


def _settings_of(module: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Load a settings module in a fresh interpreter with no secrets but `env` (and no .env but the one given)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "COMPAT_"))}
    base.update({"DJANGO_SETTINGS_MODULE": module, "DJANGO_ENV_FILE": str(tmp_path / "absent.env"), **env})
    return subprocess.run(
        [sys.executable, "-c", SHOW_SETTINGS], env=base, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )


def test_local_settings_without_secrets_run_without_debug_and_with_random_distinct_keys(tmp_path):
    runs = [_settings_of("screener_project.settings.local", tmp_path) for _ in range(2)]
    assert all(run.returncode == 0 for run in runs), runs[0].stderr
    first, second = (json.loads(run.stdout) for run in runs)
    assert first["debug"] is False
    assert OLD_PUBLIC_KEY not in (first["key"], first["compat"])
    assert first["key"] != first["compat"] and len(first["key"]) >= 50
    assert first["key"] != second["key"]  # random per process, never a shared constant


def test_local_settings_debug_only_when_asked_for(tmp_path):
    run = _settings_of("screener_project.settings.local", tmp_path, DJANGO_DEBUG="1")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["debug"] is True


def test_the_old_public_key_is_never_used_even_when_configured(tmp_path):
    run = _settings_of("screener_project.settings.local", tmp_path, DJANGO_SECRET_KEY=OLD_PUBLIC_KEY)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["key"] != OLD_PUBLIC_KEY


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "DJANGO_SECRET_KEY"),
        ({"DJANGO_SECRET_KEY": OLD_PUBLIC_KEY}, "DJANGO_SECRET_KEY"),
        ({"DJANGO_SECRET_KEY": "compose-only-insecure-secret-key-change-me"}, "DJANGO_SECRET_KEY"),
        ({"DJANGO_SECRET_KEY": "k" * 50, "COMPAT_JWT_SECRET": "k" * 50}, "COMPAT_JWT_SECRET"),
    ],
)
def test_production_settings_refuse_to_start_without_real_secrets(tmp_path, env, named):
    run = _settings_of("screener_project.settings.production", tmp_path, **env)
    assert run.returncode != 0
    assert "ImproperlyConfigured" in run.stderr and named in run.stderr


def test_production_settings_start_with_a_secret_and_derive_a_separate_compat_secret(tmp_path):
    run = _settings_of("screener_project.settings.production", tmp_path, DJANGO_SECRET_KEY="s" * 50)
    assert run.returncode == 0, run.stderr
    values = json.loads(run.stdout)
    assert values["debug"] is False and values["key"] == "s" * 50
    assert values["compat"] not in ("s" * 50, "")


def test_env_file_is_created_private_with_two_distinct_secrets_and_kept(tmp_path, monkeypatch):
    monkeypatch.delenv("DJANGO_SECRET_KEY", raising=False)
    monkeypatch.delenv("COMPAT_JWT_SECRET", raising=False)
    monkeypatch.delenv("FLOWER_BASIC_AUTH", raising=False)
    path = tmp_path / ".env"
    path.write_text("LOG_LEVEL=INFO")  # an existing file without secrets, no final newline
    path.chmod(0o644)
    assert env_file_ensure(path) == ["DJANGO_SECRET_KEY", "COMPAT_JWT_SECRET", "FLOWER_BASIC_AUTH"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_text()
    values = dict(line.split("=", 1) for line in first.splitlines())
    assert values["LOG_LEVEL"] == "INFO"
    assert values["DJANGO_SECRET_KEY"] != values["COMPAT_JWT_SECRET"] and len(values["DJANGO_SECRET_KEY"]) >= 50
    assert values["FLOWER_BASIC_AUTH"].startswith("admin:") and len(values["FLOWER_BASIC_AUTH"]) > 20
    assert env_file_value(path, "FLOWER_BASIC_AUTH") == values["FLOWER_BASIC_AUTH"]
    assert env_file_ensure(path) == []  # the second run keeps them
    assert path.read_text() == first


def test_env_file_used_by_settings(tmp_path, monkeypatch):
    # The secrets a developer's own .env put into this process's environment would win over the file's.
    for name in GENERATED:
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / ".env"
    env_file_ensure(path)
    values = dict(line.split("=", 1) for line in path.read_text().splitlines())
    run = _settings_of("screener_project.settings.local", tmp_path, DJANGO_ENV_FILE=str(path))
    assert run.returncode == 0, run.stderr
    loaded = json.loads(run.stdout)
    assert (loaded["key"], loaded["compat"]) == (values["DJANGO_SECRET_KEY"], values["COMPAT_JWT_SECRET"])


@pytest.mark.django_db
def test_compat_token_forged_with_the_old_public_key_is_refused():
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-long-enough-123")
    now = int(time.time())
    claims = {"sub": str(admin.pk), "iss": "screener-compat", "aud": "pulsaryx", "iat": now, "exp": now + 600}
    claims["pwh"] = admin.get_session_auth_hash()
    forged = jwt.encode(claims, OLD_PUBLIC_KEY, algorithm="HS256")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {forged}")
    response = client.get(f"/{settings.COMPAT_PREFIX}/api/me")
    assert response.status_code == 401
    assert settings.COMPAT_JWT_SECRET != settings.SECRET_KEY
    genuine = jwt.encode(claims, settings.COMPAT_JWT_SECRET, algorithm="HS256")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {genuine}")
    assert client.get(f"/{settings.COMPAT_PREFIX}/api/me").status_code == 200
