"""Claude Code itself (the pinned npm CLI, `claude -p`) against the gateway on 127.0.0.1, the simulator behind it.

Claude Code silently repeats a turn as a non-streaming request when a stream breaks, so a working answer proves
little: every test also checks that each model turn reached the upstream exactly once, as a streaming request, and
that nothing else (count_tokens, fallbacks, retries) was sent.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from messages_bridge.demo.events import encode_sse, events_for
from messages_bridge.demo.server import Reply
from messages_bridge.demo.simulator import respond
from tests.conftest import FakeUpstream
from tests.e2e.claude_code import ClaudeRun, claude_env, ensure_installed, run_claude
from tests.servers import ThreadedServer

pytestmark = pytest.mark.slow

JSON = dict[str, Any]
USAGE = {
    "input_tokens": 1200,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens": 37,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 1237,
}


@pytest.fixture(scope="session")
def claude_bin() -> Path:
    """The pinned CLI from the test cache; installs it on first use and fails (never skips) if that fails."""
    binary, seconds = ensure_installed()
    if seconds:
        print(f"\ninstalled Claude Code in {seconds:.1f} s")
    return binary


@dataclass(slots=True)
class Claude:
    """`claude -p` with a fresh HOME and a scratch working directory, pointed at the gateway."""

    binary: Path
    base_url: str
    home: Path
    work: Path

    def run(self, prompt: str, *args: str, **env: str) -> ClaudeRun:
        return run_claude(
            self.binary, prompt, env=claude_env(self.base_url, self.home, **env), cwd=self.work, args=args
        )


@pytest.fixture
def claude(claude_bin: Path, gateway_server: ThreadedServer, tmp_path: Path) -> Claude:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    return Claude(claude_bin, gateway_server.url, home, work)


@pytest.fixture
def marker() -> str:
    return "mb-" + secrets.token_hex(6)


def response(response_id: str, *output: JSON, error: JSON | None = None) -> JSON:
    """A final Responses `Response` with `output`; with `error` it is a failed one."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": 1_764_000_000,
        "model": "gpt-5",
        "status": "failed" if error else "completed",
        "incomplete_details": None,
        "error": error,
        "output": list(output),
        "usage": USAGE,
    }


def scripted(response_id: str, *output: JSON, error: JSON | None = None) -> Reply:
    """The upstream streaming `response(...)` as the real API does (8-character deltas, one event per chunk)."""
    events = events_for(response(response_id, *output, error=error))
    return Reply(chunks=[encode_sse([event]) for event in events], headers={"x-request-id": "req_e2e"})


def text_item(item_id: str, text: str) -> JSON:
    return {
        "id": item_id,
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def bash_call(call_id: str, command: str) -> JSON:
    arguments = json.dumps({"command": command, "description": "Print the marker"})
    return {
        "id": "fc_" + call_id,
        "type": "function_call",
        "status": "completed",
        "call_id": call_id,
        "name": "Bash",
        "arguments": arguments,
    }


def streamed_turns(upstream: FakeUpstream, turns: int) -> list[JSON]:
    """The upstream bodies, once checked to be one streaming `/responses` request per model turn and nothing else."""
    assert not upstream.script.replies, "Claude Code stopped before using every scripted reply"
    received = upstream.script.received
    paths = [r.path for r in received]
    assert paths == ["/v1/responses"] * turns, f"expected {turns} model call(s) and nothing else, got {paths}"
    flags = [r.body.get("stream") for r in received]
    assert flags == [True] * turns, f"a turn was not streamed (Claude Code's non-streaming fallback?): {flags}"
    return [r.body for r in received]


def succeeded(run: ClaudeRun) -> JSON:
    result = run.result
    assert run.returncode == 0 and result["subtype"] == "success" and result["is_error"] is False, run.describe()
    return result


def user_texts(body: JSON) -> list[str]:
    return [
        part["text"]
        for item in body["input"]
        if item.get("role") == "user" and isinstance(item["content"], list)
        for part in item["content"]
        if part["type"] == "input_text"
    ]


def items_of(body: JSON, kind: str) -> list[JSON]:
    return [item for item in body["input"] if item.get("type") == kind]


def test_plain_answer(claude: Claude, upstream: FakeUpstream, marker: str) -> None:
    text = f"Plain answer {marker}: streamed in small deltas, with ünïcödé — ✓ and a tail."
    upstream.script.push(scripted("resp_e2e_plain", text_item("msg_e2e_plain", text)))
    prompt = f"Reply with the word {marker}"

    result = succeeded(claude.run(prompt))

    assert result["result"] == text
    assert result["num_turns"] == 1
    assert result["usage"]["output_tokens"] == USAGE["output_tokens"]  # only message_delta carries it
    [sent] = streamed_turns(upstream, 1)
    assert sent["model"] == "gpt-5"
    assert prompt in user_texts(sent)
    assert "Claude Agent SDK" in sent["instructions"]
    assert "Bash" in {tool["name"] for tool in sent["tools"]}


def test_bash_tool_round_trip(claude: Claude, upstream: FakeUpstream, marker: str) -> None:
    command = f"echo {marker} | tee proof.txt"
    upstream.script.push(
        scripted("resp_e2e_call", text_item("msg_e2e_call", "Running it."), bash_call("call_e2e_bash", command))
    )
    # The second turn is the simulator's own answer to the tool output.

    result = succeeded(
        claude.run(f"Print {marker} with Bash", "--allowedTools", "Bash", CLAUDE_CODE_DISABLE_THINKING="1")
    )

    assert (claude.work / "proof.txt").read_text() == marker + "\n"  # Claude Code really ran it, in the scratch dir
    assert result["result"] == f"The tool returned: {marker}"
    assert result["num_turns"] == 2
    first, second = streamed_turns(upstream, 2)
    assert "summary" not in first.get("reasoning", {})
    [call] = items_of(second, "function_call")
    assert call["call_id"] == "call_e2e_bash" and call["name"] == "Bash"
    assert json.loads(call["arguments"])["command"] == command
    [output] = items_of(second, "function_call_output")
    assert output["call_id"] == "call_e2e_bash" and output["output"] == marker


def test_parallel_bash_calls(claude: Claude, upstream: FakeUpstream, marker: str) -> None:
    pair = bash_call("call_e2e_one", f"echo {marker}-one"), bash_call("call_e2e_two", f"echo {marker}-two")
    upstream.script.push(
        scripted("resp_e2e_pair", *pair), scripted("resp_e2e_done", text_item("msg_e2e_done", f"Both done: {marker}."))
    )

    result = succeeded(
        claude.run(f"Print {marker} twice with Bash", "--allowedTools", "Bash", CLAUDE_CODE_DISABLE_THINKING="1")
    )

    assert result["result"] == f"Both done: {marker}."
    _, second = streamed_turns(upstream, 2)
    assert [c["call_id"] for c in items_of(second, "function_call")] == ["call_e2e_one", "call_e2e_two"]
    outputs = {o["call_id"]: o["output"] for o in items_of(second, "function_call_output")}
    assert outputs == {"call_e2e_one": f"{marker}-one", "call_e2e_two": f"{marker}-two"}


def test_thinking_round_trip(claude: Claude, upstream: FakeUpstream, marker: str) -> None:
    """Default Claude Code asks for (adaptive) thinking; the simulator reasons, calls Bash, then answers.

    The simulator rejects a reasoning item whose encrypted content does not match its id, so the second turn only
    succeeds when the thinking block's signature carried the original item back intact.
    """
    result = succeeded(claude.run(f"Use Bash to run `echo {marker}`", "--allowedTools", "Bash"))

    assert result["result"] == f"The tool returned: {marker}"
    first, second = streamed_turns(upstream, 2)
    assert first["reasoning"].get("summary"), first["reasoning"]
    produced = respond({**first, "stream": False})["output"]  # the simulator is deterministic: what it streamed
    reasoning = next(item for item in produced if item["type"] == "reasoning")
    call = next(item for item in produced if item["type"] == "function_call")
    assert json.loads(call["arguments"])["command"] == f"echo {marker}"
    replayed = items_of(second, "reasoning")
    assert [(r["id"], r["encrypted_content"]) for r in replayed] == [(reasoning["id"], reasoning["encrypted_content"])]
    assert replayed[0]["summary"] == reasoning["summary"]
    kinds = [item.get("type") for item in second["input"]]
    assert kinds[kinds.index("reasoning") + 1] == "function_call", kinds  # the item stays in front of its call


def test_failure_mid_block_falls_back_visibly(claude: Claude, upstream: FakeUpstream, marker: str) -> None:
    """An upstream `error` event in the middle of a text block reaches Claude Code as an `error` event.

    Claude Code 2.1.197 answers an error event that arrives before any block is complete by repeating the turn
    without streaming (which the simulator answers): the partial text is never taken for the answer, and the
    fallback shows in the upstream log; the other tests rely on exactly that to prove their streams were whole.
    """
    partial = f"Partial {marker} that must not be taken for an answer"
    events = events_for(response("resp_e2e_cut", text_item("msg_e2e_cut", partial)))
    cut = [e for e in events if e["type"] != "response.completed"][:6]  # created … first text deltas
    assert cut[-1]["type"] == "response.output_text.delta"
    failure = {"type": "error", "code": "server_error", "message": "The model failed while generating.", "param": None}
    upstream.script.push(Reply(chunks=[encode_sse([event]) for event in [*cut, failure]]))

    result = succeeded(claude.run(f"Say {marker}", CLAUDE_CODE_DISABLE_THINKING="1"))

    assert result["result"].startswith("Hello from the messages-bridge demo upstream")
    assert marker not in result["result"]
    flags = [(r.path, r.body.get("stream", False)) for r in upstream.script.received]
    assert flags == [("/v1/responses", True), ("/v1/responses", False)]


def test_failure_after_a_finished_block_is_an_error(claude: Claude, upstream: FakeUpstream, marker: str) -> None:
    """`response.failed` after a whole text item: Claude Code reports the API error, not the text as an answer.

    Once a block is complete, Claude Code 2.1.197 no longer falls back: an `error` event becomes "API Error: …",
    and a gateway that closed such a stream as a success would have the partial text printed as the result.
    """
    partial = f"Partial {marker} that must not be taken for an answer"
    error = {"code": "server_error", "message": "The model failed while generating."}
    upstream.script.push(scripted("resp_e2e_failed", text_item("msg_e2e_failed", partial), error=error))

    run = claude.run(f"Say {marker}", CLAUDE_CODE_DISABLE_THINKING="1")

    result = run.result
    assert run.returncode == 1 and result["is_error"] is True, run.describe()
    assert result["result"].startswith("API Error") and error["message"] in result["result"]
    assert marker not in result["result"]
    streamed_turns(upstream, 1)
