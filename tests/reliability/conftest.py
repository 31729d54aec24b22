"""Fixtures of the fault tests: gateways whose upstream retries are on, each with its own in-process client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from messages_bridge.config import Settings
from tests.conftest import GATEWAY
from tests.reliability.faults import RETRYING, Gateway

AppFactory = Callable[[Settings], Any]


@pytest.fixture
async def open_gateway(app_factory: AppFactory, make_settings: Callable[..., Settings]) -> AsyncIterator[Any]:
    clients: list[httpx.AsyncClient] = []

    async def open_(**overrides: Any) -> Gateway:
        app = await app_factory(make_settings(**{**RETRYING, **overrides}))
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY, timeout=30)
        clients.append(http)
        return Gateway(app, http)

    yield open_
    for http in clients:
        await http.aclose()
