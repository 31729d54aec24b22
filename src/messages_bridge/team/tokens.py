"""Signed short-lived tokens (JWT) for Claude Code's `apiKeyHelper`: issuer, audience, a static key or a JWKS.

The JWKS is cached by PyJWT's `PyJWKClient`, which fetches it again when a token names an unknown `kid`
(the identity provider rotated its keys). Verified tokens are cached until they expire.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from messages_bridge.errors import AuthenticationError, PermissionDeniedError
from messages_bridge.team.identity import Identity
from messages_bridge.team.keys import Limits
from messages_bridge.team.settings import TeamSettings

if TYPE_CHECKING:
    import jwt

_JWT_SHAPE = re.compile(r"^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:+-]{0,127}$")
CACHE_SIZE = 4096
LEEWAY_SECONDS = 5
JWKS_LIFESPAN = 300
JWKS_REFETCH_COOLDOWN = (
    5.0  # an unknown kid fetches the JWKS again at most this often (forged kids cannot flood the IdP)
)


def looks_like_jwt(value: str) -> bool:
    return bool(_JWT_SHAPE.match(value))


def _static_key(value: str) -> str:
    return value if value.lstrip().startswith("-----BEGIN") else Path(value).read_text()


class JwtVerifier:
    def __init__(self, settings: TeamSettings, policies: Mapping[str, Limits]) -> None:
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._algorithms = [a.strip() for a in settings.jwt_algorithms.split(",") if a.strip()]
        self._name_claim = settings.jwt_name_claim
        self._policy_claim = settings.jwt_policy_claim
        self._default_policy = settings.jwt_default_policy
        self._policies = dict(policies)
        import jwt  # with `cryptography`, ~10 MiB resident: loaded only when tokens are configured

        self._static = _static_key(settings.jwt_public_key) if settings.jwt_public_key else None
        self._jwks: jwt.PyJWKClient | None = (
            jwt.PyJWKClient(
                settings.jwt_jwks_url,
                cache_keys=True,
                lifespan=JWKS_LIFESPAN,
                timeout=5,
                cooldown_duration=JWKS_REFETCH_COOLDOWN,
            )
            if settings.jwt_jwks_url
            else None
        )
        self._cache: dict[str, tuple[Identity, float]] = {}

    async def verify(self, token: str) -> Identity:
        cached = self._cache.get(token)
        if cached is not None and cached[1] > time.time():
            return cached[0]
        claims = await asyncio.to_thread(self._decode, token)
        identity = self._identity(claims)
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        self._cache[token] = (identity, float(claims["exp"]))
        return identity

    def _decode(self, token: str) -> dict[str, Any]:
        import jwt

        try:
            key: Any = self._static
            if self._jwks is not None:
                key = self._jwks.get_signing_key_from_jwt(token).key
            return jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp"], "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationError("the token has expired") from exc
        except jwt.PyJWKClientError as exc:
            raise AuthenticationError("the token's signing key is unknown") from exc
        except jwt.InvalidTokenError as exc:
            raise AuthenticationError(f"invalid token: {type(exc).__name__}") from exc

    def _identity(self, claims: Mapping[str, Any]) -> Identity:
        name = claims.get(self._name_claim)
        if not isinstance(name, str) or not _NAME.match(name):
            raise AuthenticationError(f"the token has no usable {self._name_claim!r} claim")
        policy = claims.get(self._policy_claim) if self._policy_claim else None
        policy = policy if isinstance(policy, str) else self._default_policy
        limits = Limits()
        if policy is not None:
            if policy not in self._policies:
                raise PermissionDeniedError(f"the token's policy {policy!r} is not configured on this gateway")
            limits = self._policies[policy]
        label = f"jwt:{policy}" if policy else "jwt"
        return Identity(kind="jwt", tenant=name, name=name, limits=limits, label=label, policy=policy)
