"""`create_app(settings)`: the Starlette app with its routes, middleware and lifespan."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from asgi_correlation_id import CorrelationIdMiddleware
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from messages_bridge.app.errors import on_gateway_error, on_http_exception, on_unexpected
from messages_bridge.app.routes import ROUTES
from messages_bridge.app.state import GatewayState
from messages_bridge.config import Settings
from messages_bridge.demo.server import create_upstream_app
from messages_bridge.errors import GatewayError
from messages_bridge.upstream.client import ResponsesClient, build_http_client

_ID_ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_VALID_ID = re.compile(r"^[A-Za-z0-9_.:-]{8,128}$")


def new_request_id() -> str:
    """Anthropic's `req_` + 24 base58-ish characters."""
    return "req_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


def valid_request_id(value: str) -> bool:
    return bool(_VALID_ID.match(value))


def _transport(settings: Settings, transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncBaseTransport | None:
    if transport is not None:
        return transport
    if settings.demo:
        return httpx.ASGITransport(app=create_upstream_app())
    return None


def create_app(settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None) -> Starlette:
    """The gateway; `transport` replaces the network to the upstream (tests), demo mode uses the simulator."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        http = build_http_client(
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            max_connections=settings.max_connections,
            transport=_transport(settings, transport),
        )
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        client = ResponsesClient(http, base_url=settings.upstream_base_url, api_key=key)
        keys = tuple(k.get_secret_value().encode() for k in settings.api_keys)
        app.state.gateway = GatewayState(settings=settings, client=client, keys=keys)
        try:
            yield
        finally:
            await http.aclose()

    middleware = [
        Middleware(
            CorrelationIdMiddleware,
            header_name="request-id",
            generator=new_request_id,
            validator=valid_request_id,
            update_request_header=True,
        ),
    ]
    handlers = {GatewayError: on_gateway_error, HTTPException: on_http_exception, Exception: on_unexpected}
    return Starlette(routes=ROUTES, middleware=middleware, exception_handlers=handlers, lifespan=lifespan)
