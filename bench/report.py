"""Render benchmark results (the dict written to bench/results/latest.json) as one markdown table."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Result = Mapping[str, Any]
Getter = Callable[[Result], float | None]

MODES = ("non-stream", "stream")
RATIO_PAIRS = (("bridge", "litellm"), ("bridge", "floor"), ("routed", "bridge"))


def _path(*keys: str) -> Getter:
    def get(result: Result) -> float | None:
        node: Any = result
        for key in keys:
            if not isinstance(node, Mapping) or node.get(key) is None:
                return None
            node = node[key]
        return float(node)

    return get


def _scaled(getter: Getter, factor: float) -> Getter:
    def get(result: Result) -> float | None:
        value = getter(result)
        return None if value is None else value * factor

    return get


def cell_rows(mode: str, c: int) -> list[tuple[str, Getter, str]]:
    """(metric label, value getter over a target's results, number format) for one matrix cell."""
    cell = ("cells", f"{mode}/c{c}")
    rows = [
        ("req/s", _path(*cell, "rps"), "{:.1f}"),
        ("latency p50 ms", _path(*cell, "latency_ms", "p50"), "{:.2f}"),
        ("latency p90 ms", _path(*cell, "latency_ms", "p90"), "{:.2f}"),
        ("latency p99 ms", _path(*cell, "latency_ms", "p99"), "{:.2f}"),
        ("TTFB p50 ms", _path(*cell, "ttfb_ms", "p50"), "{:.2f}"),
    ]
    if mode == "stream":
        rows.append(("TTFT p50 ms", _path(*cell, "ttft_ms", "p50"), "{:.2f}"))
    rows += [
        ("CPU ms/request", _scaled(_path(*cell, "target_cpu_s_per_request"), 1000), "{:.3f}"),
        ("errors", _path(*cell, "total_errors"), "{:.0f}"),
    ]
    return rows


def burst_rows() -> list[tuple[str, Getter, str]]:
    """Rows of the non-stream c=1 cell run right after the slow-stream burst, on the same process."""
    cell = ("cells", "after-burst/c1")
    return [
        ("req/s", _path(*cell, "rps"), "{:.1f}"),
        ("latency p50 ms", _path(*cell, "latency_ms", "p50"), "{:.2f}"),
        ("CPU ms/request", _scaled(_path(*cell, "target_cpu_s_per_request"), 1000), "{:.3f}"),
    ]


def memory_rows() -> list[tuple[str, Getter, str]]:
    """Rows about resident memory."""
    mib = 1 / (1024 * 1024)
    return [
        ("RSS idle MiB", _scaled(_path("memory", "idle_rss_bytes"), mib), "{:.1f}"),
        ("RSS peak under load MiB", _scaled(_path("memory", "peak_rss_bytes"), mib), "{:.1f}"),
        ("RSS per open stream KiB", _scaled(_path("open_streams", "rss_per_stream_bytes"), 1 / 1024), "{:.1f}"),
    ]


def _fmt(value: float | None, fmt: str) -> str:
    return "—" if value is None else fmt.format(value)


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}×"


def _row(prefix: list[str], getter: Getter, fmt: str, targets: list[str], results: Mapping[str, Result]) -> str:
    values = {t: getter(results[t]) if t in results else None for t in targets}
    cells = [_fmt(values[t], fmt) for t in targets]
    ratios = ["—" if prefix[-1] == "errors" else _ratio(values.get(a), values.get(b)) for a, b in RATIO_PAIRS]
    return "| " + " | ".join(prefix + cells + ratios) + " |"


def render_table(
    targets: list[str], results: Mapping[str, Result], concurrencies: list[int], labels: Mapping[str, str]
) -> str:
    """One markdown table: matrix cells, then CPU and memory; a ratio column per RATIO_PAIRS entry."""
    head = ["mode", "c", "metric", *(labels.get(t, t) for t in targets), *(f"{a}/{b}" for a, b in RATIO_PAIRS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 3 + "---:|" * (len(head) - 3)]
    for mode in MODES:
        for c in concurrencies:
            for label, getter, fmt in cell_rows(mode, c):
                lines.append(_row([mode, str(c), label], getter, fmt, targets, results))
    for label, getter, fmt in burst_rows():
        lines.append(_row(["non-stream after burst", "1", label], getter, fmt, targets, results))
    for label, getter, fmt in memory_rows():
        lines.append(_row(["memory", "", label], getter, fmt, targets, results))
    return "\n".join(lines)
