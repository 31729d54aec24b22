"""The admin API (`/admin/keys`, `/admin/usage`), behind `BRIDGE_ADMIN_KEY` only — a client key never opens it.

Unset `BRIDGE_ADMIN_KEY` and the admin API does not exist (404).
"""

from __future__ import annotations

import asyncio
import hmac
from datetime import UTC, datetime
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from messages_bridge.app.auth import presented_key
from messages_bridge.errors import AuthenticationError, InvalidRequestError, NotFoundError, PermissionDeniedError
from messages_bridge.team.gate import Team, team_of
from messages_bridge.team.keys import PERIODS, KeyError_, Limits, parse_duration
from messages_bridge.team.reports import GROUPS

_ENCODER = msgspec.json.Encoder()


def _json(payload: object, status: int = 200) -> Response:
    return Response(_ENCODER.encode(payload), status_code=status, media_type="application/json")


def _admin(request: Request) -> Team:
    team = team_of(request)
    expected = team.settings.admin_key
    if expected is None:
        raise NotFoundError(f"Not found: {request.method} {request.url.path}")
    presented = presented_key(request.headers)
    if presented is None:
        raise AuthenticationError("the admin API needs the admin key")
    if not hmac.compare_digest(presented.encode(), expected.get_secret_value().encode()):
        raise PermissionDeniedError("this key may not use the admin API")
    return team


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = msgspec.json.decode(raw) if raw else {}
    except msgspec.DecodeError as exc:
        raise InvalidRequestError("the body is not JSON") from exc
    if not isinstance(body, dict):
        raise InvalidRequestError("the body must be a JSON object")
    return body


def limits_from(body: dict[str, Any]) -> Limits:
    models = body.get("models") or ()
    period = body.get("budget_period") or "month"
    if period not in PERIODS:
        raise InvalidRequestError(f"budget_period: one of {', '.join(PERIODS)}")
    try:
        return Limits(
            models=tuple(models.split(",") if isinstance(models, str) else (str(m) for m in models)),
            rpm=_positive(body, "rpm"),
            tpm=_positive(body, "tpm"),
            max_concurrency=_positive(body, "max_concurrency"),
            budget_usd=None if body.get("budget_usd") is None else float(body["budget_usd"]),
            budget_period=period,
        )
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(f"invalid limits: {exc}") from exc


def _positive(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or value < 1:
        raise InvalidRequestError(f"{name}: a positive integer")
    return value


async def _run(call: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return await asyncio.to_thread(call, *args, **kwargs)
    except KeyError_ as exc:
        raise InvalidRequestError(str(exc)) from exc


async def list_keys(request: Request) -> Response:
    team = _admin(request)
    now = datetime.now(UTC)
    records = await asyncio.to_thread(team.store.load)
    return _json({"data": [r.public(now) for r in records]})


async def create_key(request: Request) -> Response:
    team = _admin(request)
    body = await _body(request)
    name = body.get("name")
    if not isinstance(name, str):
        raise InvalidRequestError("name: a string")
    expires = parse_duration(body["expires"]) if body.get("expires") else None
    secret = await _run(team.store.create, name, limits_from(body), expires_in=expires)
    await team.keyring.reload()
    return _json({"name": name, "secret": secret}, status=201)


async def revoke_key(request: Request) -> Response:
    team = _admin(request)
    name = request.path_params["name"]
    await _run(team.store.revoke, name)
    await team.keyring.reload()
    return _json({"name": name, "state": "revoked"})


async def rotate_key(request: Request) -> Response:
    team = _admin(request)
    body = await _body(request)
    grace = parse_duration(body.get("grace") or "1h")
    name = request.path_params["name"]
    secret = await _run(team.store.rotate, name, grace=grace)
    await team.keyring.reload()
    return _json({"name": name, "secret": secret})


async def usage(request: Request) -> Response:
    team = _admin(request)
    by = request.query_params.get("by", "key")
    if by not in GROUPS:
        raise InvalidRequestError(f"by: one of {', '.join(GROUPS)}")
    since_text = request.query_params.get("since")
    try:
        since = datetime.now(UTC) - parse_duration(since_text) if since_text else None
    except KeyError_ as exc:
        raise InvalidRequestError(str(exc)) from exc
    await team.writer.flush()
    rows = await asyncio.to_thread(team.ledger.usage, by, since)
    return _json({"data": rows})


ADMIN_ROUTES = [
    Route("/admin/keys", list_keys, methods=["GET"]),
    Route("/admin/keys", create_key, methods=["POST"]),
    Route("/admin/keys/{name:str}", revoke_key, methods=["DELETE"]),
    Route("/admin/keys/{name:str}/rotate", rotate_key, methods=["POST"]),
    Route("/admin/usage", usage, methods=["GET"]),
]
