"""`create_app(settings)`: the Starlette app with its routes, middleware and lifespan."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from asgi_correlation_id import CorrelationIdMiddleware
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect
from starlette.routing import Route
from starlette.types import ASGIApp

from messages_bridge.app.admission import AdmissionMiddleware
from messages_bridge.app.errors import on_client_disconnect, on_gateway_error, on_http_exception, on_unexpected
from messages_bridge.app.lifecycle import Lifecycle, drained_on_exit
from messages_bridge.app.readiness import ReadinessProbe
from messages_bridge.app.routes import ROUTES
from messages_bridge.app.state import GatewayState
from messages_bridge.config import Settings
from messages_bridge.demo.server import create_upstream_app
from messages_bridge.errors import GatewayError
from messages_bridge.observability.logs import Masker, settings_secrets
from messages_bridge.observability.metrics import metrics_endpoint
from messages_bridge.observability.middleware import RecordScope, RequestIdAlias, instrument
from messages_bridge.routing.config_file import UpstreamConfig
from messages_bridge.routing.loader import Reloader, RouterBuilder, config_secrets, install_reload_on_sighup
from messages_bridge.routing.router import EnvRouter, FileRouter, Router
from messages_bridge.team.admin import ADMIN_ROUTES
from messages_bridge.team.budget import LookupPriceTable, PriceLike, PriceTable, StaticPriceTable
from messages_bridge.team.gate import Team
from messages_bridge.team.middleware import TeamMiddleware
from messages_bridge.team.settings import TeamSettings
from messages_bridge.threads.setup import thread_service
from messages_bridge.upstream.client import ResponsesClient, Timeouts, default_transport
from messages_bridge.upstream.retry import RetryPolicy
from messages_bridge.websearch.backend import SearchBackend, SearxngBackend
from messages_bridge.websearch.config import WebSearchConfig

StateFactory = Callable[[ResponsesClient, Router, Masker, SearchBackend | None], GatewayState]
_ID_ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_VALID_ID = re.compile(r"^[A-Za-z0-9_.:-]{8,128}$")


# Byte → id character, for `bytes.translate` (one C call instead of a Python loop over 24 bytes).
_ID_CHARS = bytes(ord(_ID_ALPHABET[b % len(_ID_ALPHABET)]) for b in range(256))


def new_request_id() -> str:
    """Anthropic's `req_` + 24 base58-ish characters."""
    # One urandom call instead of 24 `secrets.choice` calls (~80 µs → ~1 µs); the id needs uniqueness, not
    # unbiased secrecy, so the slight modulo bias does not matter.
    return "req_" + secrets.token_bytes(24).translate(_ID_CHARS).decode("ascii")


def valid_request_id(value: str) -> bool:
    return bool(_VALID_ID.match(value))


def _transport(settings: Settings, transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncBaseTransport:
    if transport is not None:
        return transport
    if settings.demo:
        return httpx.ASGITransport(app=create_upstream_app())
    return default_transport(max_connections=settings.max_connections, keepalive=settings.upstream_keepalive)


def _search_backend(config: WebSearchConfig) -> SearchBackend | None:
    backend = config.backend
    if backend is None or config.mode == "off":
        return None
    return SearxngBackend(backend.url, timeout=backend.timeout)


@asynccontextmanager
async def _routed(
    app: Starlette,
    settings: Settings,
    transport: httpx.AsyncBaseTransport | None,
    retry: RetryPolicy,
    state_for: StateFactory,
) -> AsyncIterator[None]:
    """The lifespan with a routing file: its router, SIGHUP reloads, and every upstream transport closed at the end."""
    assert settings.config is not None

    def make_transport(upstream: UpstreamConfig) -> httpx.AsyncBaseTransport:
        if transport is not None:
            return transport
        size = upstream.max_connections or settings.max_connections
        return default_transport(max_connections=size, keepalive=settings.upstream_keepalive)

    builder = RouterBuilder(settings, retry, make_transport)
    router = builder.load(settings.config)
    first = next(iter(router.upstreams.values())).clients[0]
    scrub = Masker([*settings_secrets(settings), *config_secrets(router.config)])
    search = _search_backend(router.web_search)
    retired: list[SearchBackend] = []  # replaced by a reload; closed at shutdown (a request may still use one)
    state = state_for(first, router, scrub, search)  # its readiness probe is unused: /readyz reports each upstream

    def install(new: FileRouter) -> None:
        scrub.add(config_secrets(new.config))  # before any request can reach the new keys
        if new.web_search != state.router.web_search:
            if state.search_backend is not None:
                retired.append(state.search_backend)
            state.search_backend = _search_backend(new.web_search)
        state.router = new

    def current() -> FileRouter:
        assert isinstance(state.router, FileRouter)
        return state.router

    app.state.reloader = Reloader(settings.config, builder, current, install)
    undo_reload = install_reload_on_sighup(app.state.reloader)
    try:
        async with drained_on_exit(state.lifecycle, settings.shutdown_grace):
            yield
    finally:
        undo_reload()
        await builder.aclose()
        for backend in [*retired, state.search_backend]:
            if backend is not None:
                await backend.aclose()


def _routing_price(app: Starlette) -> Callable[[str], PriceLike | None]:
    """The price of an upstream model in the routing file in force (None without one, or without a price)."""

    def lookup(model: str) -> PriceLike | None:
        router = getattr(getattr(app.state, "gateway", None), "router", None)
        config = router.config if isinstance(router, FileRouter) else None
        profile = config.models.get(model) if config is not None else None
        return profile.price if profile is not None else None

    return lookup


class GatewayApp(Starlette):
    """Starlette with `outer` wrapped around its whole stack, outside `ServerErrorMiddleware`.

    So even an unhandled-exception 500 carries the `request-id` header and is counted by the access log.
    """

    def __init__(self, *, outer: Callable[[ASGIApp], ASGIApp], **starlette: Any) -> None:
        self.outer = outer
        super().__init__(**starlette)

    def build_middleware_stack(self) -> ASGIApp:
        return self.outer(super().build_middleware_stack())


def create_app(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    observability: bool = True,
    team: TeamSettings | None = None,
    prices: PriceTable | None = None,
) -> Starlette:
    """The gateway; `transport` replaces the network to the upstream (tests), demo mode uses the simulator.

    `observability=False` leaves out the access log, metrics and tracing (to measure what they cost).
    `team` (default: from the environment) says where keys, ledger and counters live; `prices` replaces the
    price table (default: the routing file's model prices, then `BRIDGE_PRICES`).
    """
    team_settings = team if team is not None else TeamSettings()
    lifecycle = Lifecycle(max_concurrency=settings.max_concurrency, grace=settings.shutdown_grace)
    retry = RetryPolicy(
        max_retries=settings.max_retries, max_wait=settings.max_retry_wait, budget=settings.retry_budget
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        """The team gateway (keys, limits, ledger) around the rest; closed last, after the drain."""
        shared = tuple(k.get_secret_value() for k in settings.api_keys)
        table = prices or LookupPriceTable(_routing_price(app), StaticPriceTable(team_settings.prices))
        app.state.team = await Team.open(team_settings, shared_keys=shared, prices=table)
        try:
            async with gateway_lifespan(app):
                yield
        finally:
            await app.state.team.aclose()  # every finished request's ledger row is queued by now

    @asynccontextmanager
    async def gateway_lifespan(app: Starlette) -> AsyncIterator[None]:
        keys = tuple(k.get_secret_value().encode() for k in settings.api_keys)
        threads = thread_service(settings)

        def state_for(
            client: ResponsesClient, router: Router, scrub: Masker, search: SearchBackend | None
        ) -> GatewayState:
            """The routes' shared state (the one place it is built), installed on the app."""
            state = GatewayState(
                settings=settings,
                client=client,
                keys=keys,
                router=router,
                scrub=scrub,
                readiness=ReadinessProbe(client.ready),
                lifecycle=lifecycle,
                search_backend=search,
                threads=threads,
            )
            app.state.gateway = state
            return state

        if settings.config is not None:
            try:
                async with _routed(app, settings, transport, retry, state_for):
                    yield
            finally:
                await threads.aclose()
            return
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        timeouts = Timeouts(connect=settings.connect_timeout, read=settings.read_timeout)
        client = ResponsesClient(
            _transport(settings, transport),
            base_url=settings.upstream_base_url,
            api_key=key,
            timeouts=timeouts,
            retry=retry,
            max_body_bytes=settings.max_upstream_body_bytes,
        )
        search = _search_backend(settings.web_search)
        state_for(client, EnvRouter(settings, client), Masker(settings_secrets(settings)), search)
        try:
            # Open streams may finish (up to the grace period) before the upstream client closes.
            async with drained_on_exit(lifecycle, settings.shutdown_grace):
                yield
        finally:
            await client.aclose()
            if search is not None:
                await search.aclose()
            await threads.aclose()

    middleware = [
        Middleware(AdmissionMiddleware, lifecycle=lifecycle),
        Middleware(TeamMiddleware),
    ]

    def outer(app: ASGIApp) -> ASGIApp:
        """Request-id alias → correlation id → access log → Starlette's own stack."""
        inner = instrument(app, settings) if observability else RecordScope(app)
        correlated = CorrelationIdMiddleware(
            inner, header_name="request-id", generator=new_request_id, validator=valid_request_id
        )
        return RequestIdAlias(correlated)

    routes = [*ROUTES, *ADMIN_ROUTES]
    if observability:
        routes.append(Route("/metrics", metrics_endpoint, methods=["GET"]))
    handlers = {
        GatewayError: on_gateway_error,
        HTTPException: on_http_exception,
        ClientDisconnect: on_client_disconnect,
        Exception: on_unexpected,
    }
    app = GatewayApp(outer=outer, routes=routes, middleware=middleware, exception_handlers=handlers, lifespan=lifespan)
    # Starlette would answer `/v1/messages/` with a redirect built from the client's `Host` header (an open
    # redirect for whoever controls that header); the Anthropic API has no such aliases, so it is a plain 404.
    app.router.redirect_slashes = False
    return app
