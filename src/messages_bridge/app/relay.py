"""The one place that joins translation and the upstream: translate → call → translate back.

Each relay gathers the facts of its upstream call (status, ids, timings, usage, retries, which target answered)
in an `UpstreamFacts` and hands them to the access record once, when the call is over (`RequestRecord.apply`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar

import msgspec
from asgi_correlation_id import correlation_id

from messages_bridge.app.dispatch import Plan
from messages_bridge.app.state import GatewayState
from messages_bridge.errors import GatewayError, from_upstream_status
from messages_bridge.observability.record import RequestRecord
from messages_bridge.observability.upstream import UpstreamFacts, upstream_call
from messages_bridge.protocol import anthropic as a
from messages_bridge.routing.router import Target
from messages_bridge.translate.headers import ratelimit_headers
from messages_bridge.translate.request import to_input_tokens_request
from messages_bridge.translate.response import to_anthropic_message
from messages_bridge.translate.tokens import estimate_input_tokens
from messages_bridge.translate.tools import ToolSet
from messages_bridge.translate.usage import empty_usage
from messages_bridge.upstream.client import ResponsesClient, UpstreamHTTPError

_ENCODER = msgspec.json.Encoder()
T = TypeVar("T")


def upstream_error(
    exc: UpstreamHTTPError,
    req: a.MessagesRequest | a.CountTokensRequest,
    tools: ToolSet,
    context_window: int,
    facts: UpstreamFacts,
) -> GatewayError:
    """Map an upstream HTTP failure; the token estimate is computed only on this (rare) path."""
    facts.answered(exc.status, exc.headers.get("x-request-id"))
    estimated = estimate_input_tokens(req, tools)
    error = from_upstream_status(
        exc.status, exc.body, exc.headers, estimated_tokens=estimated, context_window=context_window
    )
    error.headers.update(client_ratelimit_headers(exc.headers))
    return error


def client_ratelimit_headers(upstream: Mapping[str, str]) -> dict[str, str]:
    """The `anthropic-ratelimit-*` headers derived from the upstream's answer (resets relative to now)."""
    return ratelimit_headers(upstream, now=datetime.now(UTC))


async def call_upstream(
    facts: UpstreamFacts,
    req: a.MessagesRequest,
    plan: Plan,
    target: Target,
    send: Callable[[bytes], Awaitable[T]],
) -> T:
    """One upstream call for `target`, streamed or not: timed on `facts`, an HTTP failure mapped to our error."""
    translation = plan.translation(req, target)
    with upstream_call(facts, translation.body["model"]):
        try:
            return await send(_ENCODER.encode(translation.body))
        except UpstreamHTTPError as exc:
            raise upstream_error(exc, req, plan.tools, target.profile.context_window, facts) from exc


async def relay_message(
    state: GatewayState, req: a.MessagesRequest, plan: Plan, record: RequestRecord
) -> tuple[a.Message, dict[str, str]]:
    """A non-streaming Message from the first target that answers, and the rate-limit headers for the client.

    The signature matches `stream_message`'s; this path needs nothing from `state`.
    """
    request_id = correlation_id.get()
    facts = UpstreamFacts()

    async def call(target: Target, client: ResponsesClient) -> tuple[a.Message, dict[str, str]]:
        create = partial(client.create, request_id=request_id, facts=facts)
        reply = await call_upstream(facts, req, plan, target, create)
        facts.answered(reply.status, reply.upstream_request_id)
        reply_shape = plan.translation(req, target).reply
        window = target.profile.context_window
        try:
            message = to_anthropic_message(reply.response, reply_shape, model=req.model, context_window=window)
        except GatewayError as exc:  # a failed, unfinished or malformed answer: the upstream's error, as when streamed
            facts.failed(exc)
            raise
        facts.replied(message["usage"], message["stop_reason"])
        return message, client_ratelimit_headers(reply.headers)

    try:
        return await plan.run(call, facts)
    finally:
        record.apply(facts)


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


async def relay_count_tokens(req: a.CountTokensRequest, plan: Plan, record: RequestRecord) -> tuple[int, bool]:
    """(input tokens, exact?) from the first target that answers: its count, or the local estimate when it cannot."""
    request_id = correlation_id.get()
    tools = plan.tools
    facts = UpstreamFacts()

    async def call(target: Target, client: ResponsesClient) -> tuple[int, bool]:
        profile = target.profile
        body = _ENCODER.encode(to_input_tokens_request(req, tools, profile))
        with upstream_call(facts, profile.model):
            try:
                counted = await client.input_tokens(body, request_id=request_id, facts=facts)
            except UpstreamHTTPError as exc:
                raise upstream_error(exc, req, tools, profile.context_window, facts) from exc
        facts.token_count_exact = counted is not None
        if counted is None:
            return estimate_input_tokens(req, tools), False
        return counted, True

    try:
        return await plan.run(call, facts)
    finally:
        record.apply(facts)
