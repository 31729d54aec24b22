"""Prometheus multi-process mode for several uvicorn workers (no prometheus import here: the variable must be set
before any worker imports prometheus-client)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_metrics_dir(workers: int) -> Path | None:
    """Set up the shared metrics directory when several workers will run; returns a directory to remove at exit.

    A directory the operator chose is emptied of stale `*.db` files (prometheus-client requires a clean one per run);
    without one, a temporary directory is created and exported to the workers.
    """
    if given := os.environ.get(ENV):
        for stale in Path(given).glob("*.db"):
            stale.unlink()
        return None
    if workers <= 1:
        return None
    created = Path(tempfile.mkdtemp(prefix="messages-bridge-metrics-"))
    os.environ[ENV] = str(created)
    return created


def remove_metrics_dir(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)
