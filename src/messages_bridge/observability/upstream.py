"""The facts of one request's upstream call: what the relays learn and return, recorded once by `RequestRecord.apply`.

The relays, failover, the retry loop and the stream fill in an `UpstreamFacts` (their own small value, not the
access record); the request's one recording point hands it to the access record when the call is over: at the
end of a JSON answer, of a failure, or of a stream (its single `finally`).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from messages_bridge.errors import GatewayError, UpstreamProtocolError
from messages_bridge.protocol import anthropic as a

_SAFE_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")
_logger = logging.getLogger("messages_bridge.upstream")


def safe_id(value: str | None) -> str | None:
    """An upstream-supplied id, if it looks like one (anything else is not printed)."""
    return value if value is not None and _SAFE_ID.fullmatch(value) else None


@dataclass(slots=True)
class UpstreamFacts:
    """Status, ids, timings (`time.perf_counter()`), usage and routing of a request's upstream call; names only."""

    model: str | None = None  # the upstream model asked for
    started: float | None = None  # the last attempt's start
    first_byte: float | None = None  # a stream's first upstream event
    done: float | None = None
    status: int | None = None
    request_id: str | None = None  # the upstream's, when it looks like an id
    error_type: str | None = None  # the upstream error the call ended in
    usage: a.Usage | None = None  # of the reply the client gets
    stop_reason: str | None = None
    retries: int = 0
    upstream: str | None = None  # the configured upstream that answered (or failed last)
    target_position: int | None = None
    key_index: int | None = None
    fallbacks: int = 0
    token_count_exact: bool | None = None
    # A streamed reply: its first output, the in-band error it ended with, whether the client left before its end.
    first_token: float | None = None
    stream_error_type: str | None = None
    cut: bool = False
    # The gateway-run web search: counts and the time spent in the search backend.
    web_searches: int = 0
    web_search_errors: int = 0
    web_search_seconds: float = 0.0
    # Not a fact but the one limit the call's layers share: the retry budget of all failover's attempts
    # (`time.monotonic()`), set by failover, read by the retry loop.
    retry_deadline: float | None = None

    def answered(self, status: int, upstream_request_id: str | None) -> None:
        self.status = status
        self.request_id = safe_id(upstream_request_id)

    def failed(self, error: GatewayError) -> None:
        """The call or its answer ended in `error`; an answer the gateway cannot translate is also logged.

        The same for both paths (a JSON reply, a stream's in-band error). The reason logged is the gateway's own
        wording of what was wrong (a missing field, an unfinished status), never upstream content.
        """
        self.error_type = error.error_type
        if isinstance(error, UpstreamProtocolError):
            _logger.warning("upstream answer rejected", extra={"reason": error.message})

    def replied(self, usage: a.Usage, stop_reason: str | None) -> None:
        """Token usage and stop reason of the reply the client gets."""
        self.usage = usage
        self.stop_reason = stop_reason


@contextmanager
def upstream_call(facts: UpstreamFacts, model: str | None = None) -> Iterator[UpstreamFacts]:
    """Time one upstream attempt on `facts`; a `GatewayError` leaving it counts as an upstream error."""
    if model is not None:
        facts.model = model
    facts.started = time.perf_counter()
    try:
        yield facts
    except GatewayError as exc:
        facts.failed(exc)
        raise
    finally:
        facts.done = time.perf_counter()
