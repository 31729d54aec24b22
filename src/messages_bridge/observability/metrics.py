"""Prometheus metrics: low-cardinality labels only (route template, status, model family, error type).

Multi-process: when `PROMETHEUS_MULTIPROC_DIR` is set before this module is imported (the CLI sets it up when it
runs several workers), prometheus-client writes values to files there and a scrape aggregates every worker.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess
from starlette.requests import Request
from starlette.responses import Response

from messages_bridge.config import FAMILIES, Settings
from messages_bridge.observability.record import RequestRecord

PREFIX = "messages_bridge_"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
NO_MODEL = "none"
OTHER_MODEL = "other"

REQUESTS = Counter(PREFIX + "requests_total", "HTTP requests handled", ["route", "status", "model"])
REQUEST_SECONDS = Histogram(
    PREFIX + "request_duration_seconds",
    "Request duration, until the last byte",
    ["route", "status", "model"],
    buckets=_LATENCY_BUCKETS,
)
UPSTREAM_SECONDS = Histogram(
    PREFIX + "upstream_duration_seconds", "Upstream call duration", ["model"], buckets=_LATENCY_BUCKETS
)
FIRST_TOKEN_SECONDS = Histogram(
    PREFIX + "time_to_first_token_seconds",
    "Time from request to first streamed token",
    ["model"],
    buckets=_LATENCY_BUCKETS,
)
ACTIVE_STREAMS = Gauge(PREFIX + "active_streams", "Streaming responses in progress", multiprocess_mode="livesum")
TOKENS = Counter(
    PREFIX + "tokens_total",
    "Tokens by direction and kind (kinds of one direction add up to its total)",
    ["direction", "kind", "model"],
)
UPSTREAM_ERRORS = Counter(PREFIX + "upstream_errors_total", "Upstream failures by Anthropic error type", ["error_type"])
RETRIES = Counter(PREFIX + "upstream_retries_total", "Upstream call retries")
# Routing: the `upstream` label takes configured upstream names only ("default" without a routing file).
UPSTREAM_ATTEMPTS = Counter(
    PREFIX + "upstream_attempts_total",
    "Upstream attempts by outcome: ok, key (failed over to another key), upstream (to another target), final",
    ["upstream", "outcome"],
)
BREAKER_STATE = Gauge(
    PREFIX + "upstream_circuit_state",
    "Circuit breaker state per upstream: 0 closed, 1 half-open (probing), 2 open",
    ["upstream"],
    multiprocess_mode="livemax",
)
KEYS_BENCHED = Counter(
    PREFIX + "upstream_keys_benched_total",
    "Upstream keys benched, by key index (never the key) and reason",
    ["upstream", "key_index", "reason"],
)
WEB_SEARCHES = Counter(PREFIX + "web_searches_total", "Web searches answered, by how they ran", ["mode"])
WEB_SEARCH_ERRORS = Counter(PREFIX + "web_search_errors_total", "Web searches answered with an error block", ["mode"])
WEB_SEARCH_BACKEND_SECONDS = Histogram(
    PREFIX + "web_search_backend_seconds", "Time one request spent in the search backend", buckets=_LATENCY_BUCKETS
)
DISCONNECTS = Counter(PREFIX + "client_disconnects_total", "Clients gone before the response ended", ["route"])
THREADS = Counter(
    PREFIX + "thread_requests_total",
    "Message-thread requests: created / continued / replayed / rejected, and whether the reply was stored",
    ["outcome", "stored"],
)

_TOKEN_KINDS = (
    ("input", "uncached"),
    ("input", "cache_read"),
    ("input", "cache_creation"),
    ("output", "visible"),
    ("output", "reasoning"),
)


def model_label_for(settings: Settings) -> Callable[[str | None], str]:
    """Requested model → label: a configured map key as is, else its family (opus/sonnet/haiku), else "other".

    Client-chosen names never become label values, so a client cannot grow the series count.
    """
    keys = frozenset(settings.model_map)

    @lru_cache(maxsize=1024)  # keys are record.model, cut to 100 characters by the access log's shape
    def label(model: str | None) -> str:
        if model is None:
            return NO_MODEL
        lowered = model.lower()
        return model if model in keys else next((f for f in FAMILIES if f in lowered), OTHER_MODEL)

    return label


class _RequestSeries:
    """The label children of one (route, status, model), bound once (labels() is a dict lookup plus a lock)."""

    __slots__ = ("count", "duration")

    def __init__(self, route: str, status: str, model: str) -> None:
        self.count = REQUESTS.labels(route, status, model)
        self.duration = REQUEST_SECONDS.labels(route, status, model)


class Metrics:
    """Records one finished request; series children are cached per label set (bounded: labels are)."""

    def __init__(self, settings: Settings) -> None:
        self.model_label = model_label_for(settings)
        self._series: dict[tuple[str, str, str], _RequestSeries] = {}
        self._by_model: dict[tuple[Histogram, str], Histogram] = {}  # children of the per-model histograms
        self._tokens: dict[str, list[Counter]] = {}

    def _request_series(self, route: str, status: str, model: str) -> _RequestSeries:
        key = (route, status, model)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _RequestSeries(route, status, model)
        return series

    def _child(self, histogram: Histogram, model: str) -> Histogram:
        """`histogram.labels(model)`, bound once per label (created on first use, as `labels` would)."""
        child = self._by_model.get((histogram, model))
        if child is None:
            child = self._by_model[(histogram, model)] = histogram.labels(model)
        return child

    def observe(self, record: RequestRecord, finished: float) -> None:
        model = self.model_label(record.model)
        series = self._request_series(record.route, str(record.status), model)
        series.count.inc()
        series.duration.observe(finished - record.started)
        if record.upstream_started is not None and record.upstream_done is not None:
            self._child(UPSTREAM_SECONDS, model).observe(record.upstream_done - record.upstream_started)
        if record.first_token is not None:
            self._child(FIRST_TOKEN_SECONDS, model).observe(record.first_token - record.started)
        if record.upstream_error_type is not None:
            UPSTREAM_ERRORS.labels(record.upstream_error_type).inc()
        if record.retries:
            RETRIES.inc(record.retries)
        if record.disconnected:
            DISCONNECTS.labels(record.route).inc()
        if record.thread is not None:
            THREADS.labels(record.thread, str(bool(record.thread_stored)).lower()).inc()
        if record.input_tokens or record.output_tokens or record.cache_read_tokens or record.cache_creation_tokens:
            self._count_tokens(record, model)
        if record.web_search_mode is not None:
            self._count_searches(record, record.web_search_mode)

    @staticmethod
    def _count_searches(record: RequestRecord, mode: str) -> None:
        if record.web_searches:
            WEB_SEARCHES.labels(mode).inc(record.web_searches)
        if record.web_search_errors:
            WEB_SEARCH_ERRORS.labels(mode).inc(record.web_search_errors)
        if record.web_search_ms:
            WEB_SEARCH_BACKEND_SECONDS.observe(record.web_search_ms / 1000)

    def _count_tokens(self, record: RequestRecord, model: str) -> None:
        children = self._tokens.get(model)
        if children is None:
            children = self._tokens[model] = [TOKENS.labels(d, k, model) for d, k in _TOKEN_KINDS]
        reasoning = min(record.reasoning_tokens, record.output_tokens)
        values = (
            record.input_tokens,
            record.cache_read_tokens,
            record.cache_creation_tokens,
            record.output_tokens - reasoning,
            reasoning,
        )
        for child, value in zip(children, values, strict=True):
            if value:
                child.inc(value)


_ATTEMPT_CHILDREN: dict[tuple[str, str], Counter] = {}


def note_attempt(upstream: str, outcome: str) -> None:
    """One upstream attempt (children cached: names come from the routing file, outcomes are four)."""
    child = _ATTEMPT_CHILDREN.get((upstream, outcome))
    if child is None:
        child = _ATTEMPT_CHILDREN[(upstream, outcome)] = UPSTREAM_ATTEMPTS.labels(upstream, outcome)
    child.inc()


_BREAKER_VALUES: dict[str, int] = {}


def note_breaker(upstream: str, state_value: int) -> None:
    """Set on change only (every attempt reports it; the gauge moves rarely)."""
    if _BREAKER_VALUES.get(upstream) != state_value:
        _BREAKER_VALUES[upstream] = state_value
        BREAKER_STATE.labels(upstream).set(state_value)


def note_benched(upstream: str, key_index: int, reason: str) -> None:
    KEYS_BENCHED.labels(upstream, str(key_index), reason).inc()


def exposition() -> tuple[bytes, str]:
    """The text exposition of every metric (all workers' when in multi-process mode) and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


async def metrics_endpoint(_: Request) -> Response:
    """`GET /metrics`: the Prometheus text exposition (no ids, no user values in any label)."""
    body, content_type = exposition()
    return Response(body, media_type=content_type)
