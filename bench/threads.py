"""Message threads vs full history: a 50-turn tool loop with a Claude-Code-sized conversation, through the gateway.

  python -m bench.threads [--turns 50] [--tool-output-bytes 2000]

One gateway process (demo upstream, threads on) serves two clients in the same run, turn by turn in lockstep
(alternating which goes first, after a warm-up request): one
threaded (a create, then continues carrying only the new tool results), one sending the whole history every turn
(no `thread`). The conversation starts from a real Claude Code request (`tests/fixtures/captures`: 64 KB of tool
definitions, system prompt, adaptive thinking) and streams every turn, as Claude Code does. Reported as ratios
(threads / full history): client bytes sent per turn, and time to first token (first content delta). Prints a
markdown table and writes bench/results/threads.json. The demo upstream's own cost grows with the history in both
modes alike, so the ratios isolate what the client and the gateway do.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.procs import HOST, Child, free_port
from bench.targets import REPO_DIR

CAPTURE = REPO_DIR / "tests" / "fixtures" / "captures" / "messages_main_first_turn_opus_default.json"
RESULTS = REPO_DIR / "bench" / "results" / "threads.json"
KEY = "bench-threads-key"
HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01", "anthropic-beta": "message-threads-2026-08-12"}
JSON = dict[str, Any]


@dataclass
class Turn:
    sent_bytes: int
    ttft: float
    message: JSON


@dataclass
class Loop:
    """One client's conversation: threaded (send only what is new) or not (send everything)."""

    threaded: bool
    base: JSON
    history: list[JSON] = field(default_factory=list)
    previous: str | None = None
    turns: list[Turn] = field(default_factory=list)

    def body(self, new: list[JSON]) -> JSON:
        if not self.threaded:
            return {**self.base, "messages": [*self.history, *new]}
        if self.previous is None:
            return {**self.base, "messages": new, "thread": {"type": "create"}}
        fields = {k: v for k, v in self.base.items() if k not in ("system", "tools")}
        return {**fields, "messages": new, "thread": {"type": "continue", "previous_message_id": self.previous}}

    def record(self, new: list[JSON], turn: Turn) -> None:
        self.history += [*new, {"role": "assistant", "content": turn.message["content"]}]
        self.previous = turn.message["id"]
        self.turns.append(turn)


def first_request(prompt: str) -> JSON:
    body: JSON = json.loads(CAPTURE.read_text())["request"]["body"]
    first = body["messages"][0]["content"]
    first[-1] = {"type": "text", "text": prompt}
    return body


def tool_results(message: JSON, size: int) -> list[JSON]:
    blocks = [
        {"type": "tool_result", "tool_use_id": b["id"], "content": f"output of {b['id']}: " + "x" * size}
        for b in message["content"]
        if b["type"] == "tool_use"
    ]
    return [{"role": "user", "content": blocks}]


def send(http: httpx.Client, body: JSON) -> Turn:
    """One streamed turn: the bytes sent, the time to the first content delta, the message rebuilt from the events."""
    data = json.dumps(body).encode()
    started = time.perf_counter()
    ttft: float | None = None
    message: JSON = {}
    partial: dict[int, str] = {}
    with http.stream("POST", "/v1/messages", content=data, headers=HEADERS) as reply:
        if reply.status_code != 200:
            raise SystemExit(f"HTTP {reply.status_code}: {reply.read()[:500]!r}")
        for line in reply.iter_lines():
            if not line.startswith("data: "):
                continue
            event = json.loads(line[6:])
            kind = event["type"]
            if kind == "content_block_delta" and ttft is None:
                ttft = time.perf_counter() - started
            if kind == "message_start":
                message = event["message"]
            elif kind == "content_block_start":
                message["content"].append(event["content_block"])
            elif kind == "content_block_delta":
                delta, block = event["delta"], message["content"][event["index"]]
                if delta["type"] == "input_json_delta":
                    partial[event["index"]] = partial.get(event["index"], "") + delta["partial_json"]
                for name in ("text", "thinking", "signature"):
                    if delta["type"] == f"{name}_delta":
                        block[name] = block.get(name, "") + delta[name]
            elif kind == "message_delta":
                message["stop_reason"] = event["delta"]["stop_reason"]
            elif kind == "error":
                raise SystemExit(f"stream error: {event}")
    for index, raw in partial.items():
        message["content"][index]["input"] = json.loads(raw)
    if ttft is None:
        raise SystemExit("no content delta in the reply")
    return Turn(len(data), ttft, message)


def run(turns: int, tool_bytes: int, url: str) -> tuple[Loop, Loop]:
    base = first_request(f"Please run `Bash` {turns} times")
    loops = (Loop(True, base), Loop(False, base))
    with httpx.Client(base_url=url, timeout=120) as http:
        send(http, {**base, "max_tokens": 64})  # warm-up: the first request of a process pays one-time costs
        pending = {loop.threaded: list(base["messages"]) for loop in loops}
        for i in range(turns + 1):
            for loop in loops if i % 2 == 0 else loops[::-1]:  # alternate who goes first, so neither gains by order
                new = pending[loop.threaded]
                turn = send(http, loop.body(new))
                loop.record(new, turn)
                pending[loop.threaded] = tool_results(turn.message, tool_bytes)
    for loop in loops:
        final = loop.turns[-1].message
        if final["stop_reason"] != "end_turn" or f"returned {turns} results" not in final["content"][-1]["text"]:
            raise SystemExit(f"wrong final answer ({'threads' if loop.threaded else 'full'}): {final['content']}")
    return loops


def summary(threaded: Loop, full: Loop) -> list[tuple[str, float, float]]:
    def late(loop: Loop) -> list[float]:
        return [t.ttft for t in loop.turns[-10:]]

    rows = [
        ("client bytes sent per turn, mean of turns 2+", _mean_bytes(threaded), _mean_bytes(full)),
        ("client bytes sent, last turn", threaded.turns[-1].sent_bytes, full.turns[-1].sent_bytes),
        ("time to first token, median of all turns (ms)", _median_ms(threaded.turns), _median_ms(full.turns)),
        (
            "time to first token, median of the last 10 (ms)",
            statistics.median(late(threaded)) * 1000,
            statistics.median(late(full)) * 1000,
        ),
        (
            "time to first token, stdev of the last 10 (ms)",
            statistics.pstdev(late(threaded)) * 1000,
            statistics.pstdev(late(full)) * 1000,
        ),
    ]
    return [(name, float(a), float(b)) for name, a, b in rows]


def _mean_bytes(loop: Loop) -> float:
    return statistics.mean(t.sent_bytes for t in loop.turns[1:])


def _median_ms(turns: list[Turn]) -> float:
    return statistics.median(t.ttft for t in turns) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--tool-output-bytes", type=int, default=2000)
    args = parser.parse_args()
    port = free_port()
    env = {"BRIDGE_API_KEYS": KEY, "BRIDGE_LOG_LEVEL": "warning", "BRIDGE_PORT": str(port)}
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        env[name] = ""
    log = REPO_DIR / "bench" / "results" / "threads-gateway.log"
    argv = [
        sys.executable,
        "-c",
        "import os; [os.environ.pop(k) for k in ('OPENAI_API_KEY', 'OPENAI_BASE_URL')]; "
        "from messages_bridge.cli import main; raise SystemExit(main(['serve']))",
    ]
    child = Child(argv, log=log, cores={0, 1}, env=env).start()
    try:
        if not child.wait_port(port, 30):
            raise SystemExit(f"the gateway did not start:\n{child.log_tail()}")
        threaded, full = run(args.turns, args.tool_output_bytes, f"http://{HOST}:{port}")
    finally:
        child.stop()
    rows = summary(threaded, full)
    print(f"\n{args.turns}-turn tool loop, Claude Code request ({len(json.dumps(threaded.base))} bytes), streamed\n")
    print("| metric | threads | full history | threads / full |")
    print("|---|---|---|---|")
    for name, a, b in rows:
        print(f"| {name} | {a:,.1f} | {b:,.1f} | {a / b:.3f} |" if b else f"| {name} | {a:,.1f} | {b:,.1f} | — |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    per_turn = [
        {
            "turn": i + 1,
            "threads_bytes": a.sent_bytes,
            "full_bytes": b.sent_bytes,
            "threads_ttft_ms": a.ttft * 1000,
            "full_ttft_ms": b.ttft * 1000,
        }
        for i, (a, b) in enumerate(zip(threaded.turns, full.turns, strict=True))
    ]
    RESULTS.write_text(json.dumps({"turns": args.turns, "summary": rows, "per_turn": per_turn}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
