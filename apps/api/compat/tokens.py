"""Bearer tokens of the compatibility surface: HS256 JWTs this server issues to its own (Django) users at login.

They are separate from the Supabase tokens of docs/api.md: their own secret (COMPAT_JWT_SECRET), issuer and audience,
so a token of one surface is never accepted by the other. Each names the user's current password through Django's
session hash (claim `pwh`, an HMAC of the password hash, never the hash itself): a password change or reset ends every
token issued before it, as it ends the user's admin sessions.
"""

from __future__ import annotations

import hmac
import time

import jwt
from django.conf import settings
from django.contrib.auth import get_user_model
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework import authentication, exceptions

ISSUER = "screener-compat"
AUDIENCE = "pulsaryx"
ALGORITHM = "HS256"


class CompatTokenError(Exception):
    """A token that does not authenticate; the message is safe to show to the client."""


def compat_token_issue(user) -> str:
    """A signed token naming the user, valid for COMPAT_TOKEN_TTL_SECONDS."""
    now = int(time.time())
    payload = {
        "sub": str(user.pk),
        "email": user.email,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + settings.COMPAT_TOKEN_TTL_SECONDS,
        "pwh": user.get_session_auth_hash(),
    }
    return jwt.encode(payload, settings.COMPAT_JWT_SECRET, algorithm=ALGORITHM)


def compat_token_user(token: str):
    """The active user a token names; raises CompatTokenError saying why not."""
    try:
        claims = jwt.decode(
            token,
            settings.COMPAT_JWT_SECRET,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["sub", "exp", "iat", "pwh"]},
        )
    except jwt.ExpiredSignatureError:
        raise CompatTokenError("Token has expired.") from None
    except jwt.InvalidTokenError as exc:
        raise CompatTokenError(f"Invalid token: {exc}") from None
    subject = claims["sub"]
    # The user's primary key as issued (decimal digits); anything else names no user and must not reach a query.
    if not isinstance(subject, str) or not subject.isascii() or not subject.isdigit() or len(subject) > 18:
        raise CompatTokenError("Token names no user (sub must be a user id).")
    user = get_user_model().objects.filter(pk=int(subject), is_active=True).first()
    if user is None:
        raise CompatTokenError("Token names no active user.")
    password_hash = claims["pwh"]
    if not isinstance(password_hash, str) or not hmac.compare_digest(
        password_hash.encode(), user.get_session_auth_hash().encode()
    ):
        raise CompatTokenError("Token was issued before a password change; sign in again.")
    return user


class CompatTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>` from compat_token_issue; no header means anonymous (None)."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'.")
        try:
            token = header[1].decode()
            return compat_token_user(token), token
        except (UnicodeDecodeError, CompatTokenError) as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from None

    def authenticate_header(self, request) -> str:
        return self.keyword


class CompatTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apps.api.compat.tokens.CompatTokenAuthentication"
    name = "compatBearer"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(
            header_name="Authorization", token_prefix="Bearer", bearer_format="JWT"
        )
