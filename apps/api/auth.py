"""Supabase JWT verification: HS256 with the project secret, ES256/RS256 against the project's JWKS.

The algorithm in a token's header only chooses which configured key to try; the key's own type decides what it
can verify, so an RS256 public key can never be used as an HS256 secret (the classic confusion attack).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import jwt
from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework import authentication, exceptions

logger = logging.getLogger(__name__)

ASYMMETRIC_ALGORITHMS = ("ES256", "RS256")
SUPPORTED_ALGORITHMS = ("HS256", *ASYMMETRIC_ALGORITHMS)
SUBJECT_MAX_LENGTH = 64
# An unknown kid triggers a JWKS refetch at most this often, so forged kids cannot hammer the auth server.
JWKS_MIN_REFETCH_SECONDS = 30.0


class TokenError(Exception):
    """A token that does not authenticate; the message is safe to show to the client."""


@dataclass(frozen=True)
class SupabaseUser:
    """The caller named by a verified token; `id` is the Supabase user id (the `sub` claim)."""

    id: str
    claims: dict = field(repr=False)
    is_authenticated: bool = True
    is_anonymous: bool = False

    @property
    def pk(self) -> str:
        return self.id


class _JwksKeys:
    """The project's signing keys by kid: PyJWT's PyJWKClient, the key set kept for SUPABASE_JWKS_CACHE_SECONDS."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._client: jwt.PyJWKClient | None = None
        self._made_for: tuple = ()

    def clear(self) -> None:
        with self._lock:
            self._client, self._made_for = None, ()

    def _client_for(self, url: str) -> jwt.PyJWKClient:
        wanted = (url, settings.SUPABASE_JWKS_CACHE_SECONDS)
        with self._lock:
            if self._client is None or self._made_for != wanted:
                self._client = jwt.PyJWKClient(url, lifespan=settings.SUPABASE_JWKS_CACHE_SECONDS, timeout=5.0)
                self._made_for = wanted
            self._client.cooldown_duration = JWKS_MIN_REFETCH_SECONDS
            return self._client

    def key(self, kid: str | None, *, url: str) -> jwt.PyJWK:
        try:
            client = self._client_for(url)
            if kid is None:
                # A token without a kid is accepted only where the set has a single key.
                keys = client.get_signing_keys()
                if len(keys) == 1:
                    return keys[0]
                raise TokenError("Token signing key is not in the project's key set")
            return client.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as exc:
            logger.warning("JWKS fetch from %s failed: %s", url, exc)
            raise TokenError("Signing keys are unavailable; try again later") from exc
        except (jwt.PyJWKClientError, jwt.PyJWKSetError) as exc:
            raise TokenError("Token signing key is not in the project's key set") from exc
        except ValueError as exc:  # a body that is not JSON
            logger.warning("JWKS from %s is unreadable: %s", url, exc)
            raise TokenError("Signing keys are unavailable; try again later") from exc


jwks_cache = _JwksKeys()


def token_verify(*, token: str) -> dict:
    """The claims of a valid Supabase access token; raises TokenError with a client-facing reason otherwise."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError as exc:
        raise TokenError("Token is malformed") from exc
    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or algorithm.lower() == "none":
        raise TokenError("Unsigned tokens (alg 'none') are not accepted")
    if algorithm not in SUPPORTED_ALGORITHMS:
        raise TokenError(f"Token algorithm {algorithm!r} is not accepted")
    if algorithm == "HS256":
        if not settings.SUPABASE_JWT_SECRET:
            raise TokenError("HS256 tokens are not accepted: no project secret is configured")
        key: object = settings.SUPABASE_JWT_SECRET
    else:
        if not settings.SUPABASE_JWKS_URL:
            raise TokenError(f"{algorithm} tokens are not accepted: no JWKS URL is configured")
        jwk = jwks_cache.key(header.get("kid"), url=settings.SUPABASE_JWKS_URL)
        if jwk.algorithm_name != algorithm:
            raise TokenError("Token algorithm does not match its signing key")
        key = jwk.key
    try:
        claims = jwt.decode(
            token,
            key=key,
            algorithms=[algorithm],
            audience=settings.SUPABASE_JWT_AUDIENCE,
            options={"require": ["exp", "sub", "aud"]},
            leeway=10,
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("Token has expired") from exc
    except jwt.InvalidAudienceError as exc:
        raise TokenError(f"Token audience is not {settings.SUPABASE_JWT_AUDIENCE!r}") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise TokenError(f"Token lacks the required claim {exc.claim!r}") from exc
    except jwt.InvalidSignatureError as exc:
        raise TokenError("Token signature is invalid") from exc
    except (jwt.InvalidKeyError, jwt.InvalidAlgorithmError) as exc:
        raise TokenError("Token algorithm does not match its signing key") from exc
    except jwt.InvalidTokenError as exc:
        raise TokenError(f"Token is invalid: {exc}") from exc
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise TokenError("Token has no user id (sub)")
    # Stored as UserSettings.user_id (at most 64 characters); control characters (NUL) no database column accepts.
    if len(subject) > SUBJECT_MAX_LENGTH or not subject.isprintable():
        raise TokenError(f"Token user id (sub) must be 1-{SUBJECT_MAX_LENGTH} printable characters")
    return claims


class SupabaseJWTAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <Supabase access token>`; no header means anonymous, a bad token means 401."""

    keyword = "Bearer"

    def authenticate(self, request) -> tuple[SupabaseUser, dict] | None:
        header = authentication.get_authorization_header(request).split()
        if not header:
            return None
        if header[0].lower() != self.keyword.lower().encode():
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'")
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'")
        try:
            token = header[1].decode("ascii")
            claims = token_verify(token=token)
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("Token is malformed") from exc
        except TokenError as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from exc
        return SupabaseUser(id=claims["sub"], claims=claims), claims

    def authenticate_header(self, request) -> str:
        # Present, so DRF answers 401 (not 403) and tells the client which scheme to use.
        return f'{self.keyword} realm="api"'


class SupabaseJWTScheme(OpenApiAuthenticationExtension):
    target_class = SupabaseJWTAuthentication
    name = "SupabaseJWT"

    def get_security_definition(self, auto_schema) -> dict:
        return build_bearer_security_scheme_object(
            header_name="Authorization", token_prefix="Bearer", bearer_format="JWT"
        )
