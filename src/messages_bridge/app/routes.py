"""HTTP routes: validate → relay → render. Handlers stay short; failures are raised as `GatewayError`."""

from __future__ import annotations

import logging

import msgspec
from asgi_correlation_id import correlation_id
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from messages_bridge.app.auth import check_key
from messages_bridge.app.body import check_content_type, decode_json, decode_request, read_body
from messages_bridge.app.relay import empty_message, relay_count_tokens, relay_message
from messages_bridge.app.state import GatewayState, gateway
from messages_bridge.app.streaming import prewarm_stream, stream_message
from messages_bridge.app.threads import abandon, capture_response, capture_stream, complete_message, open_turn
from messages_bridge.app.websearch import answered_by_gateway, search_message
from messages_bridge.errors import InvalidRequestError, NotFoundError
from messages_bridge.observability.record import current
from messages_bridge.observability.shape import describe
from messages_bridge.protocol import anthropic as a
from messages_bridge.protocol import request_fields as fields
from messages_bridge.threads.errors import ThreadUnsupportedRequestError
from messages_bridge.threads.rebuild import may_thread, read_view
from messages_bridge.threads.service import ThreadTurn
from messages_bridge.translate.request import to_responses_request

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


async def _body(request: Request, headers: dict[str, str]) -> bytes:
    """Authenticate, check the content type, read the body (with the size limit)."""
    state = gateway(request)
    check_key(headers, state.keys)
    check_content_type(headers)
    return await read_body(request, state.settings.max_body_bytes)


async def create_message(request: Request) -> Response:
    state = gateway(request)
    headers = _headers(request)
    body = await _body(request, headers)
    try:
        req: a.MessagesRequest | None = decode_request(body, fields.MESSAGES)
    except InvalidRequestError:
        if not may_thread(body):
            raise
        req = None  # a continue's new messages alone may not decode (tool changes); its rebuilt request will
    if req is not None and not req.threaded:
        return await _answer(state, headers, req, None)
    turn = await open_turn(state, body, headers)  # a thread's rejection is answered here, before any upstream call
    if turn is None:
        return await _answer(state, headers, req or decode_request(body, fields.MESSAGES), None)
    try:
        # A create without tool changes is already complete and decoded; a rebuilt request is decoded once more
        # (its fields were checked and reported with the first decode, unless that one failed).
        if req is not None and turn.body is body:
            whole = req
        elif req is not None:
            whole = decode_json(turn.body, fields.MESSAGES).request
        else:
            whole = decode_request(turn.body, fields.MESSAGES)
        return await _answer(state, headers, whole, turn)
    except BaseException:
        await abandon(turn)
        raise


async def _answer(
    state: GatewayState, headers: dict[str, str], req: a.MessagesRequest, turn: ThreadTurn | None
) -> Response:
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
    if req.max_tokens == 0:
        if turn is not None:
            await turn.abandon()  # a pre-warm produces no reply to continue from
        prewarm = empty_message(req)
        return prewarm_stream(prewarm) if req.stream else json_response(prewarm)
    if translation.reply.web_search is not None:
        current().web_search_mode = translation.reply.web_search_mode
        if answered_by_gateway(req, translation):
            answer = await search_message(state, req, translation)
            if turn is not None:
                if isinstance(answer, Response):
                    return await capture_response(turn, answer)
                answer = await complete_message(turn, answer)
            return answer if isinstance(answer, Response) else json_response(answer)
    if req.stream:
        response = await stream_message(state, req, translation)
        return capture_stream(turn, response) if turn is not None else response
    message, limits = await relay_message(
        state.client, req, translation, request_id=correlation_id.get(), context_window=settings.context_window
    )
    if turn is not None:
        message = await complete_message(turn, message)
    return json_response(message, headers=limits)


async def count_tokens(request: Request) -> Response:
    state = gateway(request)
    body = await _body(request, _headers(request))
    if may_thread(body) and read_view(body).thread is not None:  # not a count_tokens field: ignoring it miscounts
        raise ThreadUnsupportedRequestError("count_tokens does not take `thread`: send the full conversation")
    req = decode_request(body, fields.COUNT_TOKENS)
    describe(req, current())
    tokens, _ = await relay_count_tokens(
        state.client,
        req,
        state.settings.profile(req.model),
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
    check_key(request.headers, state.keys)
    data = [_model_info(m) for m in state.settings.listed_models]
    return json_response({"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]})


async def get_model(request: Request) -> Response:
    state = gateway(request)
    check_key(request.headers, state.keys)
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
