"""Secret canary: no configured secret reaches a client by any path an upstream's text can take to it.

The upstream quotes the secrets in its error texts in every form a byte-level search would miss: JSON-escaped
(`sk\\u002d…`, or every character escaped), embedded in a longer word, split across network reads of a stream.
The paths: HTTP error bodies (message, or a bare string) of `/v1/messages` (JSON and stream) and of
`count_tokens`, a non-streamed `failed` response, and in a stream the `error` event (flat and nested),
`response.failed` and a `response.completed` whose status is `failed`. Each text must still reach the client
(its markers arrive), with the secrets blanked.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messages_bridge.app.factory import create_app
from messages_bridge.config import Settings
from messages_bridge.demo.events import events_for
from messages_bridge.observability.logs import MASK, Masker, settings_secrets
from tests.conftest import GATEWAY
from tests.observability.helpers import CLIENT_KEY
from tests.reliability.faults import MESSAGE, ok_response, raw_upstream, read_request

PLACEHOLDER = "@@SECRET@@"
BEFORE, AFTER = "CANARY-before", "CANARY-after"
UPSTREAM_KEYS = ("sk-upstream-secret", "proj_UpstreamCanaryKey9")  # `sk-`-shaped, and not: the pattern is no help
AUTH = {"x-api-key": CLIENT_KEY}
CHUNK = 5  # bytes per network write of a stream: every secret is cut across several reads


def variants(secret: str) -> list[str]:
    """JSON string fragments that decode to (a text containing) `secret`."""
    dash = secret.replace("-", "\\u002d").replace("_", "\\u005f")
    every = "".join(f"\\u{ord(c):04x}" for c in secret)
    return [secret, dash, every, f"xx{dash}yy", f"{secret}{secret}"]


def quoting(text_of: Callable[[str], Any]) -> Callable[[str], bytes]:
    """A JSON document built by `text_of(message)`, its message quoting a secret in the given form."""
    template = json.dumps(text_of(f"{BEFORE} {PLACEHOLDER} {AFTER}"))
    return lambda fragment: template.replace(PLACEHOLDER, fragment).encode()


def failed_response(message: str, status: str = "failed") -> dict[str, Any]:
    return {**ok_response(), "status": status, "output": [], "error": {"code": "server_error", "message": message}}


def sse(*events: bytes) -> bytes:
    """SSE frames named by their `type` (the escapes are left in the data as they are)."""
    names = [json.loads(event)["type"].encode() for event in events]
    return b"".join(b"event: %s\ndata: %s\n\n" % (name, event) for name, event in zip(names, events, strict=True))


STREAM_PREFIX = b"".join(json.dumps(e).encode() + b"\x00" for e in events_for(ok_response("hello there"))[:5])


def streamed(error_event: Callable[[str], Any]) -> Callable[[str], bytes]:
    """A stream that starts a text answer, then fails with `error_event`."""
    document = quoting(error_event)
    prefix = [event for event in STREAM_PREFIX.split(b"\x00") if event]
    return lambda fragment: sse(*prefix, document(fragment))


MESSAGES, COUNT = "/v1/messages", "/v1/messages/count_tokens"
ERROR_MESSAGE = quoting(lambda m: {"error": {"message": m, "code": "invalid_value"}})
ERROR_STRING = quoting(lambda m: {"error": m})
FAILED = quoting(failed_response)
CANCELLED = quoting(lambda m: failed_response(m, "cancelled"))
STREAM_ERROR_FLAT = streamed(lambda m: {"type": "error", "code": "server_error", "message": m})
STREAM_ERROR_NESTED = streamed(lambda m: {"type": "error", "error": {"code": "invalid_prompt", "message": m}})
STREAM_FAILED = streamed(lambda m: {"type": "response.failed", "response": failed_response(m)})
STREAM_COMPLETED_FAILED = streamed(lambda m: {"type": "response.completed", "response": failed_response(m)})

# (name, route, stream, upstream status, body builder)
PATHS: list[tuple[str, str, bool, int, Callable[[str], bytes]]] = [
    *[
        (f"http_{status}_{kind}_{'stream' if stream else 'json'}", MESSAGES, stream, status, builder)
        for status in (400, 429, 500, 503)
        for stream in (False, True)
        for kind, builder in (("message", ERROR_MESSAGE), ("string", ERROR_STRING))
    ],
    ("count_tokens_http_400", COUNT, False, 400, ERROR_MESSAGE),
    ("json_failed_response", MESSAGES, False, 200, FAILED),
    ("json_cancelled_response", MESSAGES, False, 200, CANCELLED),
    ("stream_error_flat", MESSAGES, True, 200, STREAM_ERROR_FLAT),
    ("stream_error_nested", MESSAGES, True, 200, STREAM_ERROR_NESTED),
    ("stream_response_failed", MESSAGES, True, 200, STREAM_FAILED),
    ("stream_completed_but_failed", MESSAGES, True, 200, STREAM_COMPLETED_FAILED),
]


def _http_answer(status: int, body: bytes, stream: bool) -> list[bytes]:
    if stream and status == 200:
        head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
        # The failing event's message (the secret in it) arrives in pieces, in separate network reads.
        start, end = body.rindex(BEFORE.encode()), body.rindex(AFTER.encode())
        return [head + body[:start], *(body[i : i + CHUNK] for i in range(start, end, CHUNK)), body[end:]]
    head = b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % (
        status,
        len(body),
    )
    return [head + body]


def client_texts(reply: httpx.Response, stream: bool) -> list[str]:
    """The error messages the client decodes from the reply."""
    if reply.headers.get("content-type", "").startswith("text/event-stream"):
        frames = [json.loads(line[6:]) for line in reply.text.splitlines() if line.startswith("data: ")]
        return [f["error"]["message"] for f in frames if f.get("type") == "error"]
    return [reply.json()["error"]["message"]]


@pytest.mark.parametrize("upstream_key", UPSTREAM_KEYS)
@pytest.mark.parametrize(("name", "route", "stream", "status", "build"), PATHS, ids=[p[0] for p in PATHS])
async def test_no_secret_reaches_a_client_by_any_upstream_text(
    app_factory: Callable[[Settings], Any],
    upstream_key: str,
    name: str,
    route: str,
    stream: bool,
    status: int,
    build: Callable[[str], bytes],
) -> None:
    secrets = (upstream_key, CLIENT_KEY)
    answers: deque[list[bytes]] = deque(
        _http_answer(status, build(fragment), stream) for secret in secrets for fragment in variants(secret)
    )
    sent = len(answers)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        for part in answers.popleft():
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.001)  # separate reads: the secret arrives in pieces

    async with raw_upstream(handler) as upstream:
        values = {"openai_api_key": upstream_key, "api_keys": CLIENT_KEY, "max_retries": 0}
        settings = Settings.model_validate({**values, "openai_base_url": upstream.base_url})
        app = await app_factory(settings)
        count = {k: MESSAGE[k] for k in ("model", "messages")}
        body = {**MESSAGE, "stream": stream} if route == MESSAGES else count
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY) as http:
            replies = [await http.post(route, json=body, headers=AUTH) for _ in range(sent)]
    assert not answers
    for reply in replies:
        assert reply.status_code >= 400 or "event: error" in reply.text, (name, reply.text[:300])
        texts = client_texts(reply, stream)
        assert len(texts) == 1 and BEFORE in texts[0] and AFTER in texts[0], (name, texts)  # the text got through
        for secret in secrets:
            for seen in (reply.text, *texts, str(reply.headers)):
                assert secret not in seen, (name, seen)


def test_the_url_password_is_a_configured_secret() -> None:
    url = "https://user:url-pass-canary@example.test/v1"
    settings = Settings.model_validate({"openai_api_key": "k" * 8, "openai_base_url": url})
    assert "url-pass-canary" in settings_secrets(settings)
    assert Masker(settings_secrets(settings))("see url-pass-canary!") == f"see {MASK}!"


# --- generated: any escaping, any surrounding word, any cut of the stream --------------------------------------------

WORD = st.text(alphabet="abcXYZ019-_", max_size=5)


@st.composite
def quoted_secret(draw: st.DrawFn) -> str:
    """A JSON string fragment decoding to a secret inside a longer word, any subset of its characters escaped."""
    secret = draw(st.sampled_from([UPSTREAM_KEYS[0], CLIENT_KEY]))
    escaped = draw(st.lists(st.booleans(), min_size=len(secret), max_size=len(secret)))
    body = "".join(f"\\u{ord(c):04x}" if e else c for c, e in zip(secret, escaped, strict=True))
    return draw(WORD) + body + draw(WORD)


@pytest.fixture
async def in_process() -> AsyncIterator[tuple[httpx.AsyncClient, list[httpx.Response]]]:
    """A gateway whose upstream (MockTransport) gives the last answer of the list."""
    answers: list[httpx.Response] = []
    values = {"openai_api_key": UPSTREAM_KEYS[0], "api_keys": CLIENT_KEY, "max_retries": 0}
    app = create_app(Settings.model_validate(values), transport=httpx.MockTransport(lambda _: answers[-1]))
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY)
    async with app.router.lifespan_context(app), http:
        yield http, answers


async def _pieces(body: bytes, sizes: list[int]) -> AsyncIterator[bytes]:
    start = 0
    for size in [*sizes, len(body)]:
        if start < len(body):
            yield body[start : start + size]
        start += size


SEARCH = settings(
    max_examples=200,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TEXT_PATHS = st.sampled_from(["http", "stream_error", "stream_failed", "json_failed"])
CUTS = st.lists(st.integers(1, 9), max_size=200)


@pytest.mark.slow
@SEARCH
@given(TEXT_PATHS, quoted_secret(), CUTS)
async def test_no_escaping_or_cut_lets_a_secret_through(
    in_process: tuple[httpx.AsyncClient, list[httpx.Response]], path: str, fragment: str, sizes: list[int]
) -> None:
    await check_secret_kept_out(in_process, path, fragment, sizes)


@settings(SEARCH, max_examples=30)
@given(TEXT_PATHS, quoted_secret(), CUTS)
async def test_no_escaping_or_cut_lets_a_secret_through_quick(
    in_process: tuple[httpx.AsyncClient, list[httpx.Response]], path: str, fragment: str, sizes: list[int]
) -> None:
    """The search above, short, for the quick loop (the whole suite runs both)."""
    await check_secret_kept_out(in_process, path, fragment, sizes)


async def check_secret_kept_out(
    in_process: tuple[httpx.AsyncClient, list[httpx.Response]], path: str, fragment: str, sizes: list[int]
) -> None:
    http, answers = in_process
    build = {"http": ERROR_MESSAGE, "stream_error": STREAM_ERROR_FLAT, "stream_failed": STREAM_FAILED}
    body = (build.get(path) or FAILED)(fragment)
    stream = path.startswith("stream")
    if stream:
        headers = {"content-type": "text/event-stream"}
        answers.append(httpx.Response(200, headers=headers, content=_pieces(body, sizes)))
    else:
        answers.append(httpx.Response(400 if path == "http" else 200, content=body))
    reply = await http.post(MESSAGES, json={**MESSAGE, "stream": stream}, headers=AUTH)
    texts = client_texts(reply, stream)
    assert len(texts) == 1 and BEFORE in texts[0] and AFTER in texts[0], texts
    for secret in (UPSTREAM_KEYS[0], CLIENT_KEY):
        assert secret not in reply.text and secret not in texts[0]
