"""Every failure the gateway can report, as typed values, and the one place that maps them.

    GatewayError                      (status, Anthropic error.type)
    ├── InvalidRequestError           400 invalid_request_error
    ├── AuthenticationError           401 authentication_error
    ├── BillingError                  402 billing_error
    ├── PermissionDeniedError         403 permission_error
    ├── NotFoundError                 404 not_found_error
    ├── ConflictError                 409 conflict_error
    ├── RequestTooLargeError          413 request_too_large
    ├── RateLimitError                429 rate_limit_error
    ├── ApiError                      500 api_error
    │   └── UpstreamProtocolError     502 api_error (the upstream's answer is unusable: invalid, oversized, redirect…)
    ├── UpstreamTimeoutError          504 timeout_error
    └── OverloadedError               529 overloaded_error

Foreign failures are converted here by type or status code (never by matching message strings, except the
documented context-overflow wording that clients key compaction on): upstream HTTP statuses, upstream stream
`error`/`response.failed` codes, and httpx transport exceptions.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import ClassVar

import httpx
import msgspec

from messages_bridge.protocol.headers import retry_after_header


class GatewayError(Exception):
    """An error with an HTTP status and an Anthropic `error.type`; `headers` go to the client."""

    status_code: ClassVar[int] = 500
    error_type: ClassVar[str] = "api_error"
    # Set by the upstream client on a failure before any answer (connect error, timeout): safe to fail over.
    before_response: bool = False

    def __init__(
        self, message: str, *, headers: Mapping[str, str] | None = None, details: Mapping[str, object] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.headers: dict[str, str] = dict(headers or {})
        # `error.details` of the envelope (e.g. a message thread's `error_code`, which the SDKs recover by).
        self.details: dict[str, object] | None = dict(details) if details else None


class InvalidRequestError(GatewayError):
    status_code = 400
    error_type = "invalid_request_error"


class AuthenticationError(GatewayError):
    status_code = 401
    error_type = "authentication_error"


class BillingError(GatewayError):
    status_code = 402
    error_type = "billing_error"


class PermissionDeniedError(GatewayError):
    status_code = 403
    error_type = "permission_error"


class NotFoundError(GatewayError):
    status_code = 404
    error_type = "not_found_error"


class ConflictError(GatewayError):
    status_code = 409
    error_type = "conflict_error"


class RequestTooLargeError(GatewayError):
    status_code = 413
    error_type = "request_too_large"


class RateLimitError(GatewayError):
    status_code = 429
    error_type = "rate_limit_error"


class ApiError(GatewayError):
    status_code = 500
    error_type = "api_error"


class UpstreamProtocolError(ApiError):
    """An upstream answer this gateway cannot use (its fault, not ours), reported as a proxy does (502): a 2xx that
    cannot be translated faithfully, a redirect, a body or event over its limit, an encoding it did not ask for."""

    status_code = 502


class UpstreamTimeoutError(GatewayError):
    status_code = 504
    error_type = "timeout_error"


class OverloadedError(GatewayError):
    status_code = 529
    error_type = "overloaded_error"


_BY_STATUS: dict[int, type[GatewayError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    402: BillingError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: RequestTooLargeError,
    422: InvalidRequestError,
    429: RateLimitError,
    500: ApiError,
    502: ApiError,
    503: OverloadedError,
    504: UpstreamTimeoutError,
    529: OverloadedError,
}

# Codes of `response.failed` / stream `error` events (docs/mapping.md, Errors and headers).
_BY_STREAM_CODE: dict[str, type[GatewayError]] = {
    "server_error": ApiError,
    "rate_limit_exceeded": RateLimitError,
    "server_is_overloaded": OverloadedError,
    "context_length_exceeded": InvalidRequestError,
    "insufficient_quota": BillingError,
    "vector_store_timeout": UpstreamTimeoutError,
}

NO_RETRY_CODES = frozenset({"insufficient_quota", "credit_balance_exhausted"})
# Upstream answers that a retry of the same request cannot change (clients are told `x-should-retry: false`).
_PERMANENT_STATUSES = frozenset({400, 401, 402, 403, 404, 413, 422})
_DEFAULT_MESSAGES: dict[type[GatewayError], str] = {
    OverloadedError: "Overloaded",
    UpstreamTimeoutError: "Request timeout",
    ApiError: "Internal server error",
}


class _UpstreamErrorBody(msgspec.Struct, kw_only=True):
    message: str | None = None
    code: str | int | None = None
    type: str | None = None


class _UpstreamErrorEnvelope(msgspec.Struct, kw_only=True):
    error: _UpstreamErrorBody | str | None = None


_ENVELOPE_DECODER = msgspec.json.Decoder(_UpstreamErrorEnvelope)
_CONTEXT_NUMBERS = re.compile(r"(\d[\d,]*)\s*tokens?")


def context_overflow_message(upstream_message: str, *, estimated_tokens: int, context_window: int) -> str:
    """Anthropic's wording for context overflow, which Claude Code keys its compaction on.

    OpenAI's message may carry the numbers ("maximum context length is 128000 tokens … resulted in 130000
    tokens"); when it does not, the local estimate stands in, kept above the maximum so the sentence stays true.
    """
    numbers = [int(n.replace(",", "")) for n in _CONTEXT_NUMBERS.findall(upstream_message)]
    if len(numbers) >= 2:
        maximum, actual = min(numbers[:2]), max(numbers[:2])
    else:
        maximum = numbers[0] if numbers else context_window
        actual = max(estimated_tokens, maximum + 1)
    return f"prompt is too long: {actual} tokens > {maximum} maximum"


def _parse_upstream_body(body: bytes) -> tuple[str | None, str | None]:
    """(message, code) of an upstream error body; (None, None) when it is not the JSON error envelope."""
    try:
        envelope = _ENVELOPE_DECODER.decode(body)
    except msgspec.DecodeError:
        return None, None
    error = envelope.error
    if isinstance(error, str):
        return error, None
    if error is None:
        return None, None
    return error.message, str(error.code) if error.code is not None else None


def never_retry(body: bytes) -> bool:
    """Whether an upstream error body names a code no retry can fix (`insufficient_quota`: out of credit)."""
    return _parse_upstream_body(body)[1] in NO_RETRY_CODES


def from_upstream_status(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    estimated_tokens: int = 0,
    context_window: int = 0,
) -> GatewayError:
    """Map a non-2xx upstream HTTP answer to the Anthropic error the client sees."""
    if status < 400:
        return redirect_error(status)
    message, code = _parse_upstream_body(body)
    error_class = _BY_STATUS.get(status, ApiError if status >= 500 else InvalidRequestError)
    if code == "server_is_overloaded" or (code == "slow_down" and status >= 500):
        error_class = OverloadedError
    text = message or _DEFAULT_MESSAGES.get(error_class) or f"Upstream returned HTTP {status}"
    if status == 401:
        # OpenAI's 401 message quotes part of the key it rejected: the gateway's own key, never the client's.
        text = "The upstream API rejected the gateway's credentials"
    if code == "context_length_exceeded":
        text = context_overflow_message(text, estimated_tokens=estimated_tokens, context_window=context_window)
    out_headers: dict[str, str] = {}
    if code in NO_RETRY_CODES or status in _PERMANENT_STATUSES:
        out_headers["x-should-retry"] = "false"
    elif error_class in (RateLimitError, OverloadedError) and (after := retry_after_header(headers, now=time.time())):
        out_headers["retry-after"] = after
    return error_class(text, headers=out_headers)


def redirect_error(status: int) -> UpstreamProtocolError:
    """A 3xx from the upstream: the gateway never follows redirects (the target could be anything)."""
    message = (
        f"The upstream answered with a redirect (HTTP {status}), which the gateway does not follow; "
        "check OPENAI_BASE_URL"
    )
    return UpstreamProtocolError(message, headers={"x-should-retry": "false"})


def from_stream_error(
    code: str | None, message: str | None, *, estimated_tokens: int = 0, context_window: int = 0
) -> GatewayError:
    """Map an in-band upstream failure (`response.failed`, `error` event) to an Anthropic error."""
    error_class = _BY_STREAM_CODE.get(code or "", InvalidRequestError if code else ApiError)
    if code and (code.startswith(("invalid_", "image_")) or code.endswith("_policy_violation")):
        error_class = InvalidRequestError
    text = message or _DEFAULT_MESSAGES.get(error_class) or "Upstream error"
    if code == "context_length_exceeded":
        text = context_overflow_message(text, estimated_tokens=estimated_tokens, context_window=context_window)
    return error_class(text)


def from_transport_error(exc: httpx.HTTPError) -> GatewayError:
    """Map an httpx exception (no usable HTTP answer) to an Anthropic error; never leaks the URL or key."""
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeoutError("Request timeout: the upstream did not answer in time")
    if isinstance(exc, httpx.ConnectError):
        return OverloadedError("Upstream unreachable: could not connect to the upstream API")
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return ApiError("Upstream connection was closed unexpectedly")
    return ApiError("Upstream request failed")


class _ErrorDetail(msgspec.Struct, omit_defaults=True):
    type: str
    message: str
    details: dict[str, object] | None = None


class _ErrorEnvelope(msgspec.Struct, omit_defaults=True):
    type: str
    error: _ErrorDetail
    request_id: str | None = None


_ENCODER = msgspec.json.Encoder()


def validation_message(exc: msgspec.ValidationError, *, prefix: str = "") -> str:
    """`Expected int, got str - at $.max_tokens` → `max_tokens: Expected int, got str` (Anthropic's style).

    `prefix` names where a separately decoded part sits in the request (`tools` for the tool array).
    """
    text, sep, path = str(exc).rpartition(" - at `$")
    if not sep:
        return f"{prefix}: {exc}" if prefix else str(exc)
    return f"{prefix}{path.rstrip('`')}".lstrip(".") + f": {text}"


def error_body(error: GatewayError, request_id: str | None) -> bytes:
    """The Anthropic error envelope `{"type":"error","error":{...},"request_id":...}` as JSON bytes."""
    envelope = _ErrorEnvelope("error", _ErrorDetail(error.error_type, error.message, error.details), request_id)
    return _ENCODER.encode(envelope)
