"""Upstream header values are read defensively: anything not understood is None, never an exception."""

from __future__ import annotations

import email.utils
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messages_bridge.protocol.headers import (
    MAX_RETRY_AFTER,
    count,
    decimal,
    duration,
    retry_after,
    retry_after_header,
)

NOW = 1_790_000_000.0
# The hostile class: what Python's own parsers accept but a header grammar does not, and absurd magnitudes.
SPECIAL = ["inf", "-inf", "Infinity", "nan", "NaN", "1e3", "1E400", "1_000", "0x10", "+5", "1.", ".5", "5,0"]
NEGATIVE = ["-1", "-0.5"]
NOT_ASCII = ["١٢٣", "²", "１２"]
MALFORMED = ["99999999999999999999999999", "", " ", "5 s", "\x00", "3\r\nx: y"]
HOSTILE = SPECIAL + NEGATIVE + NOT_ASCII + MALFORMED


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_numbers_are_not_understood(value: str) -> None:
    assert decimal(value) is None
    assert count(value) is None
    assert retry_after({"retry-after-ms": value}, now=NOW) is None
    assert retry_after({"retry-after": value}, now=NOW) is None


@pytest.mark.parametrize(
    "value", ["99999999999999h", "1e9h", "infh", "-5s", "5x", "soon", "١s", "1h1h1h1h1h", "9999999h", ""]
)
def test_hostile_durations_are_not_understood(value: str) -> None:
    assert duration(value) is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("6m0s", 360.0), ("1.5s", 1.5), ("20ms", 0.02), ("1h2m3s", 3723.0), ("0s", 0.0), ("soon", None), ("5x", None)],
)
def test_go_durations(text: str, seconds: float | None) -> None:
    assert duration(text) == seconds


def test_counts_are_canonical_ascii_digits() -> None:
    assert count("5000") == "5000"
    assert count(" 007 ") == "7"
    assert count(None) is None


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "2.5"}, 2.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        # A `retry-after-ms` that is not understood falls back to `retry-after` (as the OpenAI SDKs do).
        ({"retry-after-ms": "inf", "retry-after": "9"}, 9.0),
        ({"retry-after-ms": "nan"}, None),
        ({"retry-after": "-4"}, None),  # a negative wait is not understood (it used to mean 0)
        ({"retry-after": str(MAX_RETRY_AFTER + 1)}, None),
        ({"retry-after": email.utils.formatdate(NOW + 30, usegmt=True)}, 30.0),
        ({"retry-after": email.utils.formatdate(NOW - 30, usegmt=True)}, 0.0),  # passed: retry now
        ({"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"}, None),
        ({"retry-after": "Wed, 99 Foo 2015 07:28:00 GMT"}, None),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 -0000"}, 0.0),
        ({"retry-after": "x" * 10_000}, None),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after(headers, now=NOW) == seconds


@pytest.mark.parametrize(
    ("headers", "rendered"),
    [
        ({"retry-after": "3"}, "3"),
        ({"retry-after": "2.5"}, "3"),  # Anthropic sends whole seconds: round up, never retry early
        ({"retry-after-ms": "1"}, "1"),
        ({"retry-after-ms": "0"}, "0"),
        ({"retry-after": email.utils.formatdate(NOW + 90, usegmt=True)}, "90"),
        ({"retry-after-ms": "inf"}, None),
    ],
)
def test_retry_after_for_the_client_is_whole_seconds_rounded_up(headers: dict[str, str], rendered: str | None) -> None:
    assert retry_after_header(headers, now=NOW) == rendered


@given(st.dictionaries(st.sampled_from(["retry-after", "retry-after-ms"]), st.text(max_size=40)))
def test_no_value_raises_and_every_answer_is_a_sane_wait(headers: dict[str, str]) -> None:
    seconds = retry_after(headers, now=NOW)
    assert seconds is None or (math.isfinite(seconds) and 0 <= seconds <= MAX_RETRY_AFTER)
    rendered = retry_after_header(headers, now=NOW)
    assert rendered is None or (rendered.isascii() and rendered.isdigit())


@given(st.text(max_size=40))
def test_no_duration_or_count_raises(value: str) -> None:
    seconds = duration(value)
    assert seconds is None or math.isfinite(seconds)
    digits = count(value)
    assert digits is None or (digits.isascii() and digits.isdigit())
