"""Bad input on both alert WebSockets: each answered with an error frame or a 4401 close, never a 1011, and the
socket (or the next client) still served afterwards."""

from __future__ import annotations

import time

import jwt
import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model

from apps.api.compat.routing import websocket_urlpatterns as compat_patterns
from apps.api.compat.tokens import compat_token_issue
from apps.api.consumers import CLOSE_AUTH_FAILED
from apps.api.routing import websocket_urlpatterns
from tests.api.conftest import make_token

application = URLRouter([*websocket_urlpatterns, *compat_patterns])
pytestmark = pytest.mark.django_db(transaction=True)
DEEP = "[" * 1000 + "]" * 1000


async def _open(path: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def _still_serves(communicator: WebsocketCommunicator) -> None:
    await communicator.send_json_to({"type": "ping"})
    assert (await communicator.receive_json_from(timeout=3)) == {"type": "pong"}


@pytest.mark.parametrize(
    ("frame", "fragment"),
    [
        (DEEP, "nested more than"),
        ('{"type": ' + "[" * 50 + "1" + "]" * 50 + "}", "nested more than"),
        ('{"type": "subscribe", "symbols": ["\\ud800"]}', "lone surrogates"),
        ('{"type": "auth", "token": "a\\u0000b"}', "NUL"),
        ("x" * (300 * 1024), "longer than"),
        ('{"type": "subscribe", "symbols": [' + "1" * 400 + "]}", "'symbols'"),
        ("[]", "JSON object"),
        ('{"type": "subscribe", "alert_types": ["Big-Bull"]}', "'alert_types'"),
        ("not json", "not valid JSON"),
    ],
)
async def test_bad_frames_get_an_error_frame_and_the_socket_keeps_serving(frame, fragment):
    communicator = await _open("/ws/alerts")
    await communicator.send_to(text_data=frame)
    reply = await communicator.receive_json_from(timeout=3)
    assert reply["type"] == "error" and fragment in reply["message"]
    await _still_serves(communicator)
    await communicator.disconnect()


@pytest.mark.parametrize(
    ("sub", "fragment"),
    [("u" * 100, "sub"), ("user\x00id", "sub"), ("\ud800", "sub"), ("", "sub")],
)
async def test_auth_with_an_odd_subject_is_refused_with_4401(sub, fragment):
    communicator = await _open("/ws/alerts")
    await communicator.send_json_to({"type": "auth", "token": make_token(sub=sub)})
    reply = await communicator.receive_json_from(timeout=3)
    assert reply["type"] == "error" and reply["error"] == "auth_failed" and fragment in reply["message"]
    assert (await communicator.receive_output(timeout=3))["code"] == CLOSE_AUTH_FAILED
    other = await _open("/ws/alerts")
    await _still_serves(other)
    await other.disconnect()


async def test_odd_subject_in_the_query_string_is_refused_with_4401():
    communicator = WebsocketCommunicator(application, f"/ws/alerts?token={make_token(sub='x' * 100)}")
    connected, _ = await communicator.connect()
    assert connected
    reply = await communicator.receive_json_from(timeout=3)
    assert reply["error"] == "auth_failed"
    assert (await communicator.receive_output(timeout=3))["code"] == CLOSE_AUTH_FAILED


def _compat_token(sub: object, key: str | None = None) -> str:
    now = int(time.time())
    # A `pwh` claim, so that the subject's checks are what refuses the token.
    claims = {"sub": sub, "iss": "screener-compat", "aud": "pulsaryx", "iat": now, "exp": now + 600, "pwh": "x"}
    return jwt.encode(claims, key or settings.COMPAT_JWT_SECRET, algorithm="HS256")


@pytest.mark.parametrize(
    "token",
    [
        _compat_token("abc"),
        _compat_token("1" * 40),
        _compat_token("-1"),
        _compat_token("١٢"),  # Arabic-Indic digits: isdigit() but no user id
        _compat_token("1", key="insecure-development-key-change-me"),
        "not-a-token",
    ],
)
async def test_compat_handshake_with_a_bad_token_closes_4401(token):
    communicator = WebsocketCommunicator(application, f"/{settings.COMPAT_PREFIX}/ws/alerts?token={token}")
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_output(timeout=3))["code"] == CLOSE_AUTH_FAILED
    # The next client with a good token is served.
    from asgiref.sync import sync_to_async

    user = await sync_to_async(get_user_model().objects.create_user)(
        f"ws{time.monotonic_ns()}@example.com", password="pw-long-enough-1"
    )
    good = WebsocketCommunicator(
        application, f"/{settings.COMPAT_PREFIX}/ws/alerts?token={await sync_to_async(compat_token_issue)(user)}"
    )
    connected, _ = await good.connect()
    assert connected
    assert await good.receive_nothing(timeout=0.2)
    await good.send_to(text_data=DEEP)  # frames are ignored on this socket, deep or not
    assert await good.receive_nothing(timeout=0.2)
    await good.disconnect()
