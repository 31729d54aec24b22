"""The usage ledger: one row per request, written off the request path in batches.

Rows queue in memory and a background task writes them in batches. When the database is unreachable a batch
is spooled to a file under `<data dir>/spool` (written whole, then renamed into place, so a file is never seen
half-written) and replayed later, by this process or any other sharing the directory. Rows carry a unique id
and inserts skip ids already present, so a replay interrupted half-way never writes a row twice. At shutdown
the queue is flushed (or spooled). `ledger_backlog_rows` counts queued plus spooled rows (set by the writer
loop, so queueing a row is an append and nothing else).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import secrets
import time
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Protocol

import msgspec

from messages_bridge.team.metrics import LEDGER_BACKLOG, LEDGER_SPOOLED, LEDGER_WRITTEN

logger = logging.getLogger("messages_bridge.team")
# Row ids: a random per-process prefix and a counter (unique, and far cheaper than uuid4 per request).
_ROW_PREFIX = secrets.token_hex(8)
_ROWS = itertools.count()


class LedgerRow(msgspec.Struct, kw_only=True):
    """Names, counts, times and money; never content or secrets."""

    id: str = msgspec.field(default_factory=lambda: f"{_ROW_PREFIX}-{next(_ROWS)}")
    time: datetime
    day: str
    request_id: str | None = None
    key_name: str | None = None
    session_id: str | None = None
    agent_id: str | None = None
    route: str
    upstream: str | None = None
    model: str | None = None
    upstream_model: str | None = None
    stream: bool = False
    status: int
    error_type: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    reasoning_tokens: int = 0
    web_searches: int = 0
    cost_usd: float = 0.0
    latency_ms: float | None = None
    ttft_ms: float | None = None


class LedgerSink(Protocol):
    def write(self, rows: list[LedgerRow]) -> None:
        """Insert the rows, skipping ids already stored (blocking; called in a worker thread)."""
        ...


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(LedgerRow)


class Spool:
    """Batches that could not be written, one immutable JSON-lines file each."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._seq = 0

    def put(self, rows: list[LedgerRow]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        name = f"ledger-{os.getpid()}-{time.time_ns()}-{self._seq}"
        tmp = self.directory / (name + ".tmp")
        with tmp.open("wb") as f:
            for row in rows:
                f.write(_ENCODER.encode(row) + b"\n")
            f.flush()
            os.fsync(f.fileno())
        tmp.rename(self.directory / (name + ".jsonl"))

    def claim(self) -> list[Path]:
        """Spooled files this process now owns (renamed so no other process replays them too)."""
        if not self.directory.is_dir():
            return []
        claimed = []
        pid = os.getpid()
        for path in sorted(self.directory.iterdir()):
            if path.suffix == ".jsonl" or (path.suffix.startswith(".claimed-") and not _alive(path.suffix[9:])):
                target = path.with_suffix(f".claimed-{pid}")
                with contextlib.suppress(FileNotFoundError):  # another process claimed it first
                    path.rename(target)
                    claimed.append(target)
        return claimed

    def count(self) -> int:
        if not self.directory.is_dir():
            return 0
        total = 0
        for path in self.directory.iterdir():
            if path.suffix == ".jsonl" or path.suffix.startswith(".claimed-"):
                with contextlib.suppress(FileNotFoundError):
                    total += path.read_bytes().count(b"\n")
        return total

    @staticmethod
    def read(path: Path) -> list[LedgerRow]:
        return [_DECODER.decode(line) for line in path.read_bytes().splitlines() if line.strip()]

    @staticmethod
    def release(path: Path) -> None:
        """Give a claimed file back (its replay failed)."""
        with contextlib.suppress(FileNotFoundError):
            path.rename(path.with_suffix(".jsonl"))


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


class LedgerWriter:
    def __init__(
        self,
        sink: LedgerSink,
        spool_dir: Path,
        *,
        batch_size: int = 500,
        flush_interval: float = 0.25,
        retry_interval: float = 1.0,
    ) -> None:
        self._sink = sink
        self._spool = Spool(spool_dir)
        self._batch = batch_size
        self._interval = flush_interval
        self._retry = retry_interval
        self._queue: deque[LedgerRow] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self._writing = asyncio.Lock()
        # One replay at a time: a second one would find the files claimed by the first (same pid) and return at
        # once, before those rows are written, and `flush` promises they are in the database when it returns.
        self._replaying = asyncio.Lock()
        self._in_flight = 0  # rows of the batch being written: taken off the queue, not yet written or spooled
        self._spooled = 0
        self._db_down = False
        self._replayed_at = 0.0

    @property
    def backlog(self) -> int:
        return len(self._queue) + self._in_flight + self._spooled

    def submit(self, row: LedgerRow) -> None:
        """Queue a row (never blocks). After shutdown (a request outlived the drain) it is spooled at once."""
        if self._closed:
            self._spool.put([row])
            self._spooled += 1
            LEDGER_SPOOLED.inc()
            LEDGER_BACKLOG.set(self.backlog)
            return
        self._queue.append(row)
        if len(self._queue) >= self._batch:
            self._wake.set()

    async def start(self) -> None:
        self._spooled = await asyncio.to_thread(self._spool.count)
        LEDGER_BACKLOG.set(self.backlog)
        self._task = asyncio.create_task(self._run())

    async def aclose(self) -> None:
        """Stop the loop (never mid-write: a cancelled write could lose its batch) and write or spool the rest."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        while self._queue:
            await self._flush_once()
        if self._spooled and not self._db_down:
            await self._replay()
        self._closed = True

    async def flush(self) -> None:
        """Write what is queued now (after any batch being written) and replay the spool (tests, reports)."""
        while self._queue:
            await self._flush_once()
        async with self._writing:  # a batch the loop took before this call is in the database once this returns
            pass
        await self._replay()

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            LEDGER_BACKLOG.set(self.backlog)
            while self._queue:
                await self._flush_once()
            if self._spooled and time.monotonic() - self._replayed_at >= self._retry:
                await self._replay()
            LEDGER_BACKLOG.set(self.backlog)

    async def _flush_once(self) -> None:
        async with self._writing:
            await self._write_batch()

    async def _write_batch(self) -> None:
        batch = [self._queue.popleft() for _ in range(min(self._batch, len(self._queue)))]
        if not batch:
            return
        self._in_flight = len(batch)
        try:
            written = await self._write_or_spool(batch)
        finally:
            self._in_flight = 0
        if written:
            LEDGER_WRITTEN.inc(len(batch))
        LEDGER_BACKLOG.set(self.backlog)  # spooled rows stay backlog until a replay writes them

    async def _write_or_spool(self, batch: list[LedgerRow]) -> bool:
        """True when the batch reached the database; otherwise it is in the spool."""
        if not self._db_down:
            try:
                await asyncio.to_thread(self._sink.write, batch)
            except Exception as exc:  # noqa: BLE001 - any database failure: the rows go to the spool instead
                self._db_down = True
                self._replayed_at = time.monotonic()
                logger.warning("ledger database unreachable; spooling", extra={"exception_type": type(exc).__name__})
            else:
                return True
        await asyncio.to_thread(self._spool.put, batch)
        self._spooled += len(batch)
        LEDGER_SPOOLED.inc(len(batch))
        return False

    async def _replay(self) -> None:
        async with self._replaying:
            await self._replay_claimed()

    async def _replay_claimed(self) -> None:
        self._replayed_at = time.monotonic()
        claimed = await asyncio.to_thread(self._spool.claim)
        for done, path in enumerate(claimed):
            rows = await asyncio.to_thread(self._spool.read, path)
            try:
                for start in range(0, len(rows), self._batch):
                    await asyncio.to_thread(self._sink.write, rows[start : start + self._batch])
            except Exception as exc:  # noqa: BLE001 - still unreachable: keep the files for the next attempt
                self._db_down = True
                # This one and every file claimed after it: a file left claimed by this (living) process would
                # never be claimed again by it, and its rows would wait for the next restart.
                for unwritten in claimed[done:]:
                    await asyncio.to_thread(self._spool.release, unwritten)
                logger.warning("ledger replay failed", extra={"exception_type": type(exc).__name__})
                return
            await asyncio.to_thread(path.unlink)
            self._spooled = max(0, self._spooled - len(rows))
            LEDGER_WRITTEN.inc(len(rows))
            LEDGER_BACKLOG.set(self.backlog)
            logger.info("ledger spool replayed", extra={"rows": len(rows)})
        self._db_down = False
