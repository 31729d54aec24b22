"""Benchmark messages-bridge against the pass-through floor and LiteLLM behind one fake Responses upstream.

  python -m bench.run                         full matrix for bridge, litellm and floor (those available)
  python -m bench.run --quick --targets floor seconds-long smoke; exits non-zero on any error

Layout on a 2-core machine: the target on core 0; the fake upstream and the load generator on core 1.
Prints one markdown table and writes bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.procs import HOST, Child, free_port
from bench.report import render_table
from bench.sysinfo import (
    machine_busy_seconds,
    pinning_preexec,
    tree_cpu_seconds,
    tree_rss_bytes,
    usable_cores,
    wait_for,
)
from bench.targets import CLIENT_KEY, REPO_DIR, TARGETS, TargetSpec

RESULTS_DIR = REPO_DIR / "bench" / "results"
CAPTURES_DIR = REPO_DIR / "tests" / "fixtures" / "captures"
CAPTURE_NAME = "messages_main_first_turn_opus_default.json"
DEFAULT_CAPTURE = Path(os.environ.get("BENCH_CAPTURE", str(CAPTURES_DIR / CAPTURE_NAME)))
TARGET_CORES = {0}
DRIVER_CORES = {1}
DROPPED_HEADERS = {"host", "content-length", "connection", "accept-encoding", "x-api-key", "authorization"}
JSON = dict[str, Any]


class BenchError(Exception):
    """A target failed to start, answered wrongly, or a measurement could not be taken."""


@dataclass
class Settings:
    """What to run and for how long."""

    targets: list[str]
    concurrencies: list[int]
    modes: list[str]
    duration: float
    warmup: float
    request_timeout: float
    deltas: int
    shape: str
    hold_streams: int
    slow_delay_ms: float
    workers: int | None
    capture: Path
    min_rounds: int
    cell_cap: float
    fresh: bool
    wait_quiet: float
    quick: bool
    bodies: dict[str, Path] = field(default_factory=dict)
    headers: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- inputs


def prepare_inputs(settings: Settings) -> None:
    """Write the stream / non-stream request bodies and pick the client headers from the capture."""
    capture = json.loads(settings.capture.read_text())
    request = capture["request"]
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    for mode in settings.modes:
        body = {**request["body"], "stream": mode == "stream"}
        path = RESULTS_DIR / f"body-{mode}.json"
        path.write_text(json.dumps(body, separators=(",", ":")))
        settings.bodies[mode] = path
    headers = {k: v for k, v in request["headers"].items() if k.lower() not in DROPPED_HEADERS}
    headers["x-api-key"] = CLIENT_KEY
    settings.headers = [f"{k}: {v}" for k, v in headers.items()]


# ---------------------------------------------------------------- upstream


class UpstreamClient:
    """Talks to the fake upstream's /stats, /control and /last-request."""

    def __init__(self, port: int) -> None:
        self.base = f"http://{HOST}:{port}"
        self.http = httpx.Client(timeout=10.0)

    def stats(self) -> JSON:
        """GET /stats."""
        data: JSON = self.http.get(f"{self.base}/stats").json()
        return data

    def control(self, **changes: object) -> None:
        """POST /control."""
        self.http.post(f"{self.base}/control", json=changes).raise_for_status()

    def last_request(self) -> JSON:
        """The body of the last POST /v1/responses."""
        data: JSON = self.http.get(f"{self.base}/last-request").json()
        return data

    def responses_count(self) -> int:
        """How many POST /v1/responses the upstream has answered."""
        return int(self.stats()["requests"].get("POST /v1/responses", 0))


# ---------------------------------------------------------------- load generator


def loadgen_argv(settings: Settings, spec: TargetSpec, port: int, mode: str, command: str) -> list[str]:
    """Command line of one load-generator run."""
    stream = mode == "stream"
    argv = [
        sys.executable,
        "-m",
        "bench.loadgen",
        command,
        "--port",
        str(port),
        "--body",
        str(settings.bodies[mode]),
        "--timeout",
        str(settings.request_timeout),
        "--done",
        spec.markers["stream_done" if stream else "json_done"],
    ]
    if stream:
        key = "stream_first_token_tool" if settings.shape == "tool" else "stream_first_token"
        argv += ["--first-token", spec.markers[key]]
    for header in settings.headers:
        argv += ["--header", header]
    return argv


def spawn_driver(argv: list[str], log: Path, *, stdin: bool = False) -> subprocess.Popen[bytes]:
    """Start a load-generator process on the driver core, in its own session."""
    with log.open("ab") as err:
        return subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=REPO_DIR,
            start_new_session=True,
            preexec_fn=pinning_preexec(DRIVER_CORES),
        )


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a driver's process group if it is still running."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        proc.wait(timeout=5)


def last_json_line(out: bytes) -> JSON:
    """Parse the last stdout line of a driver as JSON."""
    lines = [ln for ln in out.decode(errors="replace").splitlines() if ln.strip()]
    if not lines:
        raise BenchError("load generator printed nothing")
    data: JSON = json.loads(lines[-1])
    return data


def sample_while_running(proc: subprocess.Popen[bytes], pid: int, deadline: float) -> int:
    """Poll the target's RSS every 100 ms until the driver exits or the deadline passes; return the peak."""
    peak = 0
    while proc.poll() is None and time.monotonic() < deadline:
        peak = max(peak, tree_rss_bytes(pid))
        time.sleep(0.1)
    return peak


# ---------------------------------------------------------------- one cell of the matrix


def run_cell(
    settings: Settings, spec: TargetSpec, child: Child, port: int, up: UpstreamClient, mode: str, concurrency: int
) -> JSON:
    """Closed-loop load at one concurrency; adds the target's CPU per request and peak RSS."""
    argv = loadgen_argv(settings, spec, port, mode, "run")
    argv += [
        "-c",
        str(concurrency),
        "--duration",
        str(settings.duration),
        "--warmup",
        str(settings.warmup),
        "--min-requests",
        str(concurrency * settings.min_rounds),
        "--cap",
        str(settings.cell_cap),
    ]
    up_cpu0, cpu0, wall0 = up.stats()["cpu_s"], tree_cpu_seconds(child.pid), time.monotonic()
    busy0 = machine_busy_seconds()
    proc = spawn_driver(argv, RESULTS_DIR / "logs" / "loadgen.log")
    try:
        deadline = wall0 + settings.cell_cap + settings.request_timeout + 15
        peak = sample_while_running(proc, child.pid, deadline)
        out = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))[0]
    finally:
        kill_group(proc)
    wall, busy = time.monotonic() - wall0, machine_busy_seconds() - busy0
    cpu, up_cpu = tree_cpu_seconds(child.pid) - cpu0, up.stats()["cpu_s"] - up_cpu0
    summary = last_json_line(out)
    foreign = busy - cpu - up_cpu - float(summary["loadgen_cpu_s"])
    summary |= {
        "target_cpu_s": round(cpu, 3),
        "target_cpu_s_per_request": cpu / max(1, int(summary["total_requests"])),
        "target_cpu_util": round(cpu / wall, 3),
        "upstream_cpu_util": round(up_cpu / wall, 3),
        "other_processes_cpu_util": round(max(0.0, foreign) / wall, 3),
        "peak_rss_bytes": peak,
    }
    return summary


# ---------------------------------------------------------------- memory per open stream


def read_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """One stdout line from a driver, or "" after `timeout` seconds."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline().decode(errors="replace").strip() if ready else ""


def measure_open_streams(settings: Settings, spec: TargetSpec, child: Child, port: int, up: UpstreamClient) -> JSON:
    """Open K slow streams at once; RSS growth / K is the memory cost of one open stream."""
    k = settings.hold_streams
    stream_s = settings.deltas * settings.slow_delay_ms / 1000
    up.control(delta_delay_ms=settings.slow_delay_ms)
    before = tree_rss_bytes(child.pid)
    argv = [*loadgen_argv(settings, spec, port, "stream", "hold"), "--streams", str(k)]
    argv += ["--timeout", str(stream_s)]
    proc = spawn_driver(argv, RESULTS_DIR / "logs" / "loadgen.log", stdin=True)
    try:
        line = read_line(proc, stream_s + 5)
        time.sleep(0.2)
        during, upstream_open = tree_rss_bytes(child.pid), up.stats()["open_streams"]
        # a line on stdin tells the driver to drop its K connections and report
        summary = last_json_line(proc.communicate(input=b"\n", timeout=stream_s + 10)[0])
    finally:
        kill_group(proc)
        up.control(delta_delay_ms=0)
    time.sleep(1.0)
    left_open = up.stats()["open_streams"]
    wait_for(lambda: up.stats()["open_streams"] == 0, stream_s + 2, interval=0.2)
    ready = int(line.split()[1]) if line.startswith("READY") else 0
    return {
        "streams": k,
        "ready": ready,
        "upstream_open_during": upstream_open,
        "upstream_still_open_1s_after_disconnect": left_open,
        "rss_before_bytes": before,
        "rss_during_bytes": during,
        "rss_per_stream_bytes": (during - before) / ready if ready else None,
        "driver": summary,
    }


# ---------------------------------------------------------------- one target


def verify_mode(settings: Settings, spec: TargetSpec, port: int, up: UpstreamClient, mode: str) -> JSON:
    """One request: 2xx with the expected marker, and exactly one upstream POST /v1/responses shaped as such."""
    before = up.responses_count()
    headers = dict(h.split(": ", 1) for h in settings.headers)
    headers["content-type"] = "application/json"
    with httpx.Client(timeout=120.0) as client:
        body = settings.bodies[mode].read_bytes()
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


def verify(settings: Settings, spec: TargetSpec, port: int, up: UpstreamClient) -> tuple[JSON, list[str]]:
    """Check each mode once; return the checks and the modes that work (failures are recorded, not raised)."""
    checks: JSON = {}
    for mode in settings.modes:
        try:
            checks[mode] = verify_mode(settings, spec, port, up, mode)
        except BenchError as exc:
            print(f"{spec.name}: {mode} does not work, not measured: {exc}", file=sys.stderr)
            checks[mode] = {"error": str(exc)}
    working = [m for m in settings.modes if "error" not in checks[m]]
    if not working:
        raise BenchError(f"{spec.name}: no mode works: {checks}")
    return checks, working


@contextlib.contextmanager
def started(settings: Settings, spec: TargetSpec, upstream_base: str, tag: str) -> Iterator[tuple[Child, int, float]]:
    """A fresh target process listening on a free port: (child, port, start-up seconds); always stopped."""
    port = free_port()
    launch = spec.launch(port, upstream_base, settings.workers)
    log = RESULTS_DIR / "logs" / f"{spec.name}-{tag}.log"
    with Child(launch.argv, log=log, cores=TARGET_CORES, env=launch.env, cwd=REPO_DIR) as child:
        began = time.monotonic()
        if not child.wait_port(port, spec.startup_timeout):
            raise BenchError(f"{spec.name} did not start listening on {port}:\n{child.log_tail()}")
        yield child, port, time.monotonic() - began


class Launcher:
    """Hands out target processes: a fresh one per use, or (with `reuse`) one shared by every use."""

    def __init__(self, settings: Settings, spec: TargetSpec, upstream_base: str, stack: contextlib.ExitStack) -> None:
        self.settings, self.spec, self.base, self.stack = settings, spec, upstream_base, stack
        self.shared: tuple[Child, int, float] | None = None

    @contextlib.contextmanager
    def process(self, tag: str) -> Iterator[tuple[Child, int, float]]:
        """A listening target process for one step."""
        if not self.settings.fresh:
            if self.shared is None:
                self.shared = self.stack.enter_context(started(self.settings, self.spec, self.base, "shared"))
            yield self.shared
            return
        with started(self.settings, self.spec, self.base, tag) as proc:
            yield proc


def bench_target(settings: Settings, spec: TargetSpec, up: UpstreamClient, upstream_base: str) -> JSON:
    """Verify a target and measure it; by default every cell runs in a fresh process (no inherited pools)."""
    with contextlib.ExitStack() as stack:
        launcher = Launcher(settings, spec, upstream_base, stack)
        with launcher.process("verify") as (child, port, startup_s):
            checks, working = verify(settings, spec, port, up)
            time.sleep(0.5)
            idle = tree_rss_bytes(child.pid)
        cells: JSON = {}
        streams: JSON | None = None
        if "stream" in working:
            with launcher.process("burst") as (child, port, _):
                verify_mode(settings, spec, port, up, "stream")
                streams = measure_open_streams(settings, spec, child, port, up)
                if "non-stream" in working:
                    cells["after-burst/c1"] = run_cell(settings, spec, child, port, up, "non-stream", 1)
                    progress(spec.name, "after-burst", 1, cells["after-burst/c1"])
        for mode in working:
            for c in settings.concurrencies:
                with launcher.process(f"{mode}-c{c}") as (child, port, _):
                    cells[f"{mode}/c{c}"] = run_cell(settings, spec, child, port, up, mode, c)
                progress(spec.name, mode, c, cells[f"{mode}/c{c}"])
    peaks = [int(v["peak_rss_bytes"]) for v in cells.values()] + [streams["rss_during_bytes"] if streams else 0]
    return {
        "label": spec.label,
        "argv": spec.launch(0, upstream_base, settings.workers).argv,
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


# ---------------------------------------------------------------- verdicts


def problems(results: JSON) -> list[str]:
    """Everything that makes the run fail: target failures, request errors, crashed workers, streams not opened."""
    found = [f"{name}: {reason}" for name, reason in results["failed"].items()]
    for name, res in results["targets"].items():
        for key, cell in res["cells"].items():
            if cell["total_errors"] or cell.get("worker_crashes"):
                found.append(
                    f"{name} {key}: {cell['total_errors']} errors {cell['error_samples'][:2]}"
                    f" {cell.get('worker_crashes', [])[:2]}"
                )
        found += [f"{name} {mode}: {check['error']}" for mode, check in res["checks"].items() if "error" in check]
        held = res["open_streams"]
        if held is not None and held["ready"] < held["streams"]:
            found.append(f"{name}: only {held['ready']} of {held['streams']} slow streams delivered a first token")
    return found


def notes(results: JSON) -> list[str]:
    """Caveats: cells where other processes used the CPU, or the driver core was close to saturation."""
    found = []
    for name, res in results["targets"].items():
        for key, cell in res["cells"].items():
            if cell["other_processes_cpu_util"] > 0.15:
                found.append(
                    f"{name} {key}: other processes used {cell['other_processes_cpu_util']:.2f} of a core "
                    "meanwhile: the figure is disturbed"
                )
            driver = cell["loadgen_cpu_util"] + cell["upstream_cpu_util"]
            if driver > 0.85 and cell["target_cpu_util"] < 0.9:
                found.append(
                    f"{name} {key}: driver core busy ({driver:.2f}) while the target used "
                    f"{cell['target_cpu_util']:.2f} of its core: the figure may be driver-bound"
                )
    return found


# ---------------------------------------------------------------- main


def parse_args(argv: list[str]) -> Settings:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", default="bridge,litellm,floor", help="comma-separated: bridge,litellm,floor,routed")
    ap.add_argument("--quick", action="store_true", help="seconds-long smoke run (short cells, few streams)")
    ap.add_argument("--concurrency", default="1,32,256")
    ap.add_argument("--modes", default="non-stream,stream")
    ap.add_argument("--duration", type=float, default=None, help="measured seconds per cell (default 5, quick 0.8)")
    ap.add_argument("--warmup", type=float, default=None, help="warm-up seconds per cell (default 1, quick 0.2)")
    ap.add_argument("--deltas", type=int, default=100, help="text deltas per upstream stream")
    ap.add_argument("--shape", choices=["text", "tool"], default="text", help="upstream output: text or a tool call")
    ap.add_argument("--hold-streams", type=int, default=None, help="slow streams held open (default 200, quick 32)")
    ap.add_argument("--slow-delay-ms", type=float, default=None, help="delay between deltas in the slow-stream test")
    ap.add_argument(
        "--min-rounds",
        type=int,
        default=None,
        help="measure at least this many requests per worker (default 2, quick 0)",
    )
    ap.add_argument("--cell-cap", type=float, default=None, help="hard limit per cell, seconds (default 90, quick 8)")
    ap.add_argument(
        "--reuse-process",
        action="store_true",
        help="one target process for all cells (default with --quick); otherwise a fresh process per cell",
    )
    ap.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        help="first wait up to this many seconds for other processes to leave the CPU idle",
    )
    ap.add_argument("--workers", type=int, default=None, help="pass --workers N to the gateway (and LiteLLM)")
    ap.add_argument("--capture", type=Path, default=DEFAULT_CAPTURE, help="capture file with request.body")
    a = ap.parse_args(argv)
    targets = [t.strip() for t in a.targets.split(",") if t.strip()]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        ap.error(f"unknown targets {unknown}; choose from {sorted(TARGETS)}")
    return Settings(
        targets=targets,
        concurrencies=[int(c) for c in a.concurrency.split(",")],
        modes=[m for m in a.modes.split(",") if m in ("non-stream", "stream")],
        duration=a.duration or (0.5 if a.quick else 5.0),
        warmup=a.warmup or (0.2 if a.quick else 1.0),
        request_timeout=10.0 if a.quick else 60.0,
        deltas=a.deltas,
        shape=a.shape,
        hold_streams=a.hold_streams or (32 if a.quick else 200),
        slow_delay_ms=a.slow_delay_ms or (5.0 if a.quick else 100.0),
        workers=a.workers,
        capture=a.capture,
        min_rounds=a.min_rounds if a.min_rounds is not None else (0 if a.quick else 2),
        cell_cap=a.cell_cap or (8.0 if a.quick else 90.0),
        fresh=not (a.quick or a.reuse_process),
        wait_quiet=a.wait_quiet,
        quick=a.quick,
    )


def run(settings: Settings) -> JSON:
    """Start the upstream, benchmark every available target in turn, return all results."""
    prepare_inputs(settings)
    results: JSON = {"targets": {}, "skipped": {}, "failed": {}}
    up_port = free_port()
    up_argv = [
        sys.executable,
        "-m",
        "bench.upstream",
        "--port",
        str(up_port),
        "--deltas",
        str(settings.deltas),
        "--shape",
        settings.shape,
    ]
    log = RESULTS_DIR / "logs" / "upstream.log"
    with Child(up_argv, log=log, cores=DRIVER_CORES, cwd=REPO_DIR) as upstream:
        if not upstream.wait_port(up_port, 15):
            raise BenchError(f"fake upstream did not start:\n{upstream.log_tail()}")
        up = UpstreamClient(up_port)
        for name in settings.targets:
            spec = TARGETS[name]
            reason = spec.check()
            if reason:
                print(f"{name}: skipped ({reason})", file=sys.stderr)
                results["skipped"][name] = reason
                continue
            print(f"{name}: benchmarking", file=sys.stderr)
            try:
                results["targets"][name] = bench_target(settings, spec, up, f"http://{HOST}:{up_port}/v1")
            except (BenchError, OSError, httpx.HTTPError, subprocess.SubprocessError, ValueError) as exc:
                print(f"{name}: FAILED: {exc}", file=sys.stderr)
                results["failed"][name] = str(exc)
        results["upstream"] = up.stats()
    return results


def wait_quiet(limit_s: float, *, window: float = 2.0, threshold: float = 0.15) -> bool:
    """Wait (at most `limit_s`) until the machine spends under `threshold` of a core busy over `window` seconds."""
    deadline = time.monotonic() + limit_s
    while True:
        busy0 = machine_busy_seconds()
        time.sleep(window)
        load = (machine_busy_seconds() - busy0) / window
        if load < threshold:
            return True
        if time.monotonic() >= deadline:
            print(f"machine still busy ({load:.2f} cores); measuring anyway", file=sys.stderr)
            return False
        print(f"waiting for a quiet machine ({load:.2f} cores busy)", file=sys.stderr)


def machine() -> JSON:
    """Facts about the machine that bound the figures."""
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "target_cores": sorted(usable_cores(TARGET_CORES)),
        "driver_cores": sorted(usable_cores(DRIVER_CORES)),
    }


def main(argv: list[str] | None = None) -> int:
    """Run, print the table, write bench/results/latest.json; exit 1 on any problem."""
    settings = parse_args(sys.argv[1:] if argv is None else argv)
    quiet = wait_quiet(settings.wait_quiet) if settings.wait_quiet > 0 else None
    results = run(settings)
    results["machine_quiet_at_start"] = quiet
    results["settings"] = {
        k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items() if k not in ("bodies", "headers")
    }
    results["machine"] = machine()
    results["problems"], results["notes"] = problems(results), notes(results)
    labels = {name: TARGETS[name].label for name in settings.targets}
    ran = [t for t in settings.targets if t in results["targets"]]
    print(render_table(ran, results["targets"], settings.concurrencies, labels))
    for line in [
        *(f"- skipped {k}: {v}" for k, v in results["skipped"].items()),
        *(f"- note: {n}" for n in results["notes"]),
        *(f"- PROBLEM: {p}" for p in results["problems"]),
    ]:
        print(line)
    out = RESULTS_DIR / "latest.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nresults: {out.relative_to(REPO_DIR)}", file=sys.stderr)
    return 1 if results["problems"] or not ran else 0


if __name__ == "__main__":
    sys.exit(main())
