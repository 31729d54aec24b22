"""Checks every request the gateway sends upstream against the openai SDK's own `ResponseCreateParams` types."""

from __future__ import annotations

from functools import cache
from typing import Any

from openai.types.responses import input_token_count_params as count_params
from openai.types.responses import response_create_params as create_params
from pydantic import TypeAdapter


@cache
def _adapter(streaming: bool) -> TypeAdapter[Any]:
    kind = create_params.ResponseCreateParamsStreaming if streaming else create_params.ResponseCreateParamsNonStreaming
    return TypeAdapter(kind)


@cache
def _count_adapter() -> TypeAdapter[Any]:
    return TypeAdapter(count_params.InputTokenCountParams)


def assert_valid_create(body: dict[str, Any]) -> None:
    """Raise if `body` is not a valid `POST /responses` body (unknown keys included)."""
    allowed = set(create_params.ResponseCreateParamsNonStreaming.__annotations__) | {"stream"}
    unknown = set(body) - allowed
    assert not unknown, f"unknown Responses parameters: {sorted(unknown)}"
    _adapter(bool(body.get("stream"))).validate_python(body)


def assert_valid_count(body: dict[str, Any]) -> None:
    unknown = set(body) - set(count_params.InputTokenCountParams.__annotations__)
    assert not unknown, f"unknown input_tokens parameters: {sorted(unknown)}"
    _count_adapter().validate_python(body)
