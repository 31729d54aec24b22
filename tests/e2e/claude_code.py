"""The real Claude Code CLI for the end-to-end tests: a pinned npm install in a cache folder, and a `claude -p` runner.

The install goes to `<repo>/.cache/claude-code` (gitignored; `MB_CLAUDE_CODE_CACHE` overrides it, e.g. for a CI
cache), never a global prefix. A fresh clone installs on first use; an install that fails raises, so the tests
fail loudly rather than skip.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VERSION = "2.1.197"  # the version tests/fixtures/captures were recorded with
PACKAGE = f"@anthropic-ai/claude-code@{VERSION}"
INSTALL_TIMEOUT = 600.0
RUN_TIMEOUT = 60.0
REPO_ROOT = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    return Path(os.environ.get("MB_CLAUDE_CODE_CACHE") or REPO_ROOT / ".cache" / "claude-code")


def _installed_version(binary: Path) -> str | None:
    if not binary.exists():
        return None
    try:
        done = subprocess.run(
            [str(binary), "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env={**os.environ, "DISABLE_AUTOUPDATER": "1"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.split()[0] if done.returncode == 0 and done.stdout.strip() else None


def ensure_installed() -> tuple[Path, float]:
    """The `claude` binary of the pinned version (installed now if missing), and the seconds the install took."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not on PATH: the Claude Code end-to-end tests need Node.js and npm")
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    binary = folder / "node_modules" / ".bin" / "claude"
    # Parallel test sessions in one checkout share the cache: one installs, the others wait for it.
    with (folder / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed_version(binary) == VERSION:
            return binary, 0.0
        manifest = folder / "package.json"
        if not manifest.exists():
            manifest.write_text('{"private": true}\n')
        started = time.monotonic()
        try:
            command = [npm, "install", "--no-audit", "--no-fund", "--save-exact", "--prefix", str(folder), PACKAGE]
            done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"npm install {PACKAGE} timed out after {INSTALL_TIMEOUT:.0f} s") from exc
        elapsed = time.monotonic() - started
        if done.returncode != 0:
            raise RuntimeError(f"npm install {PACKAGE} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        found = _installed_version(binary)
        if found != VERSION:
            raise RuntimeError(f"npm install {PACKAGE} left {binary} reporting version {found!r}:\n{done.stderr}")
        return binary, elapsed


@dataclass(slots=True)
class ClaudeRun:
    """One finished `claude -p --output-format json` process."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def result(self) -> dict[str, Any]:
        """The JSON result object Claude Code printed (fails the test with its output when there is none)."""
        try:
            value = json.loads(self.stdout)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"claude printed no JSON result (rc={self.returncode}):\n{self.describe()}") from exc
        assert isinstance(value, dict), self.describe()
        return value

    def describe(self) -> str:
        return f"--- stdout ---\n{self.stdout[-4000:]}\n--- stderr ---\n{self.stderr[-4000:]}"


def claude_env(base_url: str, home: Path, **extra: str) -> dict[str, str]:
    """A minimal environment: only PATH from the host, a fresh HOME, and everything that phones home turned off."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": "any",
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL": "1",
        **extra,
    }


def run_claude(
    binary: Path,
    prompt: str,
    *,
    env: dict[str, str],
    cwd: Path,
    args: tuple[str, ...] = (),
    timeout: float = RUN_TIMEOUT,
) -> ClaudeRun:
    """Run `claude -p <prompt> --output-format json` to completion; a hang past `timeout` fails the test.

    The CLI runs in its own process group so a timeout also stops the shells its Bash tool started.
    """
    command = [str(binary), "-p", prompt, "--output-format", "json", *args]
    started = time.monotonic()
    with subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate(timeout=10)
            tail = f"{stdout[-2000:]}\n{stderr[-2000:]}"
            raise AssertionError(f"claude -p did not finish within {timeout:.0f} s\n{tail}") from exc
    return ClaudeRun(process.returncode, stdout, stderr, time.monotonic() - started)
