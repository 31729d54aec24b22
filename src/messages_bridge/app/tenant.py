"""Who a request belongs to, for what the gateway holds per client (message threads).

The ONE place that derives a tenant: today a digest of the presented client key (keys never stored or logged as
such), or one shared tenant when client authentication is off. Called only after `check_key` accepted the request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from messages_bridge.app.auth import presented_key

OPEN_TENANT = "open"
_DOMAIN = b"messages-bridge tenant v1\x00"


def tenant_of(headers: Mapping[str, str], keys: tuple[bytes, ...]) -> str:
    if not keys:
        return OPEN_TENANT
    key = (presented_key(headers) or "").encode()
    return "k" + hashlib.sha256(_DOMAIN + key).hexdigest()[:32]
