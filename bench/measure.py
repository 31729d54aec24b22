"""The measurements: load-generator runs against one target process (one cell of the matrix, open slow streams)."""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Set
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.options import RESULTS_DIR, BenchOptions
from bench.procs import Child
from bench.sysinfo import machine_busy_seconds, pinning_preexec, tree_cpu_seconds, tree_rss_bytes, wait_for
from bench.targets import REPO_DIR, TargetSpec
from bench.upstream_client import UpstreamClient

JSON = dict[str, Any]


def loadgen_argv(options: BenchOptions, spec: TargetSpec, port: int, mode: str, command: str) -> list[str]:
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
        str(options.bodies[mode]),
        "--timeout",
        str(options.request_timeout),
        "--done",
        spec.markers["stream_done" if stream else "json_done"],
    ]
    if stream:
        key = "stream_first_token_tool" if options.shape == "tool" else "stream_first_token"
        argv += ["--first-token", spec.markers[key]]
    for header in options.headers:
        argv += ["--header", header]
    return argv


def spawn_driver(argv: list[str], log: Path, cores: Set[int], *, stdin: bool = False) -> subprocess.Popen[bytes]:
    """Start a load-generator process on the driver cores, in its own session."""
    with log.open("ab") as err:
        return subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=REPO_DIR,
            start_new_session=True,
            preexec_fn=pinning_preexec(cores),
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


def run_cell(
    options: BenchOptions, spec: TargetSpec, child: Child, port: int, up: UpstreamClient, mode: str, concurrency: int
) -> JSON:
    """Closed-loop load at one concurrency; adds the target's CPU per request and peak RSS."""
    argv = loadgen_argv(options, spec, port, mode, "run")
    argv += [
        "-c",
        str(concurrency),
        "--duration",
        str(options.duration),
        "--warmup",
        str(options.warmup),
        "--min-requests",
        str(concurrency * options.min_rounds),
        "--cap",
        str(options.cell_cap),
    ]
    up_cpu0, cpu0, wall0 = up.stats()["cpu_s"], tree_cpu_seconds(child.pid), time.monotonic()
    busy0 = machine_busy_seconds()
    proc = spawn_driver(argv, RESULTS_DIR / "logs" / "loadgen.log", options.cores.driver)
    try:
        deadline = wall0 + options.cell_cap + options.request_timeout + 15
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


def read_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """One stdout line from a driver, or "" after `timeout` seconds."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline().decode(errors="replace").strip() if ready else ""


def measure_open_streams(options: BenchOptions, spec: TargetSpec, child: Child, port: int, up: UpstreamClient) -> JSON:
    """Open K slow streams at once; RSS growth / K is the memory cost of one open stream."""
    k = options.hold_streams
    stream_s = options.deltas * options.slow_delay_ms / 1000
    up.control(delta_delay_ms=options.slow_delay_ms)
    before = tree_rss_bytes(child.pid)
    argv = [*loadgen_argv(options, spec, port, "stream", "hold"), "--streams", str(k)]
    argv += ["--timeout", str(stream_s)]
    proc = spawn_driver(argv, RESULTS_DIR / "logs" / "loadgen.log", options.cores.driver, stdin=True)
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
