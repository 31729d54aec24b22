"""Client authentication: gateway keys in `x-api-key` or `Authorization: Bearer`, compared in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from messages_bridge.errors import AuthenticationError


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a client sent; like the real API, `x-api-key` wins when both are present."""
    if key := headers.get("x-api-key"):
        return key
    auth = headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def check_key(headers: Mapping[str, str], keys: tuple[bytes, ...]) -> None:
    """Raise `AuthenticationError` unless a configured key was presented (no-op when none are configured)."""
    if not keys:
        return
    key = presented_key(headers)
    if key is None:
        raise AuthenticationError("x-api-key header is required")
    candidate = key.encode()
    # Compare against every key (no early exit) so timing does not reveal which prefix matched.
    matched = False
    for expected in keys:
        matched |= hmac.compare_digest(candidate, expected)
    if not matched:
        raise AuthenticationError("invalid x-api-key")
