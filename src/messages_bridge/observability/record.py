"""The per-request record: what the access log and the metrics report about one request (never content).

The app's outermost middleware makes a fresh one per request and puts it in the ASGI scope's per-request state
(`attach`): the access log, which emits it at the end, or `RecordScope` without it. Whatever fills it in gets it
passed explicitly: a route or a middleware takes it from the scope (`record_of`), the relays get it as an
argument and record the facts of the upstream call on it once (`apply`). Nothing reaches it ambiently.

The one per-request value that stays ambient is the correlation id (asgi-correlation-id's contextvar): every log
line of the request carries it, including lines logged by libraries (uvicorn, httpx, aiohttp) that no argument
reaches, and the logging filter can only find it there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Scope

from messages_bridge.observability.upstream import UpstreamFacts
from messages_bridge.protocol import anthropic as a

_STATE_KEY = "record"  # in `scope["state"]`, i.e. `request.state.record`


@dataclass(slots=True)
class RequestRecord:
    """Sizes, counts, timings, usage and names only: an allowlist by construction."""

    route: str = ""
    started: float = field(default_factory=time.perf_counter)
    model: str | None = None
    upstream_model: str | None = None
    stream: bool = False
    messages: int = 0
    blocks: dict[str, int] = field(default_factory=dict)
    tools: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    status: int | None = None
    stop_reason: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0
    upstream_status: int | None = None
    upstream_request_id: str | None = None
    upstream_started: float | None = None
    upstream_first_byte: float | None = None
    upstream_done: float | None = None
    upstream_error_type: str | None = None
    first_byte: float | None = None
    first_token: float | None = None
    error_type: str | None = None
    retries: int = 0
    disconnected: bool = False
    token_count_exact: bool | None = None
    upstream: str | None = None  # the configured upstream name that answered (or failed last)
    target_position: int | None = None  # its position in the route's targets (0: the first)
    fallbacks: int = 0  # attempts given up before the last one (other keys or targets)
    key_index: int | None = None  # which of the upstream's keys, by index (never the key)
    web_search_mode: str | None = None  # hosted, gateway or off, when the request offered web_search
    web_searches: int = 0
    web_search_errors: int = 0
    web_search_ms: float = 0.0  # time spent in the gateway's search backend
    # Message threads: created / continued / replayed / rejected, the thread's size, whether the reply was stored.
    thread: str | None = None
    thread_error: str | None = None
    thread_turns: int | None = None
    thread_bytes: int | None = None
    thread_stored: bool | None = None

    def apply(self, facts: UpstreamFacts) -> None:
        """The facts of the request's upstream call, once it is over: the one place they reach the record."""
        if facts.model is not None:
            self.upstream_model = facts.model
        self.upstream_started = facts.started
        self.upstream_first_byte = facts.first_byte
        self.upstream_done = facts.done
        self.upstream_status = facts.status
        self.upstream_request_id = facts.request_id
        self.upstream_error_type = facts.error_type
        self.retries = facts.retries
        self.upstream = facts.upstream
        self.target_position = facts.target_position
        self.key_index = facts.key_index
        self.fallbacks = facts.fallbacks
        self.token_count_exact = facts.token_count_exact
        if (usage := facts.usage) is not None:
            self._usage(usage, facts.stop_reason)
        if facts.first_token is not None:
            self.first_token = facts.first_token
        if facts.stream_error_type is not None:
            self.error_type = facts.stream_error_type
        if facts.cut:
            self.disconnected = True
        self.web_searches = max(self.web_searches, facts.web_searches)
        self.web_search_errors += facts.web_search_errors
        self.web_search_ms += facts.web_search_seconds * 1000

    def _usage(self, usage: a.Usage, stop_reason: str | None) -> None:
        self.stop_reason = stop_reason
        self.input_tokens = usage["input_tokens"]
        self.output_tokens = usage["output_tokens"]
        self.cache_read_tokens = usage["cache_read_input_tokens"]
        self.cache_creation_tokens = usage["cache_creation_input_tokens"]
        details = usage.get("output_tokens_details")
        self.reasoning_tokens = details.get("thinking_tokens", 0) if details else 0
        if (server_tools := usage.get("server_tool_use")) is not None:
            self.web_searches = server_tools["web_search_requests"]


class NoRecordError(RuntimeError):
    """A scope without a record: the request was not handled through the app's outermost middleware."""


def attach(scope: Scope, record: RequestRecord) -> None:
    """Make `record` this request's (in the scope's per-request state, which uvicorn copies for each request)."""
    state: dict[str, Any] = scope.setdefault("state", {})
    state[_STATE_KEY] = record


def record_of(scope: Scope) -> RequestRecord:
    """The record of the request this scope belongs to; raises `NoRecordError` when none was attached."""
    record = scope.get("state", {}).get(_STATE_KEY)
    if not isinstance(record, RequestRecord):
        raise NoRecordError("no request record in this scope (not served through the access log or RecordScope?)")
    return record


def _ms(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round((end - start) * 1000, 2)


# The access record's fields, in printed order: the one list. `log_fields` builds exactly these, the formatter
# prints no others (observability/logs.py), and README.md lists them; tests/observability/test_access_fields.py
# keeps the three equal.
ACCESS_FIELDS = (
    "route",
    "status",
    "model",
    "upstream_model",
    "stream",
    "messages",
    "blocks",
    "tools",
    "bytes_in",
    "bytes_out",
    "stop_reason",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_creation_tokens",
    "reasoning_tokens",
    "upstream_status",
    "upstream_request_id",
    "upstream_error_type",
    "total_ms",
    "upstream_ms",
    "upstream_ttfb_ms",
    "ttfb_ms",
    "first_token_ms",
    "error_type",
    "retries",
    "disconnected",
    "token_count_exact",
    "upstream",
    "target_position",
    "fallbacks",
    "key_index",
    "web_search_mode",
    "web_searches",
    "web_search_errors",
    "web_search_ms",
    "thread",
    "thread_error",
    "thread_turns",
    "thread_bytes",
    "thread_stored",
)


def log_fields(record: RequestRecord, finished: float) -> dict[str, object]:
    """The access-log fields of a finished request: names, counts, sizes, usage and timings (milliseconds)."""
    return {
        "route": record.route,
        "status": record.status,
        "model": record.model,
        "upstream_model": record.upstream_model,
        "stream": record.stream,
        "messages": record.messages,
        "blocks": record.blocks,
        "tools": record.tools,
        "bytes_in": record.bytes_in,
        "bytes_out": record.bytes_out,
        "stop_reason": record.stop_reason,
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "cache_read_tokens": record.cache_read_tokens,
        "cache_creation_tokens": record.cache_creation_tokens,
        "reasoning_tokens": record.reasoning_tokens,
        "upstream_status": record.upstream_status,
        "upstream_request_id": record.upstream_request_id,
        "upstream_error_type": record.upstream_error_type,
        "total_ms": _ms(record.started, finished),
        "upstream_ms": _ms(record.upstream_started, record.upstream_done),
        "upstream_ttfb_ms": _ms(record.upstream_started, record.upstream_first_byte),
        "ttfb_ms": _ms(record.started, record.first_byte),
        "first_token_ms": _ms(record.started, record.first_token),
        "error_type": record.error_type,
        "retries": record.retries,
        "disconnected": record.disconnected,
        "token_count_exact": record.token_count_exact,
        "upstream": record.upstream,
        "target_position": record.target_position,
        "fallbacks": record.fallbacks,
        "key_index": record.key_index,
        "web_search_mode": record.web_search_mode,
        "web_searches": record.web_searches,
        "web_search_errors": record.web_search_errors,
        "web_search_ms": round(record.web_search_ms, 2),
        "thread": record.thread,
        "thread_error": record.thread_error,
        "thread_turns": record.thread_turns,
        "thread_bytes": record.thread_bytes,
        "thread_stored": record.thread_stored,
    }
