"""HTTP routes: validate → relay → render. Handlers stay short; failures are raised as `GatewayError`."""

from __future__ import annotations

import logging
from dataclasses import replace

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from messages_bridge.app.body import check_content_type, decode_json, decode_request, read_body
from messages_bridge.app.dispatch import plan_for
from messages_bridge.app.relay import empty_message, relay_count_tokens, relay_message
from messages_bridge.app.state import GatewayState, gateway
from messages_bridge.app.streaming import message_stream, stream_message
from messages_bridge.app.threads import abandon, capture_response, capture_stream, complete_message, open_turn
from messages_bridge.app.upstream_health import readiness
from messages_bridge.app.websearch import answered_by_gateway, search_message
from messages_bridge.errors import InvalidRequestError, NotFoundError
from messages_bridge.observability.record import record_of
from messages_bridge.observability.shape import describe
from messages_bridge.protocol import anthropic as a
from messages_bridge.protocol import request_fields as fields
from messages_bridge.routing.router import FileRouter
from messages_bridge.team.gate import team_of
from messages_bridge.team.identity import identity_of
from messages_bridge.threads.errors import ThreadUnsupportedRequestError
from messages_bridge.threads.rebuild import may_thread, read_view
from messages_bridge.threads.service import ThreadTurn
from messages_bridge.translate.tokens import estimate_input_tokens
from messages_bridge.translate.tools import tool_set

_ENCODER = msgspec.json.Encoder()
DEFAULT_VERSION = "2023-06-01"
MODEL_CREATED_AT = "2025-01-01T00:00:00Z"
DEFAULT_PAGE = 20
MAX_PAGE = 1000
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
    await team_of(request).authenticate(request, headers)
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
        return await _answer(request, state, headers, req, None)
    # A thread's rejection is answered here, before any upstream call.
    turn = await open_turn(state, body, headers, record_of(request.scope), identity_of(request))
    if turn is None:
        return await _answer(request, state, headers, req or decode_request(body, fields.MESSAGES), None)
    try:
        # A create without tool changes is already complete and decoded; a rebuilt request is decoded once more
        # (its fields were checked and reported with the first decode, unless that one failed).
        if req is not None and turn.body is body:
            whole = req
        elif req is not None:
            whole = decode_json(turn.body, fields.MESSAGES).request
        else:
            whole = decode_request(turn.body, fields.MESSAGES)
        return await _answer(request, state, headers, whole, turn)
    except BaseException:
        await abandon(turn)
        raise


async def _answer(
    request: Request, state: GatewayState, headers: dict[str, str], req: a.MessagesRequest, turn: ThreadTurn | None
) -> Response:
    record = record_of(request.scope)  # the access record: looked up once, then passed to whatever fills it in
    tools = tool_set(req.tools)  # decoded and translated once for the whole request (400 when invalid)
    describe(req, tools, record)
    version = headers.get("anthropic-version", DEFAULT_VERSION)
    settings = state.settings
    api_version = version if settings.reject_sampling_on_new_api else DEFAULT_VERSION
    budget = settings.retry_budget
    plan = plan_for(state.router, request, req, tools, headers, budget=budget, api_version=api_version)
    translation = plan.translation(req, plan.targets[0])  # validates the request before anything else happens
    if translation.ignored:  # names and JSON paths only, never values
        _translate_log.debug("left out, no upstream equivalent: %s", ", ".join(translation.ignored))
    team = team_of(request)
    upstream_model = translation.body["model"]
    estimate = lambda: estimate_input_tokens(req, tools)  # noqa: E731 - computed only for keys with tpm or budget
    await team.admit(
        request,
        model=req.model,
        upstream_model=upstream_model,
        estimate=estimate,
        limited=req.max_tokens != 0,
        max_tokens=req.max_tokens,  # a budget key reserves what the answer may cost at most
    )
    if req.max_tokens == 0:
        if turn is not None:
            await turn.abandon()  # a pre-warm produces no reply to continue from
        prewarm = empty_message(req, tools)
        return message_stream(prewarm) if req.stream else json_response(prewarm)
    if translation.reply.web_search is not None:
        record.web_search_mode = translation.reply.web_search_mode
        if answered_by_gateway(req, translation):
            # The gateway's search loop calls the route's first target (no failover inside the loop).
            answer = await search_message(replace(state, client=plan.first_client()), req, translation, record)
            if turn is not None:
                if isinstance(answer, Response):
                    return await capture_response(turn, answer)
                answer = await complete_message(turn, answer)
            return answer if isinstance(answer, Response) else json_response(answer)
    if req.stream:
        response = await stream_message(state, req, plan, record)
        return team.decorate(request, capture_stream(turn, response) if turn is not None else response)
    message, limits = await relay_message(state, req, plan, record)
    if turn is not None:
        message = await complete_message(turn, message)
    await team.settle(request, record)  # before answering: the client's next request sees this usage
    return team.decorate(request, json_response(message, headers=limits))


async def count_tokens(request: Request) -> Response:
    state = gateway(request)
    headers = _headers(request)
    body = await _body(request, headers)
    if may_thread(body) and read_view(body).thread is not None:  # not a count_tokens field: ignoring it miscounts
        raise ThreadUnsupportedRequestError("count_tokens does not take `thread`: send the full conversation")
    req = decode_request(body, fields.COUNT_TOKENS)
    record = record_of(request.scope)
    tools = tool_set(req.tools)
    describe(req, tools, record)
    plan = plan_for(state.router, request, req, tools, headers, budget=state.settings.retry_budget)
    first = plan.targets[0].profile.model
    await team_of(request).admit(request, model=req.model, upstream_model=first, estimate=int, limited=False)
    tokens, _ = await relay_count_tokens(req, plan, record)
    return json_response({"input_tokens": tokens})


def _model_info(model_id: str, display_name: str | None = None) -> dict[str, str]:
    # `lifecycle` is required by the 2.x SDK's ModelInfo (strict validation fails without it).
    return {
        "type": "model",
        "id": model_id,
        "display_name": display_name or model_id,
        "created_at": MODEL_CREATED_AT,
        "lifecycle": "active",
    }


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_PAGE
    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE:
        raise InvalidRequestError(f"limit: must be an integer between 1 and {MAX_PAGE}")
    return int(value)


def page(items: list[tuple[str, str]], *, limit: int, after_id: str | None, before_id: str | None) -> dict[str, object]:
    """Anthropic's list paging: `after_id` pages forward, `before_id` backward (an unknown id: an empty page)."""
    ids = [item_id for item_id, _ in items]
    start, end = 0, len(items)
    if after_id is not None:
        start = ids.index(after_id) + 1 if after_id in ids else end
    if before_id is not None:
        end = ids.index(before_id) if before_id in ids else 0
        start = max(start, end - limit)
    chosen = items[start : min(end, start + limit)]
    has_more = start > 0 if before_id is not None and after_id is None else start + len(chosen) < end
    data = [_model_info(item_id, display) for item_id, display in chosen]
    return {
        "data": data,
        "has_more": has_more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


async def list_models(request: Request) -> Response:
    state = gateway(request)
    await team_of(request).authenticate(request, request.headers)
    query = request.query_params
    body = page(
        state.router.listed(),
        limit=_limit(query.get("limit")),
        after_id=query.get("after_id"),
        before_id=query.get("before_id"),
    )
    return json_response(body)


async def get_model(request: Request) -> Response:
    state = gateway(request)
    await team_of(request).authenticate(request, request.headers)
    model_id = request.path_params["model_id"]
    router = state.router
    if not router.accepts(model_id):
        raise NotFoundError(f"model: {model_id}")
    return json_response(_model_info(model_id, dict(router.listed()).get(model_id)))


async def healthz(_: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    state = gateway(request)
    if state.lifecycle.draining:
        return json_response({"status": "unready", "reason": "draining"}, status=503)
    router = state.router
    if isinstance(router, FileRouter):
        ready, upstreams = await readiness(router)
        body = {"status": "ready" if ready else "unready", "upstreams": upstreams}
        if not ready:
            body["reason"] = "a route has no target that can serve"
        return json_response(body, status=200 if ready else 503)
    if await state.readiness.ready():  # cached for a few seconds (app/readiness.py)
        return json_response({"status": "ready", "demo": state.settings.demo})
    return json_response({"status": "unready", "reason": "upstream unreachable"}, status=503)


ROUTES = [
    Route("/v1/messages", create_message, methods=["POST"]),
    Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model_id:path}", get_model, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
