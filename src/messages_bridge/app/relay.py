"""The one place that joins translation and the upstream: translate → call → translate back."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import msgspec

from messages_bridge.errors import GatewayError, from_upstream_status
from messages_bridge.observability.record import current
from messages_bridge.observability.upstream import note_upstream_error, note_upstream_status, note_usage, upstream_call
from messages_bridge.protocol import anthropic as a
from messages_bridge.translate.headers import ratelimit_headers
from messages_bridge.translate.request import Translation, UpstreamProfile, to_input_tokens_request
from messages_bridge.translate.response import to_anthropic_message
from messages_bridge.translate.tokens import estimate_input_tokens
from messages_bridge.translate.tools import ToolSet
from messages_bridge.translate.usage import empty_usage
from messages_bridge.upstream.client import ResponsesClient, UpstreamHTTPError

_ENCODER = msgspec.json.Encoder()


def upstream_error(
    exc: UpstreamHTTPError, req: a.MessagesRequest | a.CountTokensRequest, tools: ToolSet, context_window: int
) -> GatewayError:
    """Map an upstream HTTP failure; the token estimate is computed only on this (rare) path."""
    note_upstream_status(exc.status, exc.headers.get("x-request-id"))
    estimated = estimate_input_tokens(req, tools)
    error = from_upstream_status(
        exc.status, exc.body, exc.headers, estimated_tokens=estimated, context_window=context_window
    )
    error.headers.update(client_ratelimit_headers(exc.headers))
    return error


def client_ratelimit_headers(upstream: Mapping[str, str]) -> dict[str, str]:
    """The `anthropic-ratelimit-*` headers derived from the upstream's answer (resets relative to now)."""
    return ratelimit_headers(upstream, now=datetime.now(UTC))


async def relay_message(
    client: ResponsesClient, req: a.MessagesRequest, t: Translation, *, request_id: str | None, context_window: int
) -> tuple[a.Message, dict[str, str]]:
    """A non-streaming Message, and the rate-limit headers for the client."""
    with upstream_call(t.body["model"]):
        try:
            reply = await client.create(_ENCODER.encode(t.body), request_id=request_id)
        except UpstreamHTTPError as exc:
            raise upstream_error(exc, req, t.tools, context_window) from exc
    note_upstream_status(reply.status, reply.upstream_request_id)
    try:
        message = to_anthropic_message(reply.response, t.reply, model=req.model, context_window=context_window)
    except GatewayError as exc:  # a failed, unfinished or malformed answer: the upstream's error, as when streamed
        note_upstream_error(exc)
        raise
    note_usage(message["usage"], message["stop_reason"])
    return message, client_ratelimit_headers(reply.headers)


def empty_message(req: a.MessagesRequest, tools: ToolSet) -> a.Message:
    """`max_tokens: 0` (Anthropic's cache pre-warm): no generation, the estimated input usage."""
    usage = empty_usage(input_tokens=estimate_input_tokens(req, tools))
    return {
        "id": "msg_prewarm",
        "type": "message",
        "role": "assistant",
        "model": req.model,
        "content": [],
        "stop_reason": "max_tokens",
        "stop_sequence": None,
        "usage": usage,
    }


async def relay_count_tokens(
    client: ResponsesClient,
    req: a.CountTokensRequest,
    tools: ToolSet,
    profile: UpstreamProfile,
    *,
    request_id: str | None,
    context_window: int,
) -> tuple[int, bool]:
    """(input tokens, exact?): the upstream's count, or the local estimate when it cannot count."""
    body = _ENCODER.encode(to_input_tokens_request(req, tools, profile))
    with upstream_call(profile.model):
        try:
            counted = await client.input_tokens(body, request_id=request_id)
        except UpstreamHTTPError as exc:
            raise upstream_error(exc, req, tools, context_window) from exc
    current().token_count_exact = counted is not None
    if counted is None:
        return estimate_input_tokens(req, tools), False
    return counted, True
