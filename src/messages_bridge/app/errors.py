"""Rendering every failure as the Anthropic error envelope (the app's only exception handlers).

Every message is scrubbed of the configured secrets on its way out: an upstream's error text (already decoded
from its JSON, so escapes like `sk\\u002d…` are plain again) may quote the gateway's own key.
"""

from __future__ import annotations

import logging

from asgi_correlation_id import correlation_id
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from messages_bridge.errors import ApiError, GatewayError, InvalidRequestError, NotFoundError, error_body
from messages_bridge.observability.logs import Masker
from messages_bridge.observability.record import record_of

logger = logging.getLogger("messages_bridge.errors")
CLIENT_CLOSED_REQUEST = 499  # nginx's status for "the client closed the connection before the answer"
_NO_SECRETS = Masker()


def _scrubber(request: Request) -> Masker:
    """The app's secret scrubber; before the lifespan has run there are no configured secrets to know of."""
    state = getattr(request.app.state, "gateway", None)
    return state.scrub if state is not None else _NO_SECRETS


def render_error(request: Request, error: GatewayError, *, status: int | None = None) -> Response:
    record_of(request.scope).error_type = error.error_type
    if error.message:
        error.message = _scrubber(request)(error.message)
    return Response(
        error_body(error, correlation_id.get()),
        status_code=status or error.status_code,
        media_type="application/json",
        headers=dict(error.headers),
    )


async def on_gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return render_error(request, exc)


async def on_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 and friends, in the Anthropic shape."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return render_error(request, NotFoundError(f"Not found: {request.method} {request.url.path}"))
    if exc.status_code == 405:
        error = InvalidRequestError(f"Method {request.method} is not allowed on {request.url.path}")
        return render_error(request, error, status=405)
    return render_error(request, InvalidRequestError(str(exc.detail)))


async def on_unexpected(request: Request, exc: Exception) -> Response:
    """A bug: log the type only (the message could hold request content) and answer a bare 500."""
    logger.error("unhandled exception", extra={"exception_type": type(exc).__name__})
    return render_error(request, ApiError("Internal server error"))


async def on_client_disconnect(request: Request, exc: Exception) -> Response:
    """The client went away while sending its body: nothing failed here and nobody is left to answer.

    The access record and the metrics count it as a disconnect with status 499, never as an error (no 500, no
    ERROR line); the response below is dropped by the server.
    """
    assert isinstance(exc, ClientDisconnect)
    record_of(request.scope).disconnected = True
    return Response(status_code=CLIENT_CLOSED_REQUEST)
