"""Bad input on the REST API of /api/: each answered with the exact 4xx naming the problem, and the API still serving
other clients afterwards."""

from __future__ import annotations

import logging

import pytest
from rest_framework.test import APIClient

from apps.alerts.models import UserSettings
from apps.alerts.services import rules_builtin_seed
from tests.api.conftest import make_token

pytestmark = pytest.mark.django_db
DEEP = "[" * 1000 + "]" * 1000


@pytest.fixture(autouse=True)
def rules():
    rules_builtin_seed()


def signed_in(sub: str = "sec-user") -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(sub=sub)}")
    return api


def still_serves() -> None:
    assert APIClient().get("/api/rules").status_code == 200
    assert signed_in("bystander").get("/api/settings").status_code == 200


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (DEEP, "nested"),
        ('{"selected_alerts": ' + "[" * 40 + "]" * 40 + "}", "nested"),
        ('{"webhook_url": "\\ud800"}', "surrogate"),
        ('{"webhook_url": "https://a.com/\\u0000"}', "NUL"),
        ('{"selected_alerts": ["a"', "JSON parse error"),
        (b"\xff\xfe{}", "JSON parse error"),
    ],
)
def test_post_settings_refuses_unacceptable_json_with_400(body, fragment):
    response = signed_in().post("/api/settings", data=body, content_type="application/json")
    assert response.status_code == 400
    assert fragment in response.json()["detail"]
    assert not UserSettings.objects.filter(user_id="sec-user").exists()
    still_serves()


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data; boundary=x", "--x--\r\n"),
        ("application/x-www-form-urlencoded", "notification_enabled=false"),
        ("text/plain", '{"notification_enabled": false}'),
    ],
)
def test_post_settings_accepts_json_only(content_type, body):
    response = signed_in().post("/api/settings", data=body, content_type=content_type)
    assert response.status_code == 415
    assert "Unsupported media type" in response.json()["detail"]
    still_serves()


@pytest.mark.parametrize(
    ("sub", "fragment"), [("u" * 100, "sub"), ("user\x00id", "sub"), ("\ud800", "sub"), ("tab\tid", "sub")]
)
@pytest.mark.parametrize("method", ["get", "post"])
def test_supabase_token_with_an_odd_subject_is_refused_with_401(sub, fragment, method):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(sub=sub)}")
    response = getattr(api, method)("/api/settings", {"notification_enabled": True}, format="json")
    assert response.status_code == 401
    assert fragment in response.json()["detail"]
    still_serves()


def test_a_64_character_subject_still_works():
    api = signed_in("u" * 64)
    assert api.post("/api/settings", {"notification_enabled": False}, format="json").status_code == 200


def test_body_over_the_upload_limit_is_413_with_one_log_line(settings, caplog):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    body = '{"webhook_url": "' + "a" * 20_000 + '"}'
    with caplog.at_level(logging.INFO):
        response = signed_in().post("/api/settings", data=body, content_type="application/json")
    assert response.status_code == 413
    assert "10000 bytes" in response.json()["detail"]
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(problems) == 1 and problems[0].exc_info is None and "Too Large" in problems[0].getMessage()
    still_serves()


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("type=no_such_rule", "type"),
        ("type=UPPER", "type"),
        ("type=big-bull", "type"),
        ("symbol=%00", "symbol"),
        ("limit=" + "9" * 400, "limit"),
        ("offset=-1", "offset"),
        ("since=" + "9" * 400, "since"),
    ],
)
def test_alert_query_parameters_are_400_naming_the_field(query, field):
    response = APIClient().get(f"/api/alerts?{query}")
    assert response.status_code == 400
    assert field in response.json()
    still_serves()


@pytest.mark.parametrize("symbol", ["a" * 40, "BTC%00", "%F0%9F%92%A9"])
def test_bad_path_symbols_are_400(symbol):
    response = APIClient().get(f"/api/metrics/{symbol}")
    assert response.status_code in (400, 404)
    still_serves()


def test_schema_is_built_once_per_format_and_rate_limited(settings, monkeypatch):
    from drf_spectacular.generators import SchemaGenerator

    from apps.api.schema_view import schema_cache_clear

    schema_cache_clear()
    built = []
    original = SchemaGenerator.get_schema

    def counting(self, *args, **kwargs):
        built.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SchemaGenerator, "get_schema", counting)
    settings.ANON_RATE_LIMIT = "4/minute"
    api = APIClient(REMOTE_ADDR="10.7.7.7")
    yaml_bodies = [api.get("/api/schema/") for _ in range(2)]
    as_json = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert [r.status_code for r in (*yaml_bodies, as_json)] == [200, 200, 200]
    assert yaml_bodies[0].content == yaml_bodies[1].content and b"openapi:" in yaml_bodies[0].content
    assert as_json.json()["openapi"].startswith("3.")
    assert len(built) == 2  # one YAML, one JSON
    assert api.get("/api/docs/").status_code == 200
    assert api.get("/api/schema/").status_code == 429
    assert APIClient(REMOTE_ADDR="10.7.7.8").get("/api/schema/").status_code == 200
    schema_cache_clear()
