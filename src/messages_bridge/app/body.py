"""Reading and decoding request bodies with the limits and errors the Anthropic API gives."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, TypeVar

import msgspec
from starlette.requests import Request

from messages_bridge.errors import InvalidRequestError, RequestTooLargeError, validation_message
from messages_bridge.observability.request_fields import report_unknown_fields
from messages_bridge.protocol import anthropic as a
from messages_bridge.protocol.request_fields import RequestDecoder, refusal

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
R = TypeVar("R", a.MessagesRequest, a.CountTokensRequest)


class _Decoder(Protocol[T_co]):
    def decode(self, body: bytes, /) -> T_co: ...


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


def decode_json(body: bytes, decoder: _Decoder[T]) -> T:
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


def decode_request(body: bytes, decoder: RequestDecoder[R]) -> R:
    """Decode a Messages API body, report the fields nobody decided on, and refuse (400) a refused field."""
    decoded = decode_json(body, decoder)
    if decoded.unknown:
        report_unknown_fields(decoder.endpoint, decoded.unknown)
    if (message := refusal(decoded.request, decoder.endpoint)) is not None:
        raise InvalidRequestError(message)
    return decoded.request
