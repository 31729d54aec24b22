"""Benchmark messages-bridge against the pass-through floor and LiteLLM behind one fake Responses upstream.

  python -m bench.run                         full matrix for bridge, litellm and floor (those available)
  python -m bench.run --quick --targets floor seconds-long smoke; exits non-zero on any error

Cores are chosen from those this process may use (bench/cores.py): the target gets one core per worker, the fake
upstream and the load generator the others (on a 2-core machine: target on the first, drivers on the second).
Prints one markdown table and writes bench/results/latest.json.

The jobs live in their own modules: options.py (command line), inputs.py (the request), target_run.py (verify and
measure one target), measure.py (load-generator runs), verdicts.py (problems and notes), report.py (the table).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from bench.errors import BenchError
from bench.inputs import prepare_inputs
from bench.options import RESULTS_DIR, BenchOptions, parse_args
from bench.procs import HOST, Child, free_port
from bench.report import render_table
from bench.sysinfo import machine_busy_seconds
from bench.target_run import bench_target
from bench.targets import REPO_DIR, TARGETS
from bench.upstream_client import UpstreamClient
from bench.verdicts import notes, problems

JSON = dict[str, Any]


def _upstream_argv(options: BenchOptions, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench.upstream",
        "--port",
        str(port),
        "--deltas",
        str(options.deltas),
        "--shape",
        options.shape,
    ]


def _bench_all(options: BenchOptions, up: UpstreamClient, upstream_base: str, results: JSON) -> None:
    for name in options.targets:
        spec = TARGETS[name]
        reason = spec.check()
        if reason:
            print(f"{name}: skipped ({reason})", file=sys.stderr)
            results["skipped"][name] = reason
            continue
        print(f"{name}: benchmarking", file=sys.stderr)
        try:
            results["targets"][name] = bench_target(options, spec, up, upstream_base)
        except (BenchError, OSError, httpx.HTTPError, subprocess.SubprocessError, ValueError) as exc:
            print(f"{name}: FAILED: {exc}", file=sys.stderr)
            results["failed"][name] = str(exc)


def run(options: BenchOptions) -> JSON:
    """Start the upstream, benchmark every available target in turn, return all results."""
    prepare_inputs(options)
    results: JSON = {"targets": {}, "skipped": {}, "failed": {}}
    up_port = free_port()
    log = RESULTS_DIR / "logs" / "upstream.log"
    with Child(_upstream_argv(options, up_port), log=log, cores=options.cores.driver, cwd=REPO_DIR) as upstream:
        if not upstream.wait_port(up_port, 15):
            raise BenchError(f"fake upstream did not start:\n{upstream.log_tail()}")
        up = UpstreamClient(up_port)
        _bench_all(options, up, f"http://{HOST}:{up_port}/v1", results)
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


def machine(options: BenchOptions) -> JSON:
    """Facts about the machine that bound the figures."""
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "usable_cpus": sorted(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "target_cores": sorted(options.cores.target),
        "driver_cores": sorted(options.cores.driver),
    }


def _report(options: BenchOptions, results: JSON) -> list[str]:
    """The table and the list of skips, notes and problems (stdout)."""
    labels = {name: TARGETS[name].label for name in options.targets}
    ran = [t for t in options.targets if t in results["targets"]]
    return [
        render_table(ran, results["targets"], options.concurrencies, labels),
        *(f"- skipped {k}: {v}" for k, v in results["skipped"].items()),
        *(f"- note: {n}" for n in results["notes"]),
        *(f"- PROBLEM: {p}" for p in results["problems"]),
    ]


def main(argv: list[str] | None = None) -> int:
    """Run, print the table, write bench/results/latest.json; exit 1 on any problem."""
    options = parse_args(sys.argv[1:] if argv is None else argv, __doc__)
    quiet = wait_quiet(options.wait_quiet) if options.wait_quiet > 0 else None
    results = run(options)
    results["machine_quiet_at_start"] = quiet
    results["settings"] = {
        k: str(v) if isinstance(v, Path) else v
        for k, v in asdict(options).items()
        if k not in ("bodies", "headers", "cores")
    }
    results["machine"] = machine(options)
    results["problems"], results["notes"] = problems(results), notes(results)
    for line in _report(options, results):
        print(line)
    out = RESULTS_DIR / "latest.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nresults: {out.relative_to(REPO_DIR)}", file=sys.stderr)
    ran = [t for t in options.targets if t in results["targets"]]
    return 1 if results["problems"] or not ran else 0


if __name__ == "__main__":
    sys.exit(main())
