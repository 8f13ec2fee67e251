"""Tokens of the compatibility surface (its README): issued to Django users, refused when forged, expired or foreign."""

from __future__ import annotations

import time

import jwt
import pytest
from django.contrib.auth import get_user_model

from apps.api.compat.tokens import AUDIENCE, ISSUER, CompatTokenError, compat_token_issue, compat_token_user
from tests.api.conftest import make_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def user():
    return get_user_model().objects.create_user(
        username="trader@example.com", email="trader@example.com", password="pw"
    )


def test_an_issued_token_names_its_user(user):
    assert compat_token_user(compat_token_issue(user)) == user


def test_an_expired_token_is_refused(user, settings):
    settings.COMPAT_TOKEN_TTL_SECONDS = -5
    with pytest.raises(CompatTokenError, match="expired"):
        compat_token_user(compat_token_issue(user))


def test_a_token_signed_with_another_secret_is_refused(user, settings):
    token = jwt.encode(
        {"sub": str(user.pk), "iss": ISSUER, "aud": AUDIENCE, "iat": int(time.time()), "exp": int(time.time()) + 60},
        "another-secret-that-is-long-enough-for-hs256",
        algorithm="HS256",
    )
    with pytest.raises(CompatTokenError, match="Signature"):
        compat_token_user(token)


def test_a_supabase_token_is_not_a_compat_token(user):
    with pytest.raises(CompatTokenError):
        compat_token_user(make_token(sub=str(user.pk)))


def test_a_deactivated_user_is_refused(user):
    token = compat_token_issue(user)
    user.is_active = False
    user.save()
    with pytest.raises(CompatTokenError, match="no active user"):
        compat_token_user(token)


def test_a_password_change_ends_the_tokens_issued_before_it(user):
    before = compat_token_issue(user)
    user.set_password("a-new-password")
    user.save()
    with pytest.raises(CompatTokenError, match="password change"):
        compat_token_user(before)
    assert compat_token_user(compat_token_issue(user)) == user


def test_a_token_without_the_password_claim_is_refused(user, settings):
    now = int(time.time())
    claims = {"sub": str(user.pk), "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 60}
    for extra in ({}, {"pwh": 12345}, {"pwh": "forged"}):
        token = jwt.encode(claims | extra, settings.COMPAT_JWT_SECRET, algorithm="HS256")
        with pytest.raises(CompatTokenError):
            compat_token_user(token)
