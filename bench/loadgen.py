"""Closed-loop HTTP/1.1 load generator on raw asyncio + httptools (uvloop when available).

Each of C workers owns one keep-alive connection and sends the same precomputed request again as soon as
the previous response has been read in full. Prints one JSON object (see `Summary`) on stdout.

  python -m bench.loadgen run  --port P --body FILE -c 32 --duration 5 --warmup 1 --first-token MARK --done MARK
  python -m bench.loadgen hold --port P --body FILE --streams 200 --first-token MARK
      (opens K streams, prints "READY <n>" once n of them have seen the first token, then waits for a line
       or EOF on stdin, or --timeout, and exits without reading the streams to the end)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import cast

import httptools

from bench.sysinfo import install_uvloop

BODY_SAMPLE = 300


@dataclass
class Markers:
    """Byte strings searched in a response body: the first token and the proof of a complete body."""

    first_token: bytes = b""
    done: bytes = b""


@dataclass
class Outcome:
    """One request's timings (monotonic seconds) and verdict."""

    start: float
    first_byte: float = 0.0
    first_token: float = 0.0
    end: float = 0.0
    status: int = 0
    done_seen: bool = False
    error: str = ""
    sample: bytes = b""

    @property
    def ok(self) -> bool:
        """2xx with the completion marker and no transport error."""
        return not self.error and 200 <= self.status < 300 and self.done_seen


class MarkerScanner:
    """Finds a marker in a body that arrives in chunks, across chunk boundaries."""

    def __init__(self, marker: bytes) -> None:
        self.marker = marker
        self.tail = b""
        self.found = not marker

    def feed(self, chunk: bytes) -> bool:
        """Scan one chunk; True the first time the marker is seen."""
        if self.found:
            return False
        window = self.tail + chunk
        if self.marker in window:
            self.found = True
            return True
        self.tail = window[-(len(self.marker) - 1) :] if len(self.marker) > 1 else b""
        return False


class ClientConnection(asyncio.Protocol):
    """One keep-alive connection; `request()` sends bytes and resolves when the response has been read."""

    def __init__(self, markers: Markers, on_first_token: asyncio.Event | None = None) -> None:
        self.markers = markers
        self.on_first_token = on_first_token
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Outcome] | None = None
        self.outcome = Outcome(start=0.0)
        self.token_scan = MarkerScanner(b"")
        self.done_scan = MarkerScanner(b"")
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(f"connection lost: {exc!r}")

    def data_received(self, data: bytes) -> None:
        if not self.outcome.first_byte:
            self.outcome.first_byte = time.monotonic()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(f"parse error: {exc!r}")
            self.close()

    def on_body(self, body: bytes) -> None:
        if len(self.outcome.sample) < BODY_SAMPLE:
            self.outcome.sample += body[: BODY_SAMPLE - len(self.outcome.sample)]
        if self.token_scan.feed(body):
            self.outcome.first_token = time.monotonic()
            if self.on_first_token is not None:
                self.on_first_token.set()
        self.done_scan.feed(body)

    def on_message_complete(self) -> None:
        self.outcome.end = time.monotonic()
        self.outcome.status = self.parser.get_status_code()
        self.outcome.done_seen = self.done_scan.found
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(self.outcome)
        if not self.parser.should_keep_alive():
            self.close()

    def request(self, data: bytes) -> asyncio.Future[Outcome]:
        """Send one request; the future resolves with its `Outcome`."""
        assert self.transport is not None
        self.outcome = Outcome(start=time.monotonic())
        self.token_scan = MarkerScanner(self.markers.first_token)
        self.done_scan = MarkerScanner(self.markers.done)
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter

    def _fail(self, reason: str) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.outcome.error = reason
            self.outcome.end = time.monotonic()
            self.waiter.set_result(self.outcome)

    def close(self) -> None:
        """Close the socket (abort: do not wait for unread data)."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


def build_request(host: str, port: int, path: str, body: bytes, headers: list[tuple[str, str]]) -> bytes:
    """A complete HTTP/1.1 POST with a JSON body."""
    lines = [f"POST {path} HTTP/1.1", f"host: {host}:{port}", "content-type: application/json"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines += [f"content-length: {len(body)}", "connection: keep-alive"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Target:
    """Where to send and what to look for."""

    host: str
    port: int
    request: bytes
    markers: Markers
    timeout: float

    async def connect(self, on_first_token: asyncio.Event | None = None) -> ClientConnection:
        """Open one connection."""
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(
            lambda: ClientConnection(self.markers, on_first_token), self.host, self.port
        )
        return proto


@dataclass
class Recorder:
    """Decides the measured window and keeps its outcomes.

    Warm-up ends once `warmup` seconds have passed AND `min_warm` requests (one per worker) have finished,
    so the first burst of a closed loop is never measured. The window then lasts `duration` seconds, longer
    if needed to hold `min_measured` requests, and never past `cap` seconds after the start.
    """

    start: float
    warmup: float
    duration: float
    min_warm: int
    min_measured: int
    cap: float
    warm_end: float | None = None
    stop_at: float | None = None
    measured: list[Outcome] = field(default_factory=list)
    total: int = 0
    total_errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        """Record one finished request."""
        self.total += 1
        if not outcome.ok:
            self.total_errors += 1
            if len(self.error_samples) < 5:
                self.error_samples.append(f"status={outcome.status} {outcome.error} {outcome.sample[:200]!r}")
        now = outcome.end
        if self.warm_end is None:
            if self.total >= self.min_warm and now >= self.start + self.warmup:
                self.warm_end = now
        elif self.stop_at is None:
            self.measured.append(outcome)
            if now >= self.warm_end + self.duration and len(self.measured) >= self.min_measured:
                self.stop_at = now

    def stopped(self) -> bool:
        """True once the window has closed (or the hard cap has passed)."""
        if self.stop_at is None and time.monotonic() >= self.start + self.cap:
            self.stop_at = time.monotonic()
        return self.stop_at is not None

    @property
    def window(self) -> float:
        """Length of the measured window in seconds (0 when warm-up never ended)."""
        if self.warm_end is None or self.stop_at is None:
            return 0.0
        return max(0.0, self.stop_at - self.warm_end)


async def one_request(target: Target, conn: ClientConnection | None) -> tuple[Outcome, ClientConnection | None]:
    """Send one request, reconnecting first when needed; never raises for network errors."""
    start = time.monotonic()
    try:
        if conn is None or conn.closed:
            conn = await asyncio.wait_for(target.connect(), timeout=target.timeout)
        outcome = await asyncio.wait_for(conn.request(target.request), timeout=target.timeout)
    except (TimeoutError, OSError) as exc:
        if conn is not None:
            conn.close()
        return Outcome(start=start, end=time.monotonic(), error=repr(exc)), None
    return outcome, conn


async def worker(target: Target, rec: Recorder) -> None:
    """Closed loop: one request at a time until the deadline."""
    conn: ClientConnection | None = None
    while not rec.stopped():
        outcome, conn = await one_request(target, conn)
        rec.add(outcome)
        if conn is None:
            await asyncio.sleep(0.01)  # do not spin on a refused connection
    if conn is not None:
        conn.close()


def percentiles(values: list[float]) -> dict[str, float] | None:
    """p50/p90/p99/max/mean in milliseconds (nearest rank), None for no data."""
    if not values:
        return None
    ordered = sorted(values)
    pick = {q: ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] for q in (50, 90, 99)}
    out = {f"p{q}": v * 1000 for q, v in pick.items()}
    out |= {"max": ordered[-1] * 1000, "mean": sum(ordered) / len(ordered) * 1000}
    return {k: round(v, 3) for k, v in out.items()}


def summarize(rec: Recorder, cpu: float, wall: float) -> dict[str, object]:
    """The JSON summary of one run."""
    ok = [o for o in rec.measured if o.ok]
    window = rec.window
    tokens = [o.first_token - o.start for o in ok if o.first_token]
    return {
        "requests": len(ok),
        "errors": len(rec.measured) - len(ok),
        "total_requests": rec.total,
        "total_errors": rec.total_errors,
        "window_s": round(window, 3),
        "warmup_s": round((rec.warm_end or rec.start) - rec.start, 3),
        "rps": round(len(ok) / window, 2) if window > 0 else 0.0,
        "latency_ms": percentiles([o.end - o.start for o in ok]),
        "ttfb_ms": percentiles([o.first_byte - o.start for o in ok if o.first_byte]),
        "ttft_ms": percentiles(tokens),
        "loadgen_cpu_s": round(cpu, 3),
        "loadgen_wall_s": round(wall, 3),
        "loadgen_cpu_util": round(cpu / wall, 3) if wall > 0 else 0.0,
        "error_samples": rec.error_samples,
    }


@dataclass(frozen=True)
class Plan:
    """How long to run: see `Recorder`."""

    concurrency: int
    duration: float
    warmup: float
    min_requests: int
    cap: float


async def run_closed_loop(target: Target, plan: Plan) -> dict[str, object]:
    """Run C workers through warm-up and the measured window; bounded by `cap` + one request timeout."""
    cpu0, wall0 = time.process_time(), time.monotonic()
    rec = Recorder(
        start=wall0,
        warmup=plan.warmup,
        duration=plan.duration,
        min_warm=plan.concurrency,
        min_measured=plan.min_requests,
        cap=plan.cap,
    )
    tasks = [asyncio.create_task(worker(target, rec)) for _ in range(plan.concurrency)]
    done, pending = await asyncio.wait(tasks, timeout=plan.cap + target.timeout + 5)
    for task in pending:
        task.cancel()
    crashes = [repr(t.exception()) for t in done if t.exception() is not None]
    summary = summarize(rec, time.process_time() - cpu0, time.monotonic() - wall0)
    summary["worker_crashes"] = crashes + ["worker still running at the hard deadline"] * len(pending)
    return summary


async def hold_streams(target: Target, streams: int, wait_s: float) -> dict[str, object]:
    """Open K streams, report READY once each has seen its first token, then wait for stdin and drop them."""
    events = [asyncio.Event() for _ in range(streams)]
    conns = await asyncio.gather(*(target.connect(e) for e in events), return_exceptions=True)
    pairs = [(c, e) for c, e in zip(conns, events, strict=True) if isinstance(c, ClientConnection)]
    live = [c for c, _ in pairs]
    futures = [c.request(target.request) for c in live]
    started = time.monotonic()
    waits = [asyncio.create_task(e.wait()) for _, e in pairs]
    await asyncio.wait(waits, timeout=wait_s)
    ready = sum(e.is_set() for e in events)
    print(f"READY {ready}", flush=True)
    loop = asyncio.get_running_loop()
    await asyncio.wait([loop.run_in_executor(None, sys.stdin.readline)], timeout=wait_s)
    finished = sum(f.done() for f in futures)
    for c in live:
        c.close()
    for w in waits:
        w.cancel()
    return {
        "streams": streams,
        "connected": len(live),
        "ready": ready,
        "finished_early": finished,
        "ready_s": round(time.monotonic() - started, 3),
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["run", "hold"])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/v1/messages")
    ap.add_argument("--body", required=True, help="file holding the JSON request body")
    ap.add_argument("--header", action="append", default=[], help="extra 'name: value' header (repeatable)")
    ap.add_argument("-c", "--concurrency", type=int, default=1)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0, help="at least this long, and until C requests finished")
    ap.add_argument("--min-requests", type=int, default=0, help="extend the window until this many finished")
    ap.add_argument("--cap", type=float, default=120.0, help="hard limit on warm-up + window, seconds")
    ap.add_argument("--timeout", type=float, default=30.0, help="per request (run) / wait for READY and stdin (hold)")
    ap.add_argument("--first-token", default="", help="marker of the first token in the body")
    ap.add_argument("--done", default="", help="marker that must appear in a complete body")
    ap.add_argument("--streams", type=int, default=100, help="hold: streams to open")
    ap.add_argument("--pin", type=int, default=None, help="pin this process to one core")
    return ap.parse_args(argv)


def make_target(args: argparse.Namespace) -> Target:
    """Target from the parsed options."""
    with open(args.body, "rb") as fh:
        body = fh.read()
    headers = [tuple(h.split(":", 1)) for h in args.header]
    pairs = [(k.strip(), v.strip()) for k, v in headers]
    request = build_request(args.host, args.port, args.path, body, pairs)
    markers = Markers(first_token=args.first_token.encode(), done=args.done.encode())
    return Target(args.host, args.port, request, markers, args.timeout)


def main(argv: list[str] | None = None) -> None:
    """Entry point: print the JSON summary on the last stdout line."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.pin is not None and len(os.sched_getaffinity(0)) >= 2:
        os.sched_setaffinity(0, {args.pin})
    install_uvloop()
    target = make_target(args)
    if args.command == "run":
        plan = Plan(args.concurrency, args.duration, args.warmup, args.min_requests, args.cap)
        result = asyncio.run(run_closed_loop(target, plan))
    else:
        result = asyncio.run(hold_streams(target, args.streams, args.timeout))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
