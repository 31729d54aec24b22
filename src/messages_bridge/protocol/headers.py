"""Reading the upstream's HTTP header values, defensively: what is not understood is `None`, never an exception.

Header values come from an untrusted peer. Python's own number parsing is too lenient for them (`float()` takes
`inf`, `nan`, `1e400`, `1_000` and non-ASCII digits; `str.isdigit()` takes `²`), so every value here must match an
ASCII grammar and lie within a sane range, or it is dropped. The one `retry-after` parser lives here: the retry
policy waits what it returns and the client-facing `retry-after` is rendered from it.
"""

from __future__ import annotations

import email.utils
import math
import re
from collections.abc import Mapping
from datetime import UTC

# A wait longer than a day is not a rate limit anybody means: treat it as not understood.
MAX_RETRY_AFTER = 86_400.0
# Rate-limit windows reset within minutes or days; a year bounds what a reset time may say.
MAX_RESET = 366 * 86_400.0
_DECIMAL = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,9})?", re.ASCII)
_COUNT = re.compile(r"[0-9]{1,18}", re.ASCII)
_DURATION = re.compile(r"(?:[0-9]{1,15}(?:\.[0-9]{1,9})?(?:ms|h|m|s)){1,4}", re.ASCII)
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|h|m|s)", re.ASCII)
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_MAX_DATE_LENGTH = 64


def decimal(value: str | None) -> float | None:
    """A non-negative ASCII decimal (`3`, `2.5`); None for anything else (`inf`, `nan`, `-1`, `1e3`, `٣`)."""
    if value is None or not _DECIMAL.fullmatch(text := value.strip()):
        return None
    return float(text)


def count(value: str | None) -> str | None:
    """A non-negative ASCII integer, as the canonical digits to pass on; None for anything else."""
    if value is None or not _COUNT.fullmatch(text := value.strip()):
        return None
    return str(int(text))


def duration(value: str | None) -> float | None:
    """OpenAI's Go-style reset durations (`6m0s`, `1.5s`, `20ms`) in seconds, up to `MAX_RESET`; else None."""
    if value is None or not _DURATION.fullmatch(text := value.strip()):
        return None
    seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART.findall(text))
    return seconds if seconds <= MAX_RESET else None


def _http_date(value: str, now: float) -> float | None:
    """Seconds from `now` until an HTTP date (`Wed, 21 Oct 2015 07:28:00 GMT`); 0 once it has passed."""
    if len(value) > _MAX_DATE_LENGTH:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:  # `-0000` ("no zone information") means UTC in HTTP
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - now
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _bounded(seconds: float | None) -> float | None:
    return seconds if seconds is not None and seconds <= MAX_RETRY_AFTER else None


def retry_after(headers: Mapping[str, str], *, now: float) -> float | None:
    """Seconds the upstream asks us to wait: `retry-after-ms`, else `retry-after` (seconds or an HTTP date).

    A value that cannot be understood (or exceeds `MAX_RETRY_AFTER`) is skipped, so a bad `retry-after-ms`
    falls back to `retry-after`, as the OpenAI SDKs do; None when neither says anything usable.
    """
    if (ms := decimal(headers.get("retry-after-ms"))) is not None and (after := _bounded(ms / 1000)) is not None:
        return after
    value = headers.get("retry-after")
    if value is None:
        return None
    if (seconds := decimal(value)) is not None:
        return _bounded(seconds)
    return _bounded(_http_date(value.strip(), now))


def retry_after_header(headers: Mapping[str, str], *, now: float) -> str | None:
    """The `retry-after` for the client: whole seconds, rounded up (Anthropic sends integers; `2.5` → `3`)."""
    seconds = retry_after(headers, now=now)
    return None if seconds is None else str(math.ceil(seconds))
