"""Optional OpenTelemetry spans: one for the request, one child for the upstream call, both with the request id.

Active only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set and the `otel` extra is installed; otherwise
`setup_tracing()` returns None, nothing from OpenTelemetry is imported and the hot path pays one `is None` check.
The upstream span is recorded after the fact from the request record's timings, so the upstream client needs no hooks.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from functools import cache
from typing import Any

from asgi_correlation_id import correlation_id
from starlette.types import Scope

from messages_bridge.observability.record import RequestRecord

logger = logging.getLogger("messages_bridge.tracing")


def _epoch_ns(perf: float) -> int:
    """A `time.perf_counter()` reading as epoch nanoseconds (OpenTelemetry's clock)."""
    return time.time_ns() - int((time.perf_counter() - perf) * 1e9)


class Tracing:
    """Starts and ends the spans of one request on an OpenTelemetry tracer."""

    def __init__(self, tracer: Any, trace_api: Any) -> None:
        self._tracer = tracer
        self._trace = trace_api

    def start_request(self, scope: Scope) -> Any:
        return self._tracer.start_span(
            "messages_bridge.request",
            kind=self._trace.SpanKind.SERVER,
            attributes={"http.request.method": scope.get("method", "")},
        )

    def end_request(self, span: Any, record: RequestRecord) -> None:
        request_id = correlation_id.get() or ""
        attributes = {
            "request_id": request_id,
            "http.route": record.route,
            "stream": record.stream,
            "http.response.status_code": record.status or 0,
            "gen_ai.request.model": record.model or "",
        }
        span.set_attributes(attributes)
        if record.upstream_started is not None:
            self._upstream_span(span, record, request_id)
        span.end()

    def _upstream_span(self, parent: Any, record: RequestRecord, request_id: str) -> None:
        assert record.upstream_started is not None
        end = record.upstream_done or time.perf_counter()
        attributes = {
            "request_id": request_id,
            "upstream_request_id": record.upstream_request_id or "",
            "http.response.status_code": record.upstream_status or 0,
        }
        child = self._tracer.start_span(
            "messages_bridge.upstream",
            context=self._trace.set_span_in_context(parent),
            kind=self._trace.SpanKind.CLIENT,
            attributes=attributes,
            start_time=_epoch_ns(record.upstream_started),
        )
        child.end(end_time=_epoch_ns(end))


@cache  # set up once per process: a tracer provider is global to OpenTelemetry
def setup_tracing() -> Tracing | None:
    """The process's tracing, or None when not configured or not installed."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return None
    try:
        return _build()
    except ImportError:
        logger.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but the otel extra is not installed: tracing is off")
        return None


def _build() -> Tracing:
    trace = importlib.import_module("opentelemetry.trace")
    sdk_trace = importlib.import_module("opentelemetry.sdk.trace")
    export = importlib.import_module("opentelemetry.sdk.trace.export")
    resources = importlib.import_module("opentelemetry.sdk.resources")
    exporter = importlib.import_module("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    provider = sdk_trace.TracerProvider(resource=resources.Resource.create({"service.name": "messages-bridge"}))
    provider.add_span_processor(export.BatchSpanProcessor(exporter.OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return Tracing(trace.get_tracer("messages_bridge"), trace)
