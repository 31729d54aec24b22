"""Upstream rate-limit headers → Anthropic's `anthropic-ratelimit-*` headers (pure; the clock is passed in).

Values are read by `protocol.headers`: one that is not understood is left out, never passed on or fatal.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from messages_bridge.protocol.headers import count, duration

# (OpenAI kind, Anthropic kind): OpenAI reports requests and tokens per minute.
_KINDS = (("requests", "requests"), ("tokens", "tokens"))


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ratelimit_headers(upstream: Mapping[str, str], *, now: datetime) -> dict[str, str]:
    """The `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}` the upstream lets us derive."""
    out: dict[str, str] = {}
    for openai_kind, anthropic_kind in _KINDS:
        prefix = f"anthropic-ratelimit-{anthropic_kind}"
        if (limit := count(upstream.get(f"x-ratelimit-limit-{openai_kind}"))) is not None:
            out[f"{prefix}-limit"] = limit
        if (remaining := count(upstream.get(f"x-ratelimit-remaining-{openai_kind}"))) is not None:
            out[f"{prefix}-remaining"] = remaining
        if (seconds := duration(upstream.get(f"x-ratelimit-reset-{openai_kind}"))) is not None:
            out[f"{prefix}-reset"] = _rfc3339(now + timedelta(seconds=seconds))
    return out
