"""The real-service fixtures start, answer, and keep their data across a restart (what the ledger tests rely on)."""

from __future__ import annotations

import socket
import subprocess

import pytest

from tests.services import PostgresServer, RedisServer, _postgres_bin

pytestmark = pytest.mark.slow


def _redis_command(port: int, *args: str) -> bytes:
    """One RESP command over a raw socket (the tests must not depend on a client library for this check)."""
    parts = [f"*{len(args)}\r\n".encode()] + [f"${len(a)}\r\n{a}\r\n".encode() for a in args]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"".join(parts))
        return sock.recv(4096)


def test_redis_answers_and_keeps_appendonly_data_across_restart(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = RedisServer(tmp_path_factory.mktemp("redis"), appendonly=True)
    server.start()
    try:
        assert _redis_command(server.port, "SET", "k", "v") == b"+OK\r\n"
        server.restart()
        assert _redis_command(server.port, "GET", "k") == b"$1\r\nv\r\n"
    finally:
        server.stop()


def test_postgres_answers_and_keeps_data_across_restart(postgres_server: PostgresServer) -> None:
    psql = _postgres_bin("psql")
    assert psql is not None

    def sql(statement: str) -> str:
        done = subprocess.run([psql, postgres_server.url, "-Atc", statement], capture_output=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout.decode().strip()

    sql("create table t (x int); insert into t values (42)")
    postgres_server.restart()
    assert sql("select x from t") == "42"


def test_redis_fixture_is_fresh(redis_server: RedisServer) -> None:
    assert _redis_command(redis_server.port, "DBSIZE") == b":0\r\n"
