"""The official TypeScript SDK for the thread tests: a pinned npm install in `<repo>/.cache/anthropic-sdk-ts`
(gitignored; `MB_ANTHROPIC_TS_CACHE` overrides it), installed on first use; a failed install fails the tests."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

VERSION = "1.14.0"  # the version THREADS.md cites
PACKAGE = f"@anthropic-ai/sdk@{VERSION}"
INSTALL_TIMEOUT = 600.0
REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("ts_tool_runner.mjs")


def cache_dir() -> Path:
    return Path(os.environ.get("MB_ANTHROPIC_TS_CACHE") or REPO_ROOT / ".cache" / "anthropic-sdk-ts")


def _installed(folder: Path) -> str | None:
    manifest = folder / "node_modules" / "@anthropic-ai" / "sdk" / "package.json"
    return json.loads(manifest.read_text()).get("version") if manifest.exists() else None


def ensure_installed() -> Path:
    """The folder whose node_modules holds the pinned SDK (the script is copied next to it, so imports resolve)."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not on PATH: the TypeScript SDK tests need Node.js and npm")
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed(folder) != VERSION:
            (folder / "package.json").write_text('{"private": true, "type": "module"}\n')
            command = [npm, "install", "--no-audit", "--no-fund", "--save-exact", "--prefix", str(folder), PACKAGE]
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False)
            except subprocess.TimeoutExpired as exc:
                raise RuntimeError(f"npm install {PACKAGE} timed out") from exc
            if done.returncode != 0 or _installed(folder) != VERSION:
                raise RuntimeError(f"npm install {PACKAGE} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        # Replaced whole, never rewritten in place: another test process may be running the copy already there.
        staged = folder / f".{SCRIPT.name}.{os.getpid()}"
        shutil.copyfile(SCRIPT, staged)
        staged.replace(folder / SCRIPT.name)
    return folder


def run_script(folder: Path, env: dict[str, str], timeout: float = 120.0) -> dict[str, Any]:
    """Run the script to its end; returns the JSON it printed last (a failure fails the test with its output)."""
    node = shutil.which("node")
    assert node is not None, "node is not on PATH"
    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(folder), **env}
    done = subprocess.run(
        [node, SCRIPT.name], cwd=folder, env=full, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"node failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
