"""A seconds-long run of bench/threads.py, so it keeps working (it checks its own answers; no timing assertions)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_threads_benchmark_runs_clean() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.threads", "--turns", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert "| client bytes sent per turn, mean of turns 2+ |" in run.stdout
    assert "| time to first token, median of all turns (ms) |" in run.stdout
