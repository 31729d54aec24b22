"""What one benchmark run does: its options (from the command line), paths, and the cores it uses."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

from bench.cores import CoreLayout, choose_cores
from bench.targets import REPO_DIR, TARGETS

RESULTS_DIR = REPO_DIR / "bench" / "results"
CAPTURES_DIR = REPO_DIR / "tests" / "fixtures" / "captures"
CAPTURE_NAME = "messages_main_first_turn_opus_default.json"
DEFAULT_CAPTURE = Path(os.environ.get("BENCH_CAPTURE", str(CAPTURES_DIR / CAPTURE_NAME)))


@dataclass
class BenchOptions:
    """What to run, for how long, and where; `bodies` and `headers` are filled by `inputs.prepare_inputs`."""

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
    cores: CoreLayout
    bodies: dict[str, Path] = field(default_factory=dict)
    headers: list[str] = field(default_factory=list)


def _parser(description: str | None) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    return ap


def parse_args(argv: list[str], description: str | None = None) -> BenchOptions:
    """Options from the command line; quick runs get short defaults."""
    ap = _parser(description)
    a = ap.parse_args(argv)
    targets = [t.strip() for t in a.targets.split(",") if t.strip()]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        ap.error(f"unknown targets {unknown}; choose from {sorted(TARGETS)}")
    return BenchOptions(
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
        cores=choose_cores(target_workers=a.workers or 1),
    )
