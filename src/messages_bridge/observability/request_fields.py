"""Operators see request fields nobody decided on (protocol/request_fields.py): a counter by name, one log line each.

Field names are chosen by the client, so both are bounded: a name becomes a label only if it looks like a field
name (lower-case snake case, at most 40 characters) and fewer than `MAX_NAMES` names were seen by this process;
anything else is counted as `other`. Each distinct label is logged once per process, at warning level.
"""

from __future__ import annotations

import logging
import re

from prometheus_client import Counter

from messages_bridge.observability.metrics import PREFIX

MAX_NAMES = 64
OTHER = "other"
_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")

UNKNOWN_FIELDS = Counter(
    PREFIX + "unknown_request_fields_total",
    "Requests carrying a top-level field this gateway version has no decision for (accepted and ignored)",
    ["endpoint", "field"],
)
_logger = logging.getLogger("messages_bridge.request_fields")


class FieldLabels:
    """Field name → metric label, remembering the labels used (at most `limit` names, plus `other`)."""

    def __init__(self, limit: int = MAX_NAMES) -> None:
        self._limit = limit
        self._names: set[str] = set()  # touched from the event loop only

    def label(self, name: str) -> tuple[str, bool]:
        """The label for `name` and whether it is new (to be logged)."""
        if not _FIELD_NAME.fullmatch(name):
            name = OTHER
        if name not in self._names and len(self._names) >= self._limit:
            name = OTHER
        if name in self._names:
            return name, False
        self._names.add(name)
        return name, True


_labels = FieldLabels()  # one per process: "logged once" means once per process


def report_unknown_fields(endpoint: str, names: tuple[str, ...]) -> None:
    """Count each undecided field of one request by (bounded) name; log a name the first time it is seen."""
    for name in names:
        label, new = _labels.label(name)
        UNKNOWN_FIELDS.labels(endpoint, label).inc()
        if new:
            what = "fields with other names" if label == OTHER else f"field {label!r}"
            _logger.warning(
                "request %s not known to this gateway version: accepted and ignored (first seen on %s; counted in "
                "%sunknown_request_fields_total)",
                what,
                endpoint,
                PREFIX,
            )
