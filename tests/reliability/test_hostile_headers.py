"""Odd upstream headers are dropped, never fatal (stream and non-stream); out-of-quota is never retried."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messages_bridge.app.factory import create_app
from messages_bridge.config import Settings
from messages_bridge.demo.events import encode_sse, events_for
from messages_bridge.demo.server import Reply
from tests.conftest import GATEWAY, FakeUpstream
from tests.reliability.faults import MESSAGE, ok_response
from tests.reliability.test_faults import assert_error, failure


def wire(text: str) -> str:
    """`text` as its UTF-8 bytes on the wire (the scripted upstream writes header values as latin-1)."""
    return text.encode().decode("latin-1")


HOSTILE_SUCCESS = {
    "x-ratelimit-reset-requests": "99999999999999h",
    "x-ratelimit-reset-tokens": "infs",
    "x-ratelimit-limit-requests": wire("١٢٣"),  # Arabic-Indic digits: `str.isdigit()` says yes
    "x-ratelimit-remaining-requests": wire("²"),
    "x-ratelimit-limit-tokens": "1e400",
    "x-ratelimit-remaining-tokens": "-5",
    "retry-after-ms": "inf",
    "x-request-id": wire("req_ü") + "x" * 300,
}
SANE = {"x-ratelimit-limit-requests": "500", "x-ratelimit-reset-tokens": "30s"}
HOSTILE_WAITS = ["inf", "-inf", "nan", "NaN", "-1", "1e400", "99999999999999999999", wire("٣"), ""]


def _ok(stream: bool, headers: dict[str, str]) -> Reply:
    if stream:
        return Reply(chunks=[encode_sse(events_for(ok_response()))], headers=headers)
    return Reply(json_body=ok_response(), headers=headers)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_a_billed_success_with_odd_headers_is_delivered(
    open_gateway: Any, upstream: FakeUpstream, stream: bool
) -> None:
    upstream.script.push(_ok(stream, {**HOSTILE_SUCCESS, **SANE}))
    gateway = await open_gateway()
    reply = await gateway.post({**MESSAGE, "stream": stream})
    assert reply.status_code == 200, reply.text
    assert "message_stop" in reply.text if stream else reply.json()["stop_reason"] == "end_turn"
    limits = {k: v for k, v in reply.headers.items() if k.startswith("anthropic-ratelimit-")}
    # The sane values pass; every hostile one is dropped.
    assert set(limits) == {"anthropic-ratelimit-requests-limit", "anthropic-ratelimit-tokens-reset"}
    assert limits["anthropic-ratelimit-requests-limit"] == "500"
    await gateway.released()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("value", HOSTILE_WAITS)
async def test_a_rate_limit_with_an_odd_wait_is_a_429_without_one(
    open_gateway: Any, upstream: FakeUpstream, stream: bool, value: str
) -> None:
    upstream.script.push(failure(429, "rate_limit_exceeded", **{"retry-after-ms": value, "retry-after": value}))
    gateway = await open_gateway(max_retries=0)
    reply = await gateway.post({**MESSAGE, "stream": stream})
    assert_error(reply, 429, "rate_limit_error")
    assert "retry-after" not in reply.headers
    await gateway.released()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_an_odd_retry_after_ms_falls_back_to_retry_after(
    open_gateway: Any, upstream: FakeUpstream, stream: bool
) -> None:
    upstream.script.push(failure(429, "rate_limit_exceeded", **{"retry-after-ms": "nan", "retry-after": "2.5"}))
    gateway = await open_gateway(max_retries=0)
    reply = await gateway.post({**MESSAGE, "stream": stream})
    assert_error(reply, 429, "rate_limit_error")
    assert reply.headers["retry-after"] == "3"  # whole seconds, rounded up


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("code", ["insufficient_quota", "credit_balance_exhausted"])
async def test_out_of_quota_is_never_retried(
    open_gateway: Any, upstream: FakeUpstream, stream: bool, code: str
) -> None:
    upstream.script.push(*[failure(429, code, **{"retry-after-ms": "10"})] * 3)
    gateway = await open_gateway(max_retry_wait=0.05)
    reply = await gateway.post({**MESSAGE, "stream": stream})
    assert_error(reply, 429, "rate_limit_error")
    assert reply.headers["x-should-retry"] == "false"
    assert len(upstream.requests) == 1  # one billed-nothing call, not three
    await gateway.released()


async def test_an_ordinary_rate_limit_is_still_retried(open_gateway: Any, upstream: FakeUpstream) -> None:
    upstream.script.push(failure(429, "rate_limit_exceeded", **{"retry-after-ms": "10"}))
    gateway = await open_gateway(max_retry_wait=0.05)
    assert (await gateway.post()).status_code == 200
    assert len(upstream.requests) == 2


# --- generated: any header values, any answer ----------------------------------------------------------------------

HEADER_NAMES = [
    *(f"x-ratelimit-{part}-{kind}" for part in ("limit", "remaining", "reset") for kind in ("requests", "tokens")),
    "retry-after",
    "retry-after-ms",
    "x-should-retry",
    "x-request-id",
]
# Raw header bytes as a peer may send them: numbers Python would accept but HTTP does not, any text (UTF-8), any
# bytes (decoded as latin-1 by httpx); never CR/LF/NUL, which the HTTP parser itself refuses.
SPECIAL_VALUES = st.sampled_from([b"inf", b"nan", b"-1", b"1e400", b"99999999999999h", "١٢".encode(), b"", b"0"])
HEADER_VALUES = (SPECIAL_VALUES | st.text(max_size=24).map(str.encode) | st.binary(max_size=24)).filter(
    lambda v: not any(c in v for c in b"\r\n\x00")
)
ANSWERS = st.sampled_from(["json", "stream", "429", "503"])


def _answer(kind: str, headers: list[tuple[bytes, bytes]]) -> httpx.Response:
    if kind == "json":
        return httpx.Response(200, headers=headers, json=ok_response())
    if kind == "stream":
        sse = [(b"content-type", b"text/event-stream"), *headers]
        return httpx.Response(200, headers=sse, content=encode_sse(events_for(ok_response())))
    body = {"error": {"message": "limited", "code": "rate_limit_exceeded" if kind == "429" else "server_error"}}
    return httpx.Response(int(kind), headers=headers, json=body)


@pytest.fixture
async def fuzzed() -> AsyncIterator[tuple[httpx.AsyncClient, list[httpx.Response]]]:
    """An in-process gateway whose upstream gives the last answer of the list (retries on, waits tiny)."""
    answers: list[httpx.Response] = []
    values = {"openai_api_key": "sk-fuzz", "max_retries": 1, "max_retry_wait": 0.01}
    app = create_app(Settings.model_validate(values), transport=httpx.MockTransport(lambda _: answers[-1]))
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY)
    async with app.router.lifespan_context(app), http:
        yield http, answers


HEADERS = st.lists(st.tuples(st.sampled_from(HEADER_NAMES).map(str.encode), HEADER_VALUES), max_size=6)
SEARCH = settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.slow
@SEARCH
@given(ANSWERS, HEADERS)
async def test_no_header_value_breaks_any_answer(
    fuzzed: tuple[httpx.AsyncClient, list[httpx.Response]], kind: str, headers: list[tuple[bytes, bytes]]
) -> None:
    await check_answer(fuzzed, kind, headers)


@settings(SEARCH, max_examples=30)
@given(ANSWERS, HEADERS)
async def test_no_header_value_breaks_any_answer_quick(
    fuzzed: tuple[httpx.AsyncClient, list[httpx.Response]], kind: str, headers: list[tuple[bytes, bytes]]
) -> None:
    """The search above, short, for the quick loop (the whole suite runs both)."""
    await check_answer(fuzzed, kind, headers)


async def check_answer(
    fuzzed: tuple[httpx.AsyncClient, list[httpx.Response]], kind: str, headers: list[tuple[bytes, bytes]]
) -> None:
    http, answers = fuzzed
    answers.append(_answer(kind, headers))
    reply = await http.post("/v1/messages", json={**MESSAGE, "stream": kind == "stream"})
    assert reply.status_code == {"json": 200, "stream": 200, "429": 429, "503": 529}[kind], reply.text
    assert "message_stop" in reply.text if kind == "stream" else True
    for name, value in reply.headers.raw:
        assert value.isascii() and value.decode().isprintable(), (name, value)
