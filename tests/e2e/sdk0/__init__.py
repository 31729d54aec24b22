"""The 0.x anthropic SDK (sends `anthropic-version: 2023-06-01` and `x-api-key`), installed apart from the venv.

`ensure_installed()` puts anthropic==0.125.0 into `<repo>/.cache/anthropic-0x` (gitignored) with `--no-deps`: it
runs on the venv's httpx/pydantic. `check.py` runs in a subprocess with that folder first on PYTHONPATH, so the
test process keeps the current 2.x SDK.
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path

VERSION = "0.125.0"
REPO_ROOT = Path(__file__).resolve().parents[3]
TARGET = REPO_ROOT / ".cache" / "anthropic-0x"
CHECK_SCRIPT = Path(__file__).with_name("check.py")


def _installed() -> bool:
    return (TARGET / f"anthropic-{VERSION}.dist-info").is_dir()


def ensure_installed() -> Path:
    """The folder holding anthropic==0.125.0 (installed now if missing; an install failure raises)."""
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    with (TARGET.parent / ".anthropic-0x.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel sessions in one checkout: one installs, the others wait
        if not _installed():
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--no-deps",
                    "--upgrade",
                    "--target",
                    str(TARGET),
                    f"anthropic=={VERSION}",
                ],
                check=True,
                timeout=300,
            )
    return TARGET
