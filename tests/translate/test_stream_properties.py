"""Hypothesis: over generated final Responses, their upstream event streams and arbitrary byte chunkings, the
translated stream follows the Anthropic grammar, reassembles text and arguments exactly, and folds to the
non-streaming translation of the same Response.

The streams are also distorted the ways real servers differ from OpenAI's: item ids that change on every event
(GitHub Copilot), content sent only in `.done` events, items never announced, no `output_index`; and the
Responses themselves carry what real servers send: reasoning without `encrypted_content`, raw `reasoning_text`
parts (LM Studio), empty, repeated or ill-formed call ids, negative usage, unfinished statuses.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messages_bridge.demo.events import encode_sse, events_for
from messages_bridge.errors import GatewayError
from messages_bridge.protocol import responses as r
from messages_bridge.translate.request import ReplyContext
from messages_bridge.translate.response import to_anthropic_message
from messages_bridge.translate.signatures import decode_signature
from tests.streamkit import Event, check_grammar, chunked, fold, to_wire, translate

JSON = dict[str, Any]
MODEL = "claude-sonnet-4-5"
ALPHABET = st.sampled_from([*'ab XY\n.{"é漢', "\U0001f600"])
TEXT = st.text(ALPHABET, max_size=24)
SCALAR = st.one_of(st.integers(-5, 10**6), st.booleans(), st.none(), TEXT)
ARGS = st.dictionaries(
    st.text("abcxyz_", min_size=1, max_size=6), st.one_of(SCALAR, st.lists(SCALAR, max_size=3)), max_size=4
)
PROFILE = settings(max_examples=70, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CALL_IDS = st.sampled_from(["call_dup", "", "call id!", "x" * 70])  # repeated, empty, outside the id grammar
TOOL_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
STATUSES = ["completed", "completed", "completed", "incomplete", "failed", "in_progress", "queued", None]


def _reasoning(draw: st.DrawFn, n: int) -> JSON:
    summary = [{"type": "summary_text", "text": t} for t in draw(st.lists(TEXT, max_size=2))]
    item: JSON = {"id": f"rs_{n}", "type": "reasoning", "summary": summary}
    if draw(st.booleans()):
        item["encrypted_content"] = f"enc{n}"
    if draw(st.booleans()):
        item["content"] = [{"type": "reasoning_text", "text": t} for t in draw(st.lists(TEXT, max_size=2))]
    return item


@st.composite
def items(draw: st.DrawFn, *, refusals: bool) -> list[JSON]:
    kinds = draw(st.lists(st.sampled_from(["reasoning", "message", "function_call"]), max_size=4))
    out: list[JSON] = []
    for n, kind in enumerate(kinds):
        if kind == "reasoning":
            out.append(_reasoning(draw, n))
        elif kind == "message":
            part = st.builds(lambda t: {"type": "output_text", "text": t, "annotations": []}, TEXT)
            if refusals:
                part = part | st.builds(lambda t: {"type": "refusal", "refusal": t}, TEXT)
            content = draw(st.lists(part, min_size=1, max_size=2))
            out.append({"id": f"msg_{n}", "type": "message", "role": "assistant", "content": content})
        else:
            arguments = json.dumps(draw(ARGS), ensure_ascii=draw(st.booleans()))
            call_id = draw(st.just(f"call_{n}") | CALL_IDS)
            out.append(
                {
                    "id": f"fc_{n}",
                    "type": "function_call",
                    "call_id": call_id,
                    "name": f"tool_{n % 2}",
                    "arguments": arguments,
                }
            )
    return out


@st.composite
def responses(draw: st.DrawFn, *, refusals: bool = True) -> JSON:
    status = draw(st.sampled_from(STATUSES))
    usage = {
        "input_tokens": draw(st.integers(-50, 5000)),
        "output_tokens": draw(st.integers(-50, 900)),
        "input_tokens_details": {"cached_tokens": draw(st.integers(-5, 100))},
    }
    response: JSON = {"id": "resp_prop", "status": status, "output": draw(items(refusals=refusals)), "usage": usage}
    if status is None and draw(st.booleans()):
        del response["status"]
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
    return ReplyContext(
        tool_names={"tool_0": "Tool.Zero"},
        stop_sequences=stop_sequences,
        thinking_requested=draw(st.booleans()),
        prefill=prefill,
    )


def _non_streaming(response: JSON, t: ReplyContext) -> JSON | GatewayError:
    decoded = r.RESPONSE_DECODER.decode(json.dumps(response))
    try:
        return dict(to_anthropic_message(decoded, t, model=MODEL, estimated_tokens=11))
    except GatewayError as exc:
        return exc


@st.composite
def distortions(draw: st.DrawFn) -> JSON:
    """How a server other than OpenAI's may stream the same answer."""
    drop = draw(st.sampled_from(["nothing", "nothing", "deltas", "all but items"]))
    unannounced = draw(st.booleans())
    return {
        "rotate": draw(st.booleans()),
        "drop": drop,
        "unannounced": unannounced,
        "unindexed": not unannounced and draw(st.booleans()),
        "encrypted_deltas": draw(st.booleans()),
    }


def _rotated(events: list[JSON]) -> list[JSON]:
    """Every item id different in every event (GitHub Copilot): only `output_index` still ties events to items."""
    fresh = (f"id_{n}" for n in itertools.count())
    out: list[JSON] = json.loads(json.dumps(events))
    for event in out:
        if "item_id" in event:
            event["item_id"] = next(fresh)
        if isinstance(event.get("item"), dict):
            event["item"]["id"] = next(fresh)
        for item in (event.get("response") or {}).get("output") or ():
            item["id"] = next(fresh)
    return out


def _encrypted_deltas(events: list[JSON]) -> list[JSON]:
    """Argument deltas as GitHub Copilot sends them: ciphertext, flagged by an `obfuscation` field."""
    return [
        {**e, "delta": "\u00bfcipher\u00bf", "obfuscation": "x"}
        if e["type"] == "response.function_call_arguments.delta"
        else e
        for e in events
    ]


def distort(events: list[JSON], how: JSON) -> list[JSON]:
    if how["rotate"]:
        events = _rotated(events)
    if how["encrypted_deltas"]:
        events = _encrypted_deltas(events)
    if how["drop"] == "deltas":
        events = [e for e in events if not e["type"].endswith(".delta")]
    elif how["drop"] == "all but items":
        events = [
            e
            for e in events
            if not e["type"].startswith(
                (
                    "response.content_part",
                    "response.output_text",
                    "response.refusal",
                    "response.function_call",
                    "response.reasoning",
                )
            )
        ]
    if how["unannounced"]:
        events = [e for e in events if e["type"] != "response.output_item.added"]
    if how["unindexed"]:
        events = [{k: v for k, v in e.items() if k != "output_index"} for e in events]
    return events


def _stream(
    response: JSON, t: ReplyContext, chunk: int, cuts: list[int], how: JSON | None = None
) -> tuple[list[Event], bool]:
    events = events_for(response, chunk=chunk)
    data = encode_sse(distort(events, how) if how is not None else events)
    out, translator = translate(chunked(data, cuts), t, model=MODEL)
    return to_wire(out), translator.close_upstream


def _signatures_as_content(message: JSON) -> JSON:
    """Rotated ids reach signatures differently by path; what must agree is the reasoning content they carry."""
    out: JSON = json.loads(json.dumps(message))
    for block in out.get("content", ()):
        if block["type"] == "thinking" and block["signature"]:
            ref = decode_signature(block["signature"])
            assert ref is not None
            block["signature"] = ref.ec
    return out


def _check_client_facing(message: JSON) -> None:
    """What reaches a client is usable whatever the upstream sent: unique well-formed tool ids, no negative usage."""
    ids = [b["id"] for b in message["content"] if b["type"] == "tool_use"]
    assert len(set(ids)) == len(ids) and all(TOOL_ID.fullmatch(i) for i in ids)
    usage = message["usage"]
    assert all(
        usage[k] >= 0
        for k in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    )


def _check_against_non_streaming(
    events: list[Event], response: JSON, t: ReplyContext, stopped: bool, *, rotated: bool = False
) -> None:
    check_grammar(events)
    expected = _non_streaming(response, t)
    if stopped:
        # The stream ended at the stop sequence, so the upstream's final status was never read: compare with the
        # same output completed.
        expected = _non_streaming({**response, "status": "completed", "error": None, "incomplete_details": None}, t)
        assert isinstance(expected, dict) and expected["stop_sequence"] is not None
        message, expected = fold(events), json.loads(json.dumps(expected))
        if rotated:
            message, expected = _signatures_as_content(message), _signatures_as_content(expected)
        assert (message["content"], message["stop_sequence"]) == (expected["content"], expected["stop_sequence"])
        return
    if isinstance(expected, GatewayError):
        assert events[-1] == (
            "error",
            {"type": "error", "error": {"type": expected.error_type, "message": expected.message}},
        )
        return
    assert [n for n, _ in events][-2:] == ["message_delta", "message_stop"]
    message, expected = fold(events), json.loads(json.dumps(expected))
    _check_client_facing(message)
    if rotated:
        message, expected = _signatures_as_content(message), _signatures_as_content(expected)
    assert message == expected


@PROFILE
@given(st.data(), responses(), st.integers(1, 9), st.lists(st.integers(1, 4000), max_size=25))
def test_stream_folds_to_the_non_streaming_message(
    data: st.DataObject, response: JSON, chunk: int, cuts: list[int]
) -> None:
    t = _translation(data.draw, response, stops=False)
    events, stopped = _stream(response, t, chunk, cuts)
    assert not stopped
    _check_against_non_streaming(events, response, t, stopped)


@PROFILE
@given(st.data(), responses(), distortions(), st.integers(1, 9), st.lists(st.integers(1, 4000), max_size=10))
def test_streams_of_other_servers_fold_to_the_same_message(
    data: st.DataObject, response: JSON, how: JSON, chunk: int, cuts: list[int]
) -> None:
    """Rotated item ids, encrypted argument deltas, content only in `.done` events, unannounced or unindexed items:
    the same message."""
    t = _translation(data.draw, response, stops=data.draw(st.booleans()))
    events, stopped = _stream(response, t, chunk, cuts, how)
    _check_against_non_streaming(events, response, t, stopped, rotated=how["rotate"])


@PROFILE
@given(st.data(), responses(refusals=False), st.integers(1, 5), st.lists(st.integers(1, 4000), max_size=25))
def test_stop_sequences_cut_like_the_non_streaming_path(
    data: st.DataObject, response: JSON, chunk: int, cuts: list[int]
) -> None:
    t = _translation(data.draw, response, stops=True)
    events, stopped = _stream(response, t, chunk, cuts)
    _check_against_non_streaming(events, response, t, stopped)


@PROFILE
@given(responses(), st.integers(1, 9), st.lists(st.integers(1, 4000), max_size=40), st.booleans())
def test_chunking_of_the_upstream_bytes_does_not_change_the_output(
    response: JSON, chunk: int, cuts: list[int], thinking: bool
) -> None:
    """Including cuts inside UTF-8 sequences and CRLF-free line ends."""
    t = ReplyContext(thinking_requested=thinking)
    assert _stream(response, t, chunk, cuts)[0] == _stream(response, t, chunk, [])[0]
