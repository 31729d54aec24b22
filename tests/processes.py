"""`messages-bridge serve` as a real process, for the slow tests that need one: a clean environment (which the CLI
tests use in process too), its output in a log file, handed over once `/healthz` answers, and stopped however the
test ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import httpx

from tests.servers import free_port

START_WITHIN = 30.0  # seconds for a process to answer /healthz (a bound: a broken start fails instead of hanging)
STOP_WITHIN = 20.0  # seconds for a graceful stop before the process group is killed


class GatewayProcess(NamedTuple):
    url: str
    proc: subprocess.Popen[bytes]
    log: Path


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the developer's own `BRIDGE_*`, `OPENAI_*` and `AZURE_*` settings (the
    gateway reads them all), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "OPENAI_", "AZURE_"))}
    return env | extra


@contextmanager
def gateway_process(env: Mapping[str, str], log: Path, *args: str) -> Iterator[GatewayProcess]:
    """`python -m messages_bridge serve --port <free> *args` in its own process group, writing to `log`; on exit
    SIGTERM (a graceful stop flushes what the gateway holds), then SIGKILL of the group if it lingers."""
    port = free_port()
    command = [sys.executable, "-m", "messages_bridge", "serve", "--port", str(port), *args]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=dict(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        gateway = GatewayProcess(f"http://127.0.0.1:{port}", proc, log)
        _wait_healthy(gateway)
        yield gateway
    finally:
        _stop(proc)


def wait_for(condition: Callable[[], bool], within: float = 30.0) -> None:
    """Poll `condition` (what another process does shows up in its own time) until it holds, at most `within` s."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {within} s")
        time.sleep(0.05)


def _wait_healthy(gateway: GatewayProcess) -> None:
    deadline = time.monotonic() + START_WITHIN
    with httpx.Client(base_url=gateway.url, timeout=2) as http:
        while time.monotonic() < deadline and gateway.proc.poll() is None:
            try:
                if http.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    code = gateway.proc.poll()
    tail = gateway.log.read_text(errors="replace")[-3000:]
    raise AssertionError(f"the gateway did not answer /healthz within {START_WITHIN} s (exit code {code}):\n{tail}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_WITHIN)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
