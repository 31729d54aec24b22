"""The ledger: one row per request with Claude Code attribution; batches spooled while the database is down."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from messages_bridge.demo.server import Reply
from messages_bridge.team.db import Database, make_engine, upgrade
from messages_bridge.team.ledger import LedgerRow, LedgerWriter, Spool
from messages_bridge.team.reports import SqlLedger
from messages_bridge.team.schema import ledger
from messages_bridge.team.settings import TeamSettings
from tests.conftest import FakeUpstream
from tests.observability.helpers import canary_reply
from tests.team.conftest import BODY, TeamGateway

Open = Callable[..., Awaitable[TeamGateway]]
SESSION = "3f1d3c9e-5a3b-4c1e-9d8e-2f0b7a6c1d11"
AGENT = "agent-7f3a"


async def test_one_row_per_request_with_key_session_agent_tokens_cost_and_timings(
    open_team: Open, upstream: FakeUpstream
) -> None:
    gw = await open_team()
    secret = gw.create_key("alice")
    await gw.team.keyring.reload()
    upstream.script.push(Reply(json_body=canary_reply()))
    headers = {"x-claude-code-session-id": SESSION, "x-claude-code-agent-id": AGENT}
    ok = await gw.post(secret, headers=headers)
    streamed = await gw.post(secret, {**BODY, "stream": True}, headers=headers)
    denied = await gw.post("mbk_not-a-key")
    assert (ok.status_code, streamed.status_code, denied.status_code) == (200, 200, 401)
    rows = await gw.rows()
    assert len(rows) == 3
    first, second, third = rows
    assert first["request_id"] == ok.headers["request-id"]
    assert (first["key_name"], first["session_id"], first["agent_id"]) == ("alice", SESSION, AGENT)
    assert (first["route"], first["model"], first["upstream_model"]) == ("/v1/messages", "claude-sonnet-4-5", "gpt-5")
    assert (first["status"], first["stream"], first["error_type"]) == (200, False, None)
    assert (first["input_tokens"], first["cache_read_input_tokens"], first["output_tokens"]) == (100, 20, 30)
    assert first["reasoning_tokens"] == 10 and first["cache_creation_input_tokens"] == 0
    assert round(first["cost_usd"], 7) == 0.0004275
    assert (
        first["upstream"] == "default"
        and first["latency_ms"] > 0
        and first["day"] == first["time"].strftime("%Y-%m-%d")
    )
    assert second["stream"] is True and second["ttft_ms"] is not None and second["output_tokens"] > 0
    assert (third["key_name"], third["status"], third["error_type"]) == (None, 401, "authentication_error")
    assert third["session_id"] is None and third["upstream"] is None


async def test_malformed_attribution_headers_are_not_stored(open_team: Open) -> None:
    gw = await open_team()
    await gw.post(headers={"x-claude-code-session-id": "x" * 500, "x-claude-code-agent-id": "bad value;drop"})
    (row,) = await gw.rows()
    assert row["session_id"] is None and row["agent_id"] is None


class FlakySink:
    """The real SQL ledger, unreachable while `down`."""

    def __init__(self, inner: SqlLedger) -> None:
        self.inner = inner
        self.down = False

    def write(self, rows: list[LedgerRow]) -> None:
        if self.down:
            raise ConnectionError("database unreachable")
        self.inner.write(rows)


def _row(i: int) -> LedgerRow:
    now = datetime.now(UTC)
    return LedgerRow(time=now, day=now.strftime("%Y-%m-%d"), route="/v1/messages", status=200, input_tokens=i)


def _count(sink: SqlLedger) -> int:
    with sink.db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ledger)).scalar_one())


def _sql(tmp_path: Path) -> SqlLedger:
    engine = make_engine(TeamSettings(data_dir=tmp_path))
    upgrade(engine)
    return SqlLedger(Database(engine=engine))


async def test_rows_are_spooled_while_the_database_is_down_and_replayed_once_it_is_back(tmp_path: Path) -> None:
    sql = _sql(tmp_path)
    sink = FlakySink(sql)
    writer = LedgerWriter(sink, tmp_path / "spool", batch_size=7, flush_interval=0.02, retry_interval=0.05)
    await writer.start()
    for i in range(5):
        writer.submit(_row(i))
    await writer.flush()
    assert _count(sql) == 5
    sink.down = True
    for i in range(20):
        writer.submit(_row(100 + i))
    spool = Spool(tmp_path / "spool")
    for _ in range(100):
        if spool.count() == 20:
            break
        await asyncio.sleep(0.02)
    assert writer.backlog == 20 and spool.count() == 20 and list((tmp_path / "spool").glob("*.jsonl"))
    assert _count(sql) == 5
    sink.down = False
    for _ in range(200):
        if writer.backlog == 0:
            break
        await asyncio.sleep(0.02)
    assert writer.backlog == 0 and _count(sql) == 25
    assert not list((tmp_path / "spool").iterdir())
    await writer.aclose()


async def test_shutdown_flushes_the_queue_or_spools_it_for_the_next_start(tmp_path: Path) -> None:
    sql = _sql(tmp_path)
    sink = FlakySink(sql)
    writer = LedgerWriter(sink, tmp_path / "spool", flush_interval=60)
    await writer.start()
    for i in range(3):
        writer.submit(_row(i))
    await writer.aclose()
    assert _count(sql) == 3, "closing flushed the queue"
    sink.down = True
    second = LedgerWriter(sink, tmp_path / "spool", flush_interval=60)
    await second.start()
    for i in range(4):
        second.submit(_row(i))
    await second.aclose()
    assert _count(sql) == 3 and len(list((tmp_path / "spool").glob("*.jsonl"))) == 1
    sink.down = False
    third = LedgerWriter(sink, tmp_path / "spool", flush_interval=0.02, retry_interval=0.02)
    await third.start()
    assert third.backlog == 4
    await third.flush()
    assert _count(sql) == 7 and third.backlog == 0
    await third.aclose()


class HeldSink:
    """The real SQL ledger, each write held (in its worker thread) until `release` is set."""

    def __init__(self, inner: SqlLedger) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self.release = threading.Event()

    def write(self, rows: list[LedgerRow]) -> None:
        self.entered.set()
        assert self.release.wait(10)
        self.inner.write(rows)


async def test_a_batch_being_written_is_still_backlog(tmp_path: Path) -> None:
    sql = _sql(tmp_path)
    sink = HeldSink(sql)
    writer = LedgerWriter(sink, tmp_path / "spool", batch_size=2, flush_interval=60)
    await writer.start()
    writer.submit(_row(1))
    writer.submit(_row(2))  # a full batch: the loop takes it off the queue and starts writing
    assert await asyncio.to_thread(sink.entered.wait, 10)
    assert writer.backlog == 2, "rows off the queue but not yet in the database are still owed"
    sink.release.set()
    await writer.flush()
    assert writer.backlog == 0 and _count(sql) == 2
    await writer.aclose()


async def test_flush_waits_for_a_replay_already_running(tmp_path: Path) -> None:
    sql = _sql(tmp_path)
    Spool(tmp_path / "spool").put([_row(i) for i in range(3)])
    sink = HeldSink(sql)
    writer = LedgerWriter(sink, tmp_path / "spool", flush_interval=0.01, retry_interval=0.01)
    await writer.start()  # its loop replays the spooled file and is held inside the write
    assert await asyncio.to_thread(sink.entered.wait, 10)
    flushed = asyncio.ensure_future(writer.flush())
    await asyncio.sleep(0.05)
    assert not flushed.done(), "flush returned while the replay's rows were not in the database"
    sink.release.set()
    await flushed
    assert _count(sql) == 3 and writer.backlog == 0
    await writer.aclose()


async def test_a_failed_replay_gives_back_every_file_it_claimed(tmp_path: Path) -> None:
    sql = _sql(tmp_path)
    spool = Spool(tmp_path / "spool")
    spool.put([_row(i) for i in range(3)])
    spool.put([_row(i) for i in range(3, 5)])
    sink = FlakySink(sql)
    sink.down = True
    writer = LedgerWriter(sink, tmp_path / "spool", flush_interval=60, retry_interval=60)
    await writer.start()
    await writer.flush()  # its replay fails on the first file, before the second is tried
    assert _count(sql) == 0 and writer.backlog == 5
    assert len(list((tmp_path / "spool").glob("*.jsonl"))) == 2, "both files can be claimed again"
    sink.down = False
    await writer.flush()
    assert _count(sql) == 5 and writer.backlog == 0
    await writer.aclose()


async def test_a_replay_interrupted_half_way_writes_no_row_twice(tmp_path: Path) -> None:
    sql = _sql(tmp_path)
    rows = [_row(i) for i in range(6)]
    sql.write(rows[:3])  # as if a replay had written the first half before the database dropped
    Spool(tmp_path / "spool").put(rows)
    writer = LedgerWriter(sql, tmp_path / "spool")
    await writer.start()
    await writer.flush()
    await writer.aclose()
    assert _count(sql) == 6


async def test_backlog_metric(open_team: Open) -> None:
    gw = await open_team()
    text = (await gw.http.get("/metrics")).text
    assert "messages_bridge_ledger_backlog_rows" in text
