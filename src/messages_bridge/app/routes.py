"""HTTP routes: validate → relay → render. Handlers stay short; failures are raised as `GatewayError`."""

from __future__ import annotations

import logging
from typing import TypeVar

import msgspec
from asgi_correlation_id import correlation_id
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from messages_bridge.app.body import check_content_type, decode_request, read_body
from messages_bridge.app.relay import empty_message, relay_count_tokens, relay_message
from messages_bridge.app.state import gateway
from messages_bridge.app.streaming import prewarm_stream, stream_message
from messages_bridge.app.websearch import answered_by_gateway, search_message
from messages_bridge.errors import NotFoundError
from messages_bridge.observability.record import current
from messages_bridge.observability.shape import describe
from messages_bridge.protocol import anthropic as a
from messages_bridge.protocol import request_fields as fields
from messages_bridge.team.gate import team_of
from messages_bridge.translate.request import to_responses_request
from messages_bridge.translate.tokens import estimate_input_tokens

R = TypeVar("R", a.MessagesRequest, a.CountTokensRequest)
_ENCODER = msgspec.json.Encoder()
DEFAULT_VERSION = "2023-06-01"
MODEL_CREATED_AT = "2025-01-01T00:00:00Z"
_translate_log = logging.getLogger("messages_bridge.translate")


def json_response(payload: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_ENCODER.encode(payload), status_code=status, media_type="application/json", headers=headers)


# The only request headers the routes read: one pass over the raw list instead of a case-insensitive lookup each.
_WANTED = frozenset({b"x-api-key", b"authorization", b"content-type", b"anthropic-version"})


def _headers(request: Request) -> dict[str, str]:
    return {k.decode(): v.decode("latin-1") for k, v in request.scope["headers"] if k in _WANTED}


async def _decoded(request: Request, headers: dict[str, str], decoder: fields.RequestDecoder[R]) -> R:
    """Authenticate, check the content type, read (with the size limit) and validate the body."""
    state = gateway(request)
    await team_of(request).authenticate(request, headers)
    check_content_type(headers)
    return decode_request(await read_body(request, state.settings.max_body_bytes), decoder)


async def create_message(request: Request) -> Response:
    state = gateway(request)
    headers = _headers(request)
    req = await _decoded(request, headers, fields.MESSAGES)
    describe(req, current())
    version = headers.get("anthropic-version", DEFAULT_VERSION)
    settings = state.settings
    translation = to_responses_request(
        req,
        settings.profile(req.model),
        api_version=version if settings.reject_sampling_on_new_api else DEFAULT_VERSION,
    )
    if translation.ignored:  # names and JSON paths only, never values
        _translate_log.debug("left out, no upstream equivalent: %s", ", ".join(translation.ignored))
    team = team_of(request)
    upstream_model = translation.body["model"]
    estimate = lambda: estimate_input_tokens(req)  # noqa: E731 - computed only for keys with tpm or budget
    await team.admit(
        request, model=req.model, upstream_model=upstream_model, estimate=estimate, limited=req.max_tokens != 0
    )
    if req.max_tokens == 0:
        prewarm = empty_message(req)
        return prewarm_stream(prewarm) if req.stream else json_response(prewarm)
    if translation.reply.web_search is not None:
        current().web_search_mode = translation.reply.web_search_mode
        if answered_by_gateway(req, translation):
            answer = await search_message(state, req, translation)
            return answer if isinstance(answer, Response) else json_response(answer)
    if req.stream:
        return team.decorate(request, await stream_message(state, req, translation))
    message, limits = await relay_message(
        state.client, req, translation, request_id=correlation_id.get(), context_window=settings.context_window
    )
    await team.settle(request, current())  # before answering: the client's next request sees this usage
    return team.decorate(request, json_response(message, headers=limits))


async def count_tokens(request: Request) -> Response:
    state = gateway(request)
    req = await _decoded(request, _headers(request), fields.COUNT_TOKENS)
    describe(req, current())
    profile = state.settings.profile(req.model)
    await team_of(request).admit(request, model=req.model, upstream_model=profile.model, estimate=int, limited=False)
    tokens, _ = await relay_count_tokens(
        state.client,
        req,
        profile,
        request_id=correlation_id.get(),
        context_window=state.settings.context_window,
    )
    return json_response({"input_tokens": tokens})


def _model_info(model_id: str) -> dict[str, str]:
    # `lifecycle` is required by the 2.x SDK's ModelInfo (strict validation fails without it).
    return {
        "type": "model",
        "id": model_id,
        "display_name": model_id,
        "created_at": MODEL_CREATED_AT,
        "lifecycle": "active",
    }


async def list_models(request: Request) -> Response:
    state = gateway(request)
    await team_of(request).authenticate(request, request.headers)
    data = [_model_info(m) for m in state.settings.listed_models]
    return json_response({"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]})


async def get_model(request: Request) -> Response:
    state = gateway(request)
    await team_of(request).authenticate(request, request.headers)
    model_id = request.path_params["model_id"]
    if model_id not in state.settings.listed_models and model_id not in state.settings.model_map:
        raise NotFoundError(f"model: {model_id}")
    return json_response(_model_info(model_id))


async def healthz(_: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    state = gateway(request)
    if state.lifecycle.draining:
        return json_response({"status": "unready", "reason": "draining"}, status=503)
    if await state.readiness.ready():  # cached for a few seconds (app/readiness.py)
        return json_response({"status": "ready", "demo": state.settings.demo})
    return json_response({"status": "unready", "reason": "upstream unreachable"}, status=503)


ROUTES = [
    Route("/v1/messages", create_message, methods=["POST"]),
    Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model_id:str}", get_model, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
