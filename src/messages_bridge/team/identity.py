"""Who sent a request: the one place the rest of the gateway reads it (`identity_of(request)`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

from starlette.requests import HTTPConnection

from messages_bridge.team.keys import Limits

Kind = Literal["key", "jwt", "shared", "anonymous"]
_STATE = "identity"


@dataclass(frozen=True, slots=True)
class Identity:
    """`name`: the key name (named key or JWT claim), None for shared keys and open gateways.

    `tenant`: a stable id for per-tenant data — the name, `shared:<hash>` for a `BRIDGE_API_KEYS` key (a hash,
    never the key), or `anonymous`. `label`: the bounded metrics label.
    """

    kind: Kind
    tenant: str
    name: str | None = None
    limits: Limits = field(default_factory=Limits)
    label: str = "anonymous"
    policy: str | None = None


ANONYMOUS = Identity(kind="anonymous", tenant="anonymous")


def shared_identity(secret: str) -> Identity:
    digest = hashlib.sha256(secret.encode()).hexdigest()[:16]
    return Identity(kind="shared", tenant=f"shared:{digest}", label="shared")


def identity_of(conn: HTTPConnection) -> Identity | None:
    """The authenticated identity of this request (None before authentication or on routes without it)."""
    state: dict[str, object] = conn.scope.get("state") or {}
    value = state.get(_STATE)
    return value if isinstance(value, Identity) else None


def set_identity(conn: HTTPConnection, identity: Identity) -> None:
    conn.scope.setdefault("state", {})[_STATE] = identity
