"""The key a client presented (`x-api-key` or `Authorization: Bearer`); team/keyring.py checks it."""

from __future__ import annotations

from collections.abc import Mapping


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a client sent; like the real API, `x-api-key` wins when both are present."""
    if key := headers.get("x-api-key"):
        return key
    auth = headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
