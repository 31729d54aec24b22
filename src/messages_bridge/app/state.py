"""What the routes share for the process lifetime: settings, the upstream client, the key set, the secret scrubber,
the message threads."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request

from messages_bridge.app.lifecycle import Lifecycle
from messages_bridge.app.readiness import ReadinessProbe
from messages_bridge.config import Settings
from messages_bridge.observability.logs import Masker
from messages_bridge.routing.router import Router
from messages_bridge.threads.memory import MemoryThreadStore
from messages_bridge.threads.service import ThreadService
from messages_bridge.upstream.client import ResponsesClient
from messages_bridge.websearch.backend import SearchBackend


@dataclass(slots=True)
class GatewayState:
    """`router` is swapped whole on a reload; a request reads it once. `client`: the first upstream's first key."""

    settings: Settings
    client: ResponsesClient
    keys: tuple[bytes, ...]
    router: Router
    # Blanks every configured secret in text bound for a client (upstream error messages may quote our key).
    scrub: Masker
    readiness: ReadinessProbe
    lifecycle: Lifecycle = field(default_factory=lambda: Lifecycle(max_concurrency=1 << 30, grace=0.0))
    search_backend: SearchBackend | None = None  # the gateway-run web search backend, when one is configured
    threads: ThreadService = field(default_factory=lambda: ThreadService(MemoryThreadStore()))


def gateway(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state
