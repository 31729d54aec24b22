"""The per-request record: what the access log and the metrics report about one request (never content).

Routes, the relay and the stream loop fill it in; the access-log middleware binds a fresh one per request in
a contextvar (pure ASGI middleware, so the binding is visible to the handler) and emits it at the end.
Outside a bound request, `current()` returns a throwaway record so callers never need to check.
"""

from __future__ import annotations

import time
from contextvars import ContextVar, Token
from dataclasses import dataclass, field


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
    first_token: float | None = None
    error_type: str | None = None
    retries: int = 0
    disconnected: bool = False
    token_count_exact: bool | None = None


_CURRENT: ContextVar[RequestRecord | None] = ContextVar("messages_bridge_record", default=None)


def current() -> RequestRecord:
    """The record of the request being handled (a throwaway one outside a request)."""
    record = _CURRENT.get()
    return record if record is not None else RequestRecord()


def bind(record: RequestRecord) -> Token[RequestRecord | None]:
    return _CURRENT.set(record)


def unbind(token: Token[RequestRecord | None]) -> None:
    _CURRENT.reset(token)
