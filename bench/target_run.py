"""One target from start to finish: verify that it answers correctly, then measure it cell by cell."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx

from bench.errors import BenchError
from bench.measure import measure_open_streams, run_cell
from bench.options import RESULTS_DIR, BenchOptions
from bench.procs import HOST, Child, free_port
from bench.sysinfo import tree_rss_bytes
from bench.targets import REPO_DIR, TargetSpec
from bench.upstream_client import UpstreamClient

JSON = dict[str, Any]


def verify_mode(options: BenchOptions, spec: TargetSpec, port: int, up: UpstreamClient, mode: str) -> JSON:
    """One request: 2xx with the expected marker, and exactly one upstream POST /v1/responses shaped as such."""
    before = up.responses_count()
    headers = dict(h.split(": ", 1) for h in options.headers)
    headers["content-type"] = "application/json"
    with httpx.Client(timeout=120.0) as client:
        body = options.bodies[mode].read_bytes()
        response = client.post(f"http://{HOST}:{port}/v1/messages", content=body, headers=headers)
    marker = spec.markers["stream_done" if mode == "stream" else "json_done"]
    if response.status_code != 200 or marker not in response.text:
        raise BenchError(f"{spec.name} {mode}: HTTP {response.status_code} {response.text[:500]!r}")
    calls = up.responses_count() - before
    if calls != 1:
        raise BenchError(f"{spec.name} {mode}: expected 1 POST /v1/responses upstream, saw {calls}")
    keys = sorted(up.last_request())
    if spec.name != "floor" and "input" not in keys:
        raise BenchError(f"{spec.name} {mode}: upstream request is not a Responses request (keys {keys})")
    return {"upstream_request_keys": keys}


def verify(options: BenchOptions, spec: TargetSpec, port: int, up: UpstreamClient) -> tuple[JSON, list[str]]:
    """Check each mode once; return the checks and the modes that work (failures are recorded, not raised)."""
    checks: JSON = {}
    for mode in options.modes:
        try:
            checks[mode] = verify_mode(options, spec, port, up, mode)
        except BenchError as exc:
            print(f"{spec.name}: {mode} does not work, not measured: {exc}", file=sys.stderr)
            checks[mode] = {"error": str(exc)}
    working = [m for m in options.modes if "error" not in checks[m]]
    if not working:
        raise BenchError(f"{spec.name}: no mode works: {checks}")
    return checks, working


@contextlib.contextmanager
def started(
    options: BenchOptions, spec: TargetSpec, upstream_base: str, tag: str
) -> Iterator[tuple[Child, int, float]]:
    """A fresh target process listening on a free port: (child, port, start-up seconds); always stopped."""
    port = free_port()
    launch = spec.launch(port, upstream_base, options.workers)
    log = RESULTS_DIR / "logs" / f"{spec.name}-{tag}.log"
    with Child(launch.argv, log=log, cores=options.cores.target, env=launch.env, cwd=REPO_DIR) as child:
        began = time.monotonic()
        if not child.wait_port(port, spec.startup_timeout):
            raise BenchError(f"{spec.name} did not start listening on {port}:\n{child.log_tail()}")
        yield child, port, time.monotonic() - began


class Launcher:
    """Hands out target processes: a fresh one per use, or (with `reuse`) one shared by every use."""

    def __init__(
        self, options: BenchOptions, spec: TargetSpec, upstream_base: str, stack: contextlib.ExitStack
    ) -> None:
        self.options, self.spec, self.base, self.stack = options, spec, upstream_base, stack
        self.shared: tuple[Child, int, float] | None = None

    @contextlib.contextmanager
    def process(self, tag: str) -> Iterator[tuple[Child, int, float]]:
        """A listening target process for one step."""
        if not self.options.fresh:
            if self.shared is None:
                self.shared = self.stack.enter_context(started(self.options, self.spec, self.base, "shared"))
            yield self.shared
            return
        with started(self.options, self.spec, self.base, tag) as proc:
            yield proc


def bench_target(options: BenchOptions, spec: TargetSpec, up: UpstreamClient, upstream_base: str) -> JSON:
    """Verify a target and measure it; by default every cell runs in a fresh process (no inherited pools)."""
    with contextlib.ExitStack() as stack:
        launcher = Launcher(options, spec, upstream_base, stack)
        with launcher.process("verify") as (child, port, startup_s):
            checks, working = verify(options, spec, port, up)
            time.sleep(0.5)
            idle = tree_rss_bytes(child.pid)
        cells: JSON = {}
        streams: JSON | None = None
        if "stream" in working:
            with launcher.process("burst") as (child, port, _):
                verify_mode(options, spec, port, up, "stream")
                streams = measure_open_streams(options, spec, child, port, up)
                if "non-stream" in working:
                    cells["after-burst/c1"] = run_cell(options, spec, child, port, up, "non-stream", 1)
                    progress(spec.name, "after-burst", 1, cells["after-burst/c1"])
        for mode in working:
            for c in options.concurrencies:
                with launcher.process(f"{mode}-c{c}") as (child, port, _):
                    cells[f"{mode}/c{c}"] = run_cell(options, spec, child, port, up, mode, c)
                progress(spec.name, mode, c, cells[f"{mode}/c{c}"])
    peaks = [int(v["peak_rss_bytes"]) for v in cells.values()] + [streams["rss_during_bytes"] if streams else 0]
    return {
        "label": spec.label,
        "argv": spec.launch(0, upstream_base, options.workers).argv,
        "startup_s": round(startup_s, 2),
        "checks": checks,
        "memory": {"idle_rss_bytes": idle, "peak_rss_bytes": max(peaks)},
        "open_streams": streams,
        "cells": cells,
    }


def progress(name: str, mode: str, c: int, cell: JSON) -> None:
    """One status line per cell on stderr."""
    lat = cell.get("latency_ms") or {}
    print(
        f"  {name:8} {mode:10} c={c:<4} {cell['rps']:>9.1f} req/s  p50 {lat.get('p50', 0):8.2f} ms  "
        f"errors {cell['total_errors']}  target cpu {cell['target_cpu_util']:.2f}  "
        f"driver cpu {cell['loadgen_cpu_util']:.2f}+{cell['upstream_cpu_util']:.2f}",
        file=sys.stderr,
    )
