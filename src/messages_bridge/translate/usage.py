"""Responses usage → Anthropic usage (shared by the non-streaming and the streaming translators).

Token counts come from the upstream, so they are clamped at zero: a negative count (a buggy or hostile server) is
meaningless, would reach the client as a negative bill and would make Prometheus counters raise. The answer itself
is still delivered; only the impossible number is replaced.
"""

from __future__ import annotations

from dataclasses import dataclass

from messages_bridge.protocol import anthropic as a
from messages_bridge.protocol import responses as r


def _count(value: int) -> int:
    return value if value > 0 else 0


def empty_usage(*, input_tokens: int = 0, output_tokens: int = 0) -> a.Usage:
    """Usage without cache activity: what the gateway reports when it has only its own estimates (or nothing)."""
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


@dataclass(slots=True)
class TokenUsage:
    """The four token counts as plain numbers: what a multi-round answer sums and what a key's limits settle."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read: int = 0
    cache_creation: int = 0

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens + self.cache_read + self.cache_creation

    def add(self, usage: a.Usage) -> None:
        self.input_tokens += usage["input_tokens"]
        self.output_tokens += usage["output_tokens"]
        self.cache_read += usage["cache_read_input_tokens"]
        self.cache_creation += usage["cache_creation_input_tokens"]


def to_anthropic_usage(usage: r.ResponseUsage | None, *, service_tier: str | None = None) -> a.Usage:
    """Anthropic's `input_tokens` excludes cache reads and writes; OpenAI's includes them."""
    if usage is None:
        return empty_usage()
    details = usage.input_tokens_details
    cached = _count(details.cached_tokens) if details else 0
    written = _count(details.cache_write_tokens) if details else 0
    out: a.Usage = {
        "input_tokens": _count(usage.input_tokens - cached - written),
        "output_tokens": _count(usage.output_tokens),
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
        "service_tier": "priority" if service_tier == "priority" else "standard",
    }
    if usage.output_tokens_details is not None:
        out["output_tokens_details"] = {"thinking_tokens": _count(usage.output_tokens_details.reasoning_tokens)}
    return out
