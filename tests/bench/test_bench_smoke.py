"""A seconds-long smoke of the benchmark harness, so `python -m bench.run` keeps working (no timing assertions).

The real numbers come from a full run on a quiet machine (README, "Performance"); here only the harness's own
checks count: every target starts, answers both modes correctly, and no request fails.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_benchmark_of_bridge_floor_and_routed_runs_clean() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--targets", "bridge,floor,routed", "--concurrency", "1,32"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    assert "| non-stream | 32 | req/s |" in run.stdout and "| stream | 32 | req/s |" in run.stdout
    assert "bridge/floor" in run.stdout and "routed/bridge" in run.stdout
