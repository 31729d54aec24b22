"""Hypothesis: over generated final Responses, their upstream event streams and arbitrary byte chunkings, the
translated stream follows the Anthropic grammar, reassembles text and arguments exactly, and folds to the
non-streaming translation of the same Response."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messages_bridge.demo.events import encode_sse, events_for
from messages_bridge.errors import GatewayError
from messages_bridge.protocol import responses as r
from messages_bridge.translate.request import ReplyContext
from messages_bridge.translate.response import to_anthropic_message
from tests.streamkit import Event, check_grammar, chunked, fold, to_wire, translate

JSON = dict[str, Any]
MODEL = "claude-sonnet-4-5"
ALPHABET = st.sampled_from([*'ab XY\n.{"é漢', "\U0001f600"])
TEXT = st.text(ALPHABET, max_size=24)
SCALAR = st.one_of(st.integers(-5, 10**6), st.booleans(), st.none(), TEXT)
ARGS = st.dictionaries(st.text("abcxyz_", min_size=1, max_size=6), st.one_of(SCALAR, st.lists(SCALAR, max_size=3)),
                       max_size=4)  # fmt: skip
PROFILE = settings(max_examples=70, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def items(draw: st.DrawFn, *, refusals: bool) -> list[JSON]:
    kinds = draw(st.lists(st.sampled_from(["reasoning", "message", "function_call"]), max_size=4))
    out: list[JSON] = []
    for n, kind in enumerate(kinds):
        if kind == "reasoning":
            summary = [{"type": "summary_text", "text": t} for t in draw(st.lists(TEXT, max_size=2))]
            out.append({"id": f"rs_{n}", "type": "reasoning", "summary": summary, "encrypted_content": f"enc{n}"})
        elif kind == "message":
            part = st.builds(lambda t: {"type": "output_text", "text": t, "annotations": []}, TEXT)
            if refusals:
                part = part | st.builds(lambda t: {"type": "refusal", "refusal": t}, TEXT)
            content = draw(st.lists(part, min_size=1, max_size=2))
            out.append({"id": f"msg_{n}", "type": "message", "role": "assistant", "content": content})
        else:
            arguments = json.dumps(draw(ARGS), ensure_ascii=draw(st.booleans()))
            out.append({"id": f"fc_{n}", "type": "function_call", "call_id": f"call_{n}", "name": f"tool_{n % 2}",
                        "arguments": arguments})  # fmt: skip
    return out


@st.composite
def responses(draw: st.DrawFn, *, refusals: bool = True) -> JSON:
    status = draw(st.sampled_from(["completed", "completed", "incomplete", "failed"]))
    response: JSON = {"id": "resp_prop", "status": status, "output": draw(items(refusals=refusals)),
                      "usage": {"input_tokens": draw(st.integers(0, 5000)), "output_tokens": draw(st.integers(0, 900)),
                                "input_tokens_details": {"cached_tokens": 0}}}  # fmt: skip
    if status == "incomplete":
        response["incomplete_details"] = {"reason": draw(st.sampled_from(["max_output_tokens", "content_filter"]))}
    if status == "failed":
        response["output"] = response["output"][:1]
        code = draw(st.sampled_from(["server_error", "rate_limit_exceeded", "invalid_prompt", None]))
        response["error"] = {"code": code, "message": "failed upstream"}
    return response


def _translation(draw: Callable[[st.SearchStrategy[Any]], Any], response: JSON, *, stops: bool) -> ReplyContext:
    texts = [p["text"] for i in response["output"] if i["type"] == "message" for p in i["content"] if "text" in p]
    prefill = ""
    if texts and draw(st.booleans()):
        prefill = texts[0][: draw(st.integers(0, 4))] if draw(st.booleans()) else draw(TEXT)
    stop_sequences = tuple(draw(st.lists(st.text(ALPHABET, min_size=1, max_size=3), max_size=2))) if stops else ()
    return ReplyContext(tool_names={"tool_0": "Tool.Zero"}, stop_sequences=stop_sequences,
                       thinking_requested=draw(st.booleans()), prefill=prefill)  # fmt: skip


def _non_streaming(response: JSON, t: ReplyContext) -> JSON | GatewayError:
    decoded = r.RESPONSE_DECODER.decode(json.dumps(response))
    try:
        return dict(to_anthropic_message(decoded, t, model=MODEL, estimated_tokens=11))
    except GatewayError as exc:
        return exc


def _stream(response: JSON, t: ReplyContext, chunk: int, cuts: list[int]) -> tuple[list[Event], bool]:
    data = encode_sse(events_for(response, chunk=chunk))
    out, translator = translate(chunked(data, cuts), t, model=MODEL)
    return to_wire(out), translator.close_upstream


def _check_against_non_streaming(events: list[Event], response: JSON, t: ReplyContext, stopped: bool) -> None:
    check_grammar(events)
    expected = _non_streaming(response, t)
    if stopped:
        # The stream ended at the stop sequence, so the upstream's final status was never read: compare with the
        # same output completed.
        expected = _non_streaming({**response, "status": "completed", "error": None, "incomplete_details": None}, t)
        assert isinstance(expected, dict) and expected["stop_sequence"] is not None
        message = fold(events)
        assert (message["content"], message["stop_sequence"]) == (expected["content"], expected["stop_sequence"])
        return
    if isinstance(expected, GatewayError):
        assert events[-1] == ("error", {"type": "error", "error": {"type": expected.error_type,
                                                                    "message": expected.message}})  # fmt: skip
        return
    assert [n for n, _ in events][-2:] == ["message_delta", "message_stop"]
    assert fold(events) == json.loads(json.dumps(expected))


@PROFILE
@given(st.data(), responses(), st.integers(1, 9), st.lists(st.integers(1, 4000), max_size=25))
def test_stream_folds_to_the_non_streaming_message(data: st.DataObject, response: JSON, chunk: int,
                                                   cuts: list[int]) -> None:  # fmt: skip
    t = _translation(data.draw, response, stops=False)
    events, stopped = _stream(response, t, chunk, cuts)
    assert not stopped
    _check_against_non_streaming(events, response, t, stopped)


@PROFILE
@given(st.data(), responses(refusals=False), st.integers(1, 5), st.lists(st.integers(1, 4000), max_size=25))
def test_stop_sequences_cut_like_the_non_streaming_path(data: st.DataObject, response: JSON, chunk: int,
                                                        cuts: list[int]) -> None:  # fmt: skip
    t = _translation(data.draw, response, stops=True)
    events, stopped = _stream(response, t, chunk, cuts)
    _check_against_non_streaming(events, response, t, stopped)


@PROFILE
@given(responses(), st.integers(1, 9), st.lists(st.integers(1, 4000), max_size=40), st.booleans())
def test_chunking_of_the_upstream_bytes_does_not_change_the_output(response: JSON, chunk: int, cuts: list[int],
                                                                   thinking: bool) -> None:  # fmt: skip
    """Including cuts inside UTF-8 sequences and CRLF-free line ends."""
    t = ReplyContext(thinking_requested=thinking)
    assert _stream(response, t, chunk, cuts)[0] == _stream(response, t, chunk, [])[0]
