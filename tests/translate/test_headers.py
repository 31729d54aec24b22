"""Rate-limit header mapping (docs/mapping.md, Errors and headers)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messages_bridge.translate.headers import ratelimit_headers

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
NAMES = {f"x-ratelimit-{part}-{kind}" for part in ("limit", "remaining", "reset") for kind in ("requests", "tokens")}


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


@pytest.mark.parametrize(
    "hostile",
    [
        {"x-ratelimit-reset-requests": "99999999999999h", "x-ratelimit-reset-tokens": "1e9h"},
        {"x-ratelimit-limit-requests": "١٢٣", "x-ratelimit-remaining-tokens": "²"},
        {"x-ratelimit-limit-tokens": "inf", "x-ratelimit-remaining-requests": "-1"},
        {"x-ratelimit-limit-requests": "5\r\nx-injected: 1", "x-ratelimit-reset-requests": "nans"},
    ],
)
def test_hostile_values_are_dropped_never_fatal(hostile: dict[str, str]) -> None:
    assert ratelimit_headers(hostile, now=NOW) == {}


@given(st.dictionaries(st.sampled_from(sorted(NAMES)), st.text(max_size=30)))
def test_any_values_give_only_ascii_headers(upstream: dict[str, str]) -> None:
    for value in ratelimit_headers(upstream, now=NOW).values():
        assert value.isascii() and value.isprintable()
