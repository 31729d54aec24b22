"""StreamTranslator: golden upstream → Anthropic streams, and one test per edge case of docs/mapping.md, Streaming."""

from __future__ import annotations

import json
from typing import Any

import pytest

from messages_bridge.demo.events import events_for
from messages_bridge.errors import UpstreamTimeoutError
from messages_bridge.protocol import anthropic_stream as o
from messages_bridge.protocol import responses as r
from messages_bridge.protocol import responses_stream as rs
from messages_bridge.protocol.sse import ServerSentEvent
from messages_bridge.translate.request import ReplyContext
from messages_bridge.translate.response import to_anthropic_message
from messages_bridge.translate.signatures import decode_signature
from messages_bridge.translate.stream import StreamTranslator
from tests.streamkit import Event, check_grammar, fold, parse_sse, to_wire, translate
from tests.translate.golden_cases import CASES, FIXTURES, encode_upstream, translation_for

JSON = dict[str, Any]


def _t(**kwargs: Any) -> ReplyContext:
    return ReplyContext(**kwargs)


def run(events: list[JSON], t: ReplyContext | None = None) -> list[Event]:
    out, _ = translate([encode_upstream(events)], t or _t())
    wire = to_wire(out)
    check_grammar(wire)
    return wire


def names(events: list[Event]) -> list[str]:
    return [n for n, _ in events]


@pytest.mark.parametrize("case", CASES)
def test_golden_stream(case: str) -> None:
    """Parsed events equal the reviewed golden output; regenerate with `python -m tests.translate.golden_cases`."""
    upstream = (FIXTURES / f"{case}.responses.sse").read_bytes()
    out, _ = translate([upstream], translation_for(case), input_tokens=300)
    actual = to_wire(out)
    check_grammar(actual)
    assert actual == parse_sse((FIXTURES / f"{case}.anthropic.sse").read_bytes())


def test_golden_reasoning_case_carries_the_reasoning_item_in_the_signature() -> None:
    events = parse_sse((FIXTURES / "reasoning_text_tool.anthropic.sse").read_bytes())
    message = fold(events)
    thinking, text, tool = message["content"]
    ref = decode_signature(thinking["signature"])
    assert ref is not None and ref.id == "rs_68a2" and ref.ec == "gAAAAABoZ2VuY3J5cHRlZA=="
    assert thinking["thinking"] == "**Checking the weather**\n\nThen answer."
    assert text == {"type": "text", "text": "Let me check."}
    assert tool["input"] == {"location": "Paris", "unit": "celsius"} and message["stop_reason"] == "tool_use"
    assert message["usage"]["input_tokens"] == 1200 - 1024 and message["usage"]["cache_read_input_tokens"] == 1024


def test_golden_parallel_tools_map_names_back_and_get_their_own_indexes() -> None:
    message = fold(parse_sse((FIXTURES / "parallel_tools.anthropic.sse").read_bytes()))
    assert [(b["id"], b["name"]) for b in message["content"]] == [
        ("call_Qx1", "get_weather"),
        ("call_Qx2", "mcp__files.read"),
    ]
    assert message["content"][1]["input"] == {"path": "/tmp/a.txt"}


def _response(output: list[JSON], status: str = "completed", **extra: Any) -> JSON:
    return {
        "id": "resp_1",
        "status": status,
        "output": output,
        "usage": {"input_tokens": 5, "output_tokens": 3},
        **extra,
    }


def _call(arguments: str) -> JSON:
    return {"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "Bash", "arguments": arguments}


def test_arguments_arrive_only_in_done() -> None:
    events = [
        e
        for e in events_for(_response([_call('{"command":"ls"}')]))
        if e["type"] != "response.function_call_arguments.delta"
    ]
    wire = run(events)
    deltas = [p["delta"]["partial_json"] for n, p in wire if n == "content_block_delta"]
    assert deltas == ['{"command":"ls"}']
    assert fold(wire)["content"][0]["input"] == {"command": "ls"}


def test_arguments_arrive_only_in_the_done_item() -> None:
    events = [
        e
        for e in events_for(_response([_call('{"command":"ls"}')]))
        if not e["type"].startswith("response.function_call_arguments")
    ]
    assert fold(run(events))["content"][0]["input"] == {"command": "ls"}


def test_empty_arguments_give_an_empty_input() -> None:
    wire = run(events_for(_response([_call("")])))
    assert "content_block_delta" not in names(wire) and fold(wire)["content"][0]["input"] == {}


def test_invalid_tool_arguments_end_with_an_error_event() -> None:
    wire = run(events_for(_response([_call('{"command": "ls"')])))
    assert wire[-1] == (
        "error",
        {
            "type": "error",
            "error": {
                "type": "api_error",
                "message": "The upstream model produced tool arguments that are not valid JSON",
            },
        },
    )
    assert "message_delta" not in names(wire)


def test_stream_ending_without_terminal_event_is_an_error_never_end_turn() -> None:
    events = events_for(
        _response([{"id": "msg_1", "type": "message", "content": [{"type": "output_text", "text": "hi"}]}])
    )
    wire = run(events[:-1])
    assert names(wire)[-1] == "error" and "message_stop" not in names(wire)


def test_flat_error_event_is_mapped() -> None:
    wire = run(
        [
            {"type": "response.created", "response": {"id": "resp_1"}},
            {"type": "error", "code": "rate_limit_exceeded", "message": "Slow down", "param": None},
        ]
    )
    assert wire[-1] == ("error", {"type": "error", "error": {"type": "rate_limit_error", "message": "Slow down"}})


def test_error_before_anything_is_a_lone_error_event() -> None:
    wire = run([{"type": "error", "error": {"code": "server_error", "message": "boom"}}])
    assert wire == [("error", {"type": "error", "error": {"type": "api_error", "message": "boom"}})]


def test_unknown_events_are_ignored() -> None:
    events = events_for(
        _response([{"id": "msg_1", "type": "message", "content": [{"type": "output_text", "text": "hi"}]}])
    )
    searching = {"type": "response.web_search_call.searching", "item_id": "ws_1", "output_index": 0}
    noisy = [events[0], {"type": "response.future_thing", "x": {"deep": [1, 2]}}, searching, *events[1:]]
    assert run(noisy) == run(events)


def test_reasoning_is_dropped_when_thinking_was_not_requested() -> None:
    reasoning = {
        "id": "rs_1",
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "hmm"}],
        "encrypted_content": "enc",
    }
    text = {"id": "msg_1", "type": "message", "content": [{"type": "output_text", "text": "hi"}]}
    message = fold(run(events_for(_response([reasoning, text]))))
    assert message["content"] == [{"type": "text", "text": "hi"}]


def test_reasoning_with_empty_summary_still_sends_its_signature() -> None:
    reasoning = {"id": "rs_1", "type": "reasoning", "summary": [], "encrypted_content": "enc"}
    wire = run(events_for(_response([reasoning])), _t(thinking_requested=True))
    assert [n for n in names(wire) if n.startswith("content_block")] == [
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
    ]
    block = fold(wire)["content"][0]
    assert block["thinking"] == "" and decode_signature(block["signature"]) is not None


def test_prefill_is_stripped_from_the_first_text_block() -> None:
    text = {"id": "msg_1", "type": "message", "content": [{"type": "output_text", "text": '{"answer": 42}'}]}
    message = fold(run(events_for(_response([text]), chunk=2), _t(prefill='{"answer"')))
    assert message["content"] == [{"type": "text", "text": ": 42}"}]


def test_prefill_not_repeated_is_kept_whole() -> None:
    text = {"id": "msg_1", "type": "message", "content": [{"type": "output_text", "text": "{x"}]}
    message = fold(run(events_for(_response([text]), chunk=1), _t(prefill='{"answer"')))
    assert message["content"] == [{"type": "text", "text": "{x"}]


def test_stop_sequence_held_back_text_is_released_at_block_end() -> None:
    text = {"id": "msg_1", "type": "message", "content": [{"type": "output_text", "text": "abc STO"}]}
    wire = run(events_for(_response([text]), chunk=3), _t(stop_sequences=("STOP",)))
    message = fold(wire)
    assert message["content"] == [{"type": "text", "text": "abc STO"}] and message["stop_reason"] == "end_turn"


def test_stop_sequence_match_asks_to_close_the_upstream() -> None:
    text = {"id": "msg_1", "type": "message", "content": [{"type": "output_text", "text": "one STOP two"}]}
    out, translator = translate([encode_upstream(events_for(_response([text]), chunk=2))], _t(stop_sequences=("STOP",)))
    assert translator.close_upstream and translator.stop_reason == "stop_sequence"
    assert fold(to_wire(out))["content"] == [{"type": "text", "text": "one "}]


def test_incomplete_content_filter_is_a_refusal() -> None:
    text = {"id": "msg_1", "type": "message", "content": [{"type": "output_text", "text": "partial"}]}
    response = _response([text], status="incomplete", incomplete_details={"reason": "content_filter"})
    assert fold(run(events_for(response)))["stop_reason"] == "refusal"


def test_nothing_follows_the_end() -> None:
    translator = StreamTranslator(_t(), model="m", input_tokens=1)
    created = rs.decode_event(ServerSentEvent("response.created", b'{"type":"response.created","response":{"id":"r"}}'))
    assert created is not None and len(translator.feed(created)) == 1
    error = translator.fail(UpstreamTimeoutError("Request timeout"))
    assert [type(e) for e in error] == [o.ErrorEvent] and translator.done
    assert (
        translator.feed(created) == []
        and translator.finish() == []
        and translator.fail(UpstreamTimeoutError("x")) == []
    )


def test_message_start_carries_the_input_estimate_and_the_requested_model() -> None:
    out, _ = translate([encode_upstream(events_for(_response([])))], _t(), model="claude-opus-4-8", input_tokens=4242)
    start = to_wire(out)[0][1]["message"]
    assert start["model"] == "claude-opus-4-8" and start["usage"]["input_tokens"] == 4242 and start["id"] == "msg_1"
    assert json.dumps(start["content"]) == "[]"


# ---- servers other than OpenAI's (fixtures/streams/README.md) ------------------------------------------------------


def test_copilot_rotating_ids_keep_the_whole_answer() -> None:
    """Every event with a different item id, argument deltas encrypted: nothing is lost, nothing garbled."""
    upstream = parse_sse((FIXTURES / "copilot_rotating_ids.responses.sse").read_bytes())
    ids = [p.get("item_id") or p.get("item", {}).get("id") for _, p in upstream]
    assert len({i for i in ids if i}) == len([i for i in ids if i])  # really no id repeats
    message = fold(parse_sse((FIXTURES / "copilot_rotating_ids.anthropic.sse").read_bytes()))
    thinking, text, tool = message["content"]
    assert thinking["thinking"] == "**Checking**" and decode_signature(thinking["signature"]) is not None
    assert text == {"type": "text", "text": "Let me check."}
    assert tool["input"] == {"location": "Paris"} and message["stop_reason"] == "tool_use"


@pytest.mark.parametrize("case", ["vllm_gpt_oss_reasoning_text"])
def test_recorded_stream_folds_to_the_translation_of_its_final_response(case: str) -> None:
    """The real vLLM recording: raw `reasoning_text` is the thinking, streamed or not, though its ids change."""
    streamed = fold(parse_sse((FIXTURES / f"{case}.anthropic.sse").read_bytes()))
    final = r.RESPONSE_DECODER.decode((FIXTURES.parent / "responses" / f"{case}.responses.json").read_bytes())
    plain = to_anthropic_message(final, translation_for(case), model="claude-sonnet-4-5")
    assert streamed["content"] == json.loads(json.dumps(plain["content"]))
    assert streamed["content"][0]["thinking"].startswith("The user: ") and streamed["content"][1]["text"] == "HELLO"
    assert (streamed["stop_reason"], streamed["usage"]) == (plain["stop_reason"], plain["usage"])


def test_text_deltas_numbered_one_by_one_stay_one_block() -> None:
    """vLLM numbers every delta's content_index: only `content_part.added` starts a new part."""
    text = {"id": "msg_1", "type": "message", "content": [{"type": "output_text", "text": "one two three"}]}
    events = events_for(_response([text]), chunk=4)
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    for n, event in enumerate(deltas):
        event["content_index"] = n
    assert fold(run(events))["content"] == [{"type": "text", "text": "one two three"}]


def test_streamed_arguments_that_differ_from_the_final_ones_are_an_error() -> None:
    events = events_for(_response([_call('{"command":"ls"}')]), chunk=4)
    for event in events:
        if event["type"] == "response.function_call_arguments.delta":
            event["delta"] = event["delta"].upper()
    wire = run(events)
    assert wire[-1] == (
        "error",
        {
            "type": "error",
            "error": {
                "type": "api_error",
                "message": "The upstream's streamed tool arguments differ from its final ones",
            },
        },
    )


def test_an_item_announced_twice_is_one_item() -> None:
    text = {"id": "msg_1", "type": "message", "content": [{"type": "output_text", "text": "hi"}]}
    events = events_for(_response([text]))
    added = next(e for e in events if e["type"] == "response.output_item.added")
    again = [*events[:3], added, *events[3:]]
    assert fold(run(again))["content"] == [{"type": "text", "text": "hi"}]


def test_content_of_another_kind_for_an_item_is_an_error() -> None:
    events = events_for(_response([_call('{"command":"ls"}')]))
    text = {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "hi"}
    wire = run([*events[:3], text, *events[3:]])
    assert wire[-1][0] == "error" and wire[-1][1]["error"]["message"] == (
        "The upstream stream sent message content for a tool output item"
    )
