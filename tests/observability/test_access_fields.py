"""One list of access-log fields: the record builds it, the formatter prints it and nothing else, README lists it."""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

from messages_bridge.observability.logs import ACCESS_LOGGER, Formatter, Masker
from messages_bridge.observability.record import ACCESS_FIELDS, RequestRecord, log_fields

README = Path(__file__).resolve().parents[2] / "README.md"
HEADER = ("ts", "level", "logger", "event", "request_id")


def _readme_fields() -> tuple[str, ...]:
    text = README.read_text(encoding="utf-8")
    start = text.index("- **Access-log fields**")
    listing = text[start : text.index(". ", text.index("): ", start))]  # up to the sentence that ends the list
    return tuple(re.findall(r"`([a-z_]+)`", listing.split("): ", 1)[1]))


def _printed(access: dict[str, object]) -> dict[str, object]:
    record = logging.LogRecord(ACCESS_LOGGER, logging.INFO, __file__, 1, "request", None, None)
    record.__dict__["access"] = access
    printed: dict[str, object] = json.loads(Formatter(style="json", masker=Masker()).format(record))
    return printed


def test_the_record_builds_exactly_the_listed_fields_in_order() -> None:
    assert tuple(log_fields(RequestRecord(), time.perf_counter())) == ACCESS_FIELDS
    assert len(set(ACCESS_FIELDS)) == len(ACCESS_FIELDS)


def test_the_formatter_prints_the_listed_fields_and_no_other() -> None:
    access = {**log_fields(RequestRecord(), time.perf_counter()), "prompt": "secret text", "api_key": "sk-x"}
    printed = _printed(access)
    assert tuple(k for k in printed if k not in HEADER) == ACCESS_FIELDS


def test_the_readme_lists_the_same_fields_in_the_same_order() -> None:
    assert _readme_fields() == ACCESS_FIELDS
