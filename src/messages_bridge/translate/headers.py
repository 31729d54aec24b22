"""Upstream rate-limit headers → Anthropic's `anthropic-ratelimit-*` headers (pure; the clock is passed in)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

# (OpenAI kind, Anthropic kind): OpenAI reports requests and tokens per minute.
_KINDS = (("requests", "requests"), ("tokens", "tokens"))
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(value: str) -> float | None:
    """OpenAI's Go-style reset durations (`6m0s`, `1.5s`, `20ms`) in seconds; None when unparseable."""
    text = value.strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ratelimit_headers(upstream: Mapping[str, str], *, now: datetime) -> dict[str, str]:
    """The `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}` the upstream lets us derive."""
    out: dict[str, str] = {}
    for openai_kind, anthropic_kind in _KINDS:
        prefix = f"anthropic-ratelimit-{anthropic_kind}"
        if (limit := upstream.get(f"x-ratelimit-limit-{openai_kind}")) and limit.isdigit():
            out[f"{prefix}-limit"] = limit
        if (remaining := upstream.get(f"x-ratelimit-remaining-{openai_kind}")) and remaining.isdigit():
            out[f"{prefix}-remaining"] = remaining
        reset = upstream.get(f"x-ratelimit-reset-{openai_kind}")
        if reset and (seconds := parse_duration(reset)) is not None:
            out[f"{prefix}-reset"] = _rfc3339(now + timedelta(seconds=seconds))
    return out
