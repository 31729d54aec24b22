"""Real Redis and PostgreSQL servers for the tests, started on 127.0.0.1 in temporary directories.

Never the system services: each server gets its own data directory and a free port, and is stopped by its
process id. The binaries come from Debian's `redis-server` and `postgresql` packages (`.ci/run` installs them).
A missing binary fails the test that needs it with a message saying what to install — never a skip.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import free_port

_START_TIMEOUT = 30.0


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {_START_TIMEOUT} s")


def _stop(proc: subprocess.Popen[bytes], what: str, sig: signal.Signals = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=_START_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=_START_TIMEOUT)


def _require(binary: str | None, package: str) -> str:
    if binary is None:
        pytest.fail(f"{package} is not installed: apt-get install {package} (.ci/run does it)")
    return binary


class RedisServer:
    """One redis-server on 127.0.0.1; `restart()` keeps its port and data directory (and so its dump)."""

    def __init__(self, directory: Path, *, appendonly: bool = False) -> None:
        self.directory = directory
        self.port = free_port()
        self.appendonly = appendonly
        self._binary = _require(shutil.which("redis-server"), "redis-server")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self) -> None:
        args = [self._binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        args += ["--save", "", "--appendonly", "yes" if self.appendonly else "no", "--protected-mode", "no"]
        log = open(self.directory / "redis.log", "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self._proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        _wait_for_port(self.port, self._proc, "redis-server")

    def stop(self) -> None:
        if self._proc is not None:
            _stop(self._proc, "redis-server")
            self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


def _postgres_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _as_postgres_user() -> dict[str, object]:
    """PostgreSQL refuses to run as root: drop to the `postgres` system user when we are root."""
    if os.geteuid() != 0:
        return {}
    user = pwd.getpwnam("postgres")
    return {"user": user.pw_uid, "group": user.pw_gid}


class PostgresServer:
    """One PostgreSQL cluster on 127.0.0.1 (trust auth, user `postgres`); `restart()` keeps its data."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.data = directory / "pgdata"
        self.port = free_port()
        self._postgres = _require(_postgres_bin("postgres"), "postgresql")
        self._initdb = _require(_postgres_bin("initdb"), "postgresql")
        self._proc: subprocess.Popen[bytes] | None = None
        self._user = _as_postgres_user()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def _chown(self, path: Path) -> None:
        if self._user:
            os.chown(path, int(str(self._user["user"])), int(str(self._user["group"])))

    def init(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._chown(self.directory)
        args = [self._initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"]
        subprocess.run(args, check=True, capture_output=True, timeout=120, **self._user)  # type: ignore[call-overload]

    def start(self) -> None:
        if not self.data.exists():
            self.init()
        args = [self._postgres, "-D", str(self.data), "-p", str(self.port), "-k", str(self.directory)]
        args += ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200"]
        log = open(self.directory / "postgres.log", "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self._proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, **self._user)  # type: ignore[call-overload]
        log.close()
        _wait_for_port(self.port, self._proc, "postgres")
        self._wait_ready()

    def _wait_ready(self) -> None:
        """The port opens before the cluster accepts queries; wait for a real connection to succeed."""
        psql = _postgres_bin("psql")
        deadline = time.monotonic() + _START_TIMEOUT
        while psql and time.monotonic() < deadline:
            probe = subprocess.run([psql, self.url, "-c", "select 1"], capture_output=True, timeout=10, check=False)
            if probe.returncode == 0:
                return
            time.sleep(0.1)

    def stop(self) -> None:
        if self._proc is not None:
            # SIGINT is PostgreSQL's "fast" shutdown (what `pg_ctl stop` and service managers use): clients are
            # disconnected. SIGTERM's "smart" shutdown waits for every client to leave, and a connection pool never
            # does, so a restart would sit out the whole timeout and end in SIGKILL.
            _stop(self._proc, "postgres", signal.SIGINT)
            self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@contextlib.contextmanager
def running_redis(directory: Path, *, appendonly: bool = False) -> Iterator[RedisServer]:
    server = RedisServer(directory, appendonly=appendonly)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def running_postgres(directory: Path) -> Iterator[PostgresServer]:
    server = PostgresServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server for one test (restart it freely)."""
    directory = tmp_path / "redis"
    directory.mkdir()
    with running_redis(directory) as server:
        yield server


@pytest.fixture
def postgres_server() -> Iterator[PostgresServer]:
    """A fresh PostgreSQL cluster for one test (restart it freely).

    Its directory is directly under the system temp dir: pytest's own tmp tree is private to root, and the
    server runs as the `postgres` user when the tests run as root.
    """
    directory = Path(tempfile.mkdtemp(prefix="messages-bridge-pg-"))
    try:
        with running_postgres(directory) as server:
            yield server
    finally:
        shutil.rmtree(directory, ignore_errors=True)
