"""Who a request belongs to, for what the gateway holds per client (message threads).

The ONE place that derives a tenant: a digest of the caller's name for a named key or a JWT (the team gateway's
identity), else a digest of the presented client key (keys never stored or logged as such), or one shared tenant
when client authentication is off. Called only after authentication accepted the request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from messages_bridge.app.auth import presented_key
from messages_bridge.team.identity import Identity

OPEN_TENANT = "open"
_DOMAIN = b"messages-bridge tenant v1\x00"


def tenant_of(headers: Mapping[str, str], keys: tuple[bytes, ...], identity: Identity | None = None) -> str:
    if identity is not None and identity.name is not None and identity.kind in ("key", "jwt"):
        return "n" + hashlib.sha256(_DOMAIN + b"name\x00" + identity.name.encode()).hexdigest()[:32]
    if not keys:
        return OPEN_TENANT
    key = (presented_key(headers) or "").encode()
    return "k" + hashlib.sha256(_DOMAIN + key).hexdigest()[:32]
