"""Rate-limit header mapping (docs/mapping.md, Errors and headers)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from messages_bridge.translate.headers import parse_duration, ratelimit_headers

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("6m0s", 360.0), ("1.5s", 1.5), ("20ms", 0.02), ("1h2m3s", 3723.0), ("0s", 0.0), ("soon", None), ("5x", None)],
)
def test_parse_duration(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


def test_maps_limits_remaining_and_resets() -> None:
    upstream = {
        "x-ratelimit-limit-requests": "5000",
        "x-ratelimit-remaining-requests": "4999",
        "x-ratelimit-reset-requests": "12ms",
        "x-ratelimit-limit-tokens": "800000",
        "x-ratelimit-remaining-tokens": "799000",
        "x-ratelimit-reset-tokens": "1m30s",
    }
    assert ratelimit_headers(upstream, now=NOW) == {
        "anthropic-ratelimit-requests-limit": "5000",
        "anthropic-ratelimit-requests-remaining": "4999",
        "anthropic-ratelimit-requests-reset": "2026-11-25T12:00:00Z",
        "anthropic-ratelimit-tokens-limit": "800000",
        "anthropic-ratelimit-tokens-remaining": "799000",
        "anthropic-ratelimit-tokens-reset": "2026-11-25T12:01:30Z",
    }


def test_ignores_missing_and_malformed_values() -> None:
    upstream = {"x-ratelimit-limit-requests": "lots", "x-ratelimit-reset-tokens": "later"}
    assert ratelimit_headers(upstream, now=NOW) == {}
