"""Rendering every failure as the Anthropic error envelope (the app's only exception handlers)."""

from __future__ import annotations

import logging

from asgi_correlation_id import correlation_id
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from messages_bridge.errors import ApiError, GatewayError, InvalidRequestError, NotFoundError, error_body
from messages_bridge.observability.record import current

logger = logging.getLogger("messages_bridge.errors")


def render_error(error: GatewayError) -> Response:
    current().error_type = error.error_type
    headers = dict(error.headers)
    return Response(
        error_body(error, correlation_id.get()),
        status_code=error.status_code,
        media_type="application/json",
        headers=headers,
    )


async def on_gateway_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return render_error(exc)


async def on_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 and friends, in the Anthropic shape."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return render_error(NotFoundError(f"Not found: {request.method} {request.url.path}"))
    if exc.status_code == 405:
        error = InvalidRequestError(f"Method {request.method} is not allowed on {request.url.path}")
        return Response(error_body(error, correlation_id.get()), status_code=405, media_type="application/json")
    return render_error(InvalidRequestError(str(exc.detail)))


async def on_unexpected(_: Request, exc: Exception) -> Response:
    """A bug: log the type only (the message could hold request content) and answer a bare 500."""
    logger.error("unhandled exception", extra={"exception_type": type(exc).__name__})
    return render_error(ApiError("Internal server error"))
