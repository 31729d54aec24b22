"""What the relays record about the upstream call: timings, status, its id, usage (on the record passed in)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

from messages_bridge.errors import GatewayError, UpstreamProtocolError
from messages_bridge.observability.record import RequestRecord
from messages_bridge.protocol import anthropic as a

_SAFE_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")
_logger = logging.getLogger("messages_bridge.upstream")


def safe_id(value: str | None) -> str | None:
    """An upstream-supplied id, if it looks like one (anything else is not printed)."""
    return value if value is not None and _SAFE_ID.fullmatch(value) else None


@contextmanager
def upstream_call(record: RequestRecord, upstream_model: str | None = None) -> Iterator[RequestRecord]:
    """Time the upstream call on `record`; a `GatewayError` leaving it counts as an upstream error."""
    if upstream_model is not None:
        record.upstream_model = upstream_model
    record.upstream_started = time.perf_counter()
    try:
        yield record
    except GatewayError as exc:
        note_upstream_error(exc, record)
        raise
    finally:
        record.upstream_done = time.perf_counter()


def note_upstream_error(error: GatewayError, record: RequestRecord) -> None:
    """An upstream call or answer that ended in `error`; an answer the gateway cannot translate is also logged.

    The same for both paths (a JSON reply, a stream's in-band error). The reason logged is the gateway's own
    wording of what was wrong (a missing field, an unfinished status), never upstream content.
    """
    record.upstream_error_type = error.error_type
    if isinstance(error, UpstreamProtocolError):
        _logger.warning("upstream answer rejected", extra={"reason": error.message})


def note_upstream_status(record: RequestRecord, status: int, upstream_request_id: str | None) -> None:
    record.upstream_status = status
    record.upstream_request_id = safe_id(upstream_request_id)


def note_usage(record: RequestRecord, usage: a.Usage, stop_reason: str | None) -> None:
    """Token usage and stop reason of the reply the client gets."""
    record.stop_reason = stop_reason
    record.input_tokens = usage["input_tokens"]
    record.output_tokens = usage["output_tokens"]
    record.cache_read_tokens = usage["cache_read_input_tokens"]
    record.cache_creation_tokens = usage["cache_creation_input_tokens"]
    details = usage.get("output_tokens_details")
    record.reasoning_tokens = details.get("thinking_tokens", 0) if details else 0
    if (server_tools := usage.get("server_tool_use")) is not None:
        record.web_searches = server_tools["web_search_requests"]
