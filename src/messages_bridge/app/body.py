"""Reading and decoding request bodies with the limits and errors the Anthropic API gives."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import msgspec
from starlette.requests import Request

from messages_bridge.errors import InvalidRequestError, RequestTooLargeError, validation_message

T = TypeVar("T")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing (413) anything over `limit` bytes before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLargeError(f"Request exceeds the maximum allowed number of bytes ({limit})")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLargeError(f"Request exceeds the maximum allowed number of bytes ({limit})")
        chunks.append(chunk)
    return b"".join(chunks)


def check_content_type(headers: Mapping[str, str]) -> None:
    content_type = headers.get("content-type", "application/json")
    if not content_type.split(";", 1)[0].strip().lower().endswith("json"):
        raise InvalidRequestError(f"Unsupported content-type '{content_type[:64]}': send application/json")


def decode_json(body: bytes, decoder: msgspec.json.Decoder[T]) -> T:
    """Decode and validate; msgspec's error names the JSON path of the offending field."""
    if not body.strip():
        raise InvalidRequestError("Request body is empty: expected a JSON object")
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidRequestError(validation_message(exc)) from exc
    except msgspec.DecodeError as exc:
        raise InvalidRequestError(f"Invalid JSON in request body: {exc}") from exc
    except UnicodeDecodeError as exc:  # msgspec reports invalid UTF-8 inside a string this way
        raise InvalidRequestError("Invalid JSON in request body: invalid UTF-8") from exc
    except RecursionError as exc:  # nesting deeper than the interpreter's recursion limit
        raise InvalidRequestError("Invalid JSON in request body: nested too deeply") from exc
