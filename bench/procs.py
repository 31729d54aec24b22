"""Child processes for the benchmark: own session (process group), pinned, logged, always killed."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence, Set
from pathlib import Path
from types import TracebackType

from bench.sysinfo import pinning_preexec, wait_for

HOST = "127.0.0.1"


def free_port() -> int:
    """An unused loopback TCP port (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    """True when something accepts TCP connections on the loopback port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((HOST, port)) == 0


class Child:
    """A child process in its own session, pinned to `cores`, output sent to `log`.

    Use as a context manager: on exit the whole process group gets SIGTERM, then SIGKILL.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log: Path,
        cores: Set[int],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log = log
        self.cores = cores
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The child's pid (it must be running)."""
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        """True while the child has not exited."""
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> Child:
        """Spawn the child."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=pinning_preexec(self.cores),
            )
        return self

    def wait_port(self, port: int, timeout: float) -> bool:
        """Wait until the child listens on `port`; False if it died or the time ran out."""
        return wait_for(lambda: not self.alive() or port_open(port), timeout) and self.alive()

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the child's output, for error messages."""
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left after `grace` seconds."""
        if self.proc is None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):  # the leader may be gone while members of its group linger
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc = None

    def __enter__(self) -> Child:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def run_captured(argv: Sequence[str], *, cores: Set[int], timeout: float) -> subprocess.CompletedProcess[bytes]:
    """Run a short-lived child to completion (pinned, own session); kill its group on timeout."""
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=pinning_preexec(cores),
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def sleep_until(deadline: float) -> None:
    """Sleep until a monotonic deadline (no-op if it passed)."""
    time.sleep(max(0.0, deadline - time.monotonic()))
