"""GET/POST /api/settings and Supabase JWT verification (HS256 secret; ES256/RS256 through a served JWKS)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from rest_framework.test import APIClient

from apps.alerts.models import UserSettings
from apps.alerts.services import rules_builtin_seed
from apps.api.auth import jwks_cache

from .conftest import make_token

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def rules():
    rules_builtin_seed()


def client_with(token: str | None) -> APIClient:
    api = APIClient()
    if token is not None:
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api


def test_settings_need_a_token():
    response = APIClient().get("/api/settings")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_new_user_gets_default_settings():
    body = client_with(make_token(sub="u-new")).get("/api/settings").json()
    assert body == {
        "success": True,
        "settings": {
            "user_id": "u-new",
            "selected_alerts": [],
            "webhook_url": "",
            "notification_enabled": True,
            "updated_at": None,
        },
    }
    assert not UserSettings.objects.filter(user_id="u-new").exists()


def test_post_saves_and_get_returns_them_per_user():
    api = client_with(make_token(sub="u-1"))
    saved = api.post(
        "/api/settings",
        {"selected_alerts": ["big_bull_60m", "flat_8h"], "webhook_url": "https://hooks.example.com/x"},
        format="json",
    ).json()
    assert saved["success"] is True
    assert saved["settings"]["selected_alerts"] == ["big_bull_60m", "flat_8h"]
    # A partial update keeps the other fields.
    api.post("/api/settings", {"notification_enabled": False}, format="json")
    body = api.get("/api/settings").json()["settings"]
    assert body["selected_alerts"] == ["big_bull_60m", "flat_8h"]
    assert body["webhook_url"] == "https://hooks.example.com/x" and body["notification_enabled"] is False
    assert client_with(make_token(sub="u-2")).get("/api/settings").json()["settings"]["selected_alerts"] == []
    assert UserSettings.objects.get(user_id="u-1").notification_enabled is False


def test_webhook_url_can_be_cleared_with_null():
    api = client_with(make_token(sub="u-3"))
    api.post("/api/settings", {"webhook_url": "https://hooks.example.com/x"}, format="json")
    assert api.post("/api/settings", {"webhook_url": None}, format="json").json()["settings"]["webhook_url"] == ""


@pytest.mark.parametrize(
    "body, field",
    [
        ({"selected_alerts": ["big_bull_60m", "moon_shot"]}, "selected_alerts"),
        ({"selected_alerts": "big_bull_60m"}, "selected_alerts"),
        ({"webhook_url": "not a url"}, "webhook_url"),
        ({"webhook_url": "ftp://example.com/x"}, "webhook_url"),
        ({"notification_enabled": "maybe"}, "notification_enabled"),
    ],
)
def test_bad_settings_are_400_naming_the_field(body, field):
    response = client_with(make_token()).post("/api/settings", body, format="json")
    assert response.status_code == 400 and field in response.json()


def test_body_that_is_not_an_object_is_400():
    api = client_with(make_token())
    assert api.post("/api/settings", [1, 2], format="json").status_code == 400
    bad_json = api.post("/api/settings", "{not json", content_type="application/json")
    assert bad_json.status_code == 400


@pytest.mark.parametrize(
    "token, fragment",
    [
        (make_token(expires_in=-120), "expired"),
        (make_token(key="a-different-secret-of-at-least-32-bytes"), "signature"),
        (make_token(audience="anon"), "audience"),
        (make_token(key="", algorithm="none"), "'none'"),
        (make_token(sub=""), "sub"),
        ("not.a.token", "malformed"),
    ],
)
def test_bad_token_is_401_with_a_clear_message(token, fragment):
    response = client_with(token).get("/api/settings")
    assert response.status_code == 401
    assert fragment in response.json()["detail"]


def test_wrong_authorization_scheme_is_401():
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {make_token()}")
    response = api.get("/api/settings")
    assert response.status_code == 401 and "Bearer" in response.json()["detail"]


# --- ES256 / RS256 through the project's JWKS -----------------------------------------------------------------


@pytest.fixture
def jwks_server(settings):
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys = []
    for kid, private, alg in (("ec-1", ec_key, "ES256"), ("rsa-1", rsa_key, "RS256")):
        jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(private.public_key()))
        keys.append(jwk | {"kid": kid, "alg": alg, "use": "sig"})
    fetches = []
    served = {"keys": keys}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            fetches.append(self.path)
            body = json.dumps({"keys": served["keys"]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # a free port
    # A short poll: shutdown() waits for the next one.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    settings.SUPABASE_JWKS_URL = f"http://127.0.0.1:{server.server_address[1]}/auth/v1/.well-known/jwks.json"
    jwks_cache.clear()
    yield {"ec": ec_key, "rsa": rsa_key, "fetches": fetches, "keys": served}
    jwks_cache.clear()
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("alg, kid, name", [("ES256", "ec-1", "ec"), ("RS256", "rsa-1", "rsa")])
def test_asymmetric_tokens_verify_against_jwks_fetched_once(jwks_server, alg, kid, name):
    token = make_token(sub="u-jwks", key=jwks_server[name], algorithm=alg, headers={"kid": kid})
    for _ in range(3):
        response = client_with(token).get("/api/settings")
        assert response.status_code == 200 and response.json()["settings"]["user_id"] == "u-jwks"
    assert len(jwks_server["fetches"]) == 1  # cached


def test_asymmetric_token_signed_by_a_foreign_key_is_401(jwks_server):
    foreign = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = make_token(key=foreign, algorithm="RS256", headers={"kid": "rsa-1"})
    response = client_with(token).get("/api/settings")
    assert response.status_code == 401 and "signature" in response.json()["detail"]


def test_unknown_kid_is_401(jwks_server):
    token = make_token(key=jwks_server["ec"], algorithm="ES256", headers={"kid": "rotated-away"})
    response = client_with(token).get("/api/settings")
    assert response.status_code == 401 and "key set" in response.json()["detail"]


def test_rotated_in_key_is_fetched_once_the_refetch_pause_has_passed(jwks_server, monkeypatch):
    old = make_token(key=jwks_server["ec"], algorithm="ES256", headers={"kid": "ec-1"})
    assert client_with(old).get("/api/settings").status_code == 200
    rotated = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(rotated.public_key()))
    jwks_server["keys"]["keys"] = [*jwks_server["keys"]["keys"], jwk | {"kid": "ec-2", "alg": "ES256"}]
    fresh = make_token(key=rotated, algorithm="ES256", headers={"kid": "ec-2"})
    # Right after a fetch, an unknown kid does not trigger another one (forged kids cannot hammer the server).
    assert client_with(fresh).get("/api/settings").status_code == 401
    assert len(jwks_server["fetches"]) == 1
    monkeypatch.setattr("apps.api.auth.JWKS_MIN_REFETCH_SECONDS", 0.0)
    assert client_with(fresh).get("/api/settings").status_code == 200
    assert len(jwks_server["fetches"]) == 2


def test_algorithm_not_matching_the_kid_is_401(jwks_server):
    # An RS256 header naming the EC key must not be tried with that key.
    token = make_token(key=jwks_server["rsa"], algorithm="RS256", headers={"kid": "ec-1"})
    response = client_with(token).get("/api/settings")
    assert response.status_code == 401 and "does not match" in response.json()["detail"]


def test_expired_and_wrong_audience_asymmetric_tokens_are_401(jwks_server):
    expired = make_token(key=jwks_server["ec"], algorithm="ES256", headers={"kid": "ec-1"}, expires_in=-120)
    assert "expired" in client_with(expired).get("/api/settings").json()["detail"]
    audience = make_token(key=jwks_server["ec"], algorithm="ES256", headers={"kid": "ec-1"}, audience="service")
    assert "audience" in client_with(audience).get("/api/settings").json()["detail"]


def test_unreachable_jwks_is_401_not_500(settings):
    settings.SUPABASE_JWKS_URL = "http://127.0.0.1:18498/jwks.json"  # nothing listens there
    jwks_cache.clear()
    key = ec.generate_private_key(ec.SECP256R1())
    response = client_with(make_token(key=key, algorithm="ES256", headers={"kid": "k"})).get("/api/settings")
    assert response.status_code == 401 and "unavailable" in response.json()["detail"]
    jwks_cache.clear()
