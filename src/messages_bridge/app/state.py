"""What the routes share for the process lifetime: settings, the upstream client, the key set, the threads."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request

from messages_bridge.app.lifecycle import Lifecycle
from messages_bridge.config import Settings
from messages_bridge.threads.memory import MemoryThreadStore
from messages_bridge.threads.service import ThreadService
from messages_bridge.upstream.client import ResponsesClient


@dataclass(slots=True)
class GatewayState:
    settings: Settings
    client: ResponsesClient
    keys: tuple[bytes, ...]
    lifecycle: Lifecycle = field(default_factory=lambda: Lifecycle(max_concurrency=1 << 30, grace=0.0))
    threads: ThreadService = field(default_factory=lambda: ThreadService(MemoryThreadStore()))


def gateway(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state
