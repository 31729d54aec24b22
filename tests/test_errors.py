"""errors.py: every upstream failure maps to the Anthropic error type, status and headers of docs/mapping.md."""

from __future__ import annotations

import json

import httpx
import pytest

from messages_bridge import errors as e
from tests.reliability.faults import RETRIED


def _body(message: str = "upstream says no", code: str | None = None) -> bytes:
    return json.dumps({"error": {"message": message, "type": "invalid_request_error", "code": code}}).encode()


@pytest.mark.parametrize(
    ("status", "client_status", "error_type"),
    [
        (400, 400, "invalid_request_error"),
        (401, 401, "authentication_error"),
        (402, 402, "billing_error"),
        (403, 403, "permission_error"),
        (404, 404, "not_found_error"),
        (409, 409, "conflict_error"),
        (413, 413, "request_too_large"),
        (422, 400, "invalid_request_error"),
        *RETRIED,
        (418, 400, "invalid_request_error"),
        (599, 500, "api_error"),
    ],
)
def test_status_mapping(status: int, client_status: int, error_type: str) -> None:
    error = e.from_upstream_status(status, _body(), {})
    assert (error.status_code, error.error_type) == (client_status, error_type)


def test_message_passes_through_and_defaults_when_absent() -> None:
    assert e.from_upstream_status(400, _body("Invalid 'input[3]'"), {}).message == "Invalid 'input[3]'"
    assert e.from_upstream_status(503, b"<html>bad gateway</html>", {}).message == "Overloaded"
    assert e.from_upstream_status(418, b"", {}).message == "Upstream returned HTTP 418"
    assert e.from_upstream_status(500, b'{"error": "plain string"}', {}).message == "plain string"


def test_upstream_401_never_echoes_the_gateway_key() -> None:
    body = _body("Incorrect API key provided: sk-proj-****cret. You can find your API key at ...", "invalid_api_key")
    error = e.from_upstream_status(401, body, {})
    assert "sk-" not in error.message and "cret" not in error.message


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, "3"),
        ({"retry-after-ms": "1500"}, "2"),
        ({"retry-after-ms": "20", "retry-after": "9"}, "1"),
        # An HTTP date used to be dropped here while the retry policy honoured it: one parser now, so a past date
        # means "retry now" (0) and a fractional value is rounded up to Anthropic's whole seconds.
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, "0"),
        ({"retry-after": "2.5"}, "3"),
        ({"retry-after-ms": "inf"}, None),
        ({"retry-after-ms": "NaN", "retry-after": "4"}, "4"),
        ({"retry-after-ms": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_on_rate_limit(headers: dict[str, str], expected: str | None) -> None:
    error = e.from_upstream_status(429, _body(code="rate_limit_exceeded"), headers)
    assert error.headers.get("retry-after") == expected


def test_retry_after_on_overload_but_not_on_client_errors() -> None:
    assert e.from_upstream_status(503, _body(code="server_is_overloaded"), {"retry-after": "7"}).headers == {
        "retry-after": "7"
    }
    assert e.from_upstream_status(400, _body(), {"retry-after": "7"}).headers == {"x-should-retry": "false"}


def test_insufficient_quota_is_not_retried() -> None:
    error = e.from_upstream_status(429, _body("You exceeded your quota", "insufficient_quota"), {"retry-after": "3"})
    assert error.error_type == "rate_limit_error"
    assert error.headers == {"x-should-retry": "false"}


def test_overload_codes() -> None:
    assert e.from_upstream_status(500, _body(code="server_is_overloaded"), {}).error_type == "overloaded_error"
    assert e.from_upstream_status(503, _body(code="slow_down"), {}).status_code == 529
    assert e.from_upstream_status(429, _body(code="slow_down"), {}).error_type == "rate_limit_error"


def test_context_overflow_wording_with_upstream_numbers() -> None:
    message = (
        "This model's maximum context length is 128,000 tokens. However, your messages resulted in "
        "130,500 tokens. Please reduce the length of the messages."
    )
    error = e.from_upstream_status(400, _body(message, "context_length_exceeded"), {}, estimated_tokens=5)
    assert (error.status_code, error.error_type) == (400, "invalid_request_error")
    assert error.message == "prompt is too long: 130500 tokens > 128000 maximum"


def test_context_overflow_wording_from_estimate() -> None:
    body = _body("Your input exceeds the context window of this model.", "context_length_exceeded")
    error = e.from_upstream_status(400, body, {}, estimated_tokens=450_000, context_window=400_000)
    assert error.message == "prompt is too long: 450000 tokens > 400000 maximum"
    low = e.from_upstream_status(400, body, {}, estimated_tokens=10, context_window=400_000)
    assert low.message == "prompt is too long: 400001 tokens > 400000 maximum"


@pytest.mark.parametrize(
    ("code", "error_type"),
    [
        ("server_error", "api_error"),
        ("rate_limit_exceeded", "rate_limit_error"),
        ("server_is_overloaded", "overloaded_error"),
        ("insufficient_quota", "billing_error"),
        ("vector_store_timeout", "timeout_error"),
        ("invalid_prompt", "invalid_request_error"),
        ("image_too_large", "invalid_request_error"),
        ("bio_policy_violation", "invalid_request_error"),
        ("something_new", "invalid_request_error"),
        (None, "api_error"),
    ],
)
def test_stream_codes(code: str | None, error_type: str) -> None:
    assert e.from_stream_error(code, "m").error_type == error_type


def test_stream_context_overflow_wording() -> None:
    error = e.from_stream_error("context_length_exceeded", "too long", estimated_tokens=500_001, context_window=400_000)
    assert error.message == "prompt is too long: 500001 tokens > 400000 maximum"


@pytest.mark.parametrize(
    ("exc", "status", "error_type"),
    [
        (httpx.ReadTimeout("t"), 504, "timeout_error"),
        (httpx.ConnectTimeout("t"), 504, "timeout_error"),
        (httpx.ConnectError("refused"), 529, "overloaded_error"),
        (httpx.RemoteProtocolError("x"), 500, "api_error"),
        (httpx.ReadError("x"), 500, "api_error"),
        (httpx.DecodingError("x"), 500, "api_error"),
    ],
)
def test_transport_errors(exc: httpx.HTTPError, status: int, error_type: str) -> None:
    error = e.from_transport_error(exc)
    assert (error.status_code, error.error_type) == (status, error_type)


def test_error_body_is_the_anthropic_envelope() -> None:
    body = json.loads(e.error_body(e.RateLimitError("slow down"), "req_abc"))
    assert body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"},
        "request_id": "req_abc",
    }
