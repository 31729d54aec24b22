"""The access record travels in the ASGI scope, and the upstream call's facts reach it in one step."""

from __future__ import annotations

import pytest

from messages_bridge.errors import OverloadedError, UpstreamProtocolError
from messages_bridge.observability.record import NoRecordError, RequestRecord, attach, record_of
from messages_bridge.observability.upstream import UpstreamFacts, upstream_call
from messages_bridge.protocol import anthropic as a


def test_the_record_is_found_in_its_scope_and_nowhere_else() -> None:
    scope: dict[str, object] = {"type": "http", "state": {"identity": "kept"}}
    record = RequestRecord()
    attach(scope, record)
    assert record_of(scope) is record
    assert scope["state"] == {"identity": "kept", "record": record}  # the request's other state stays
    with pytest.raises(NoRecordError):
        record_of({"type": "http"})


def test_apply_records_every_fact_of_the_call() -> None:
    usage: a.Usage = {
        "input_tokens": 11,
        "output_tokens": 7,
        "cache_read_input_tokens": 3,
        "cache_creation_input_tokens": 2,
        "output_tokens_details": {"thinking_tokens": 5},
        "server_tool_use": {"web_search_requests": 2},
    }
    facts = UpstreamFacts(model="gpt-5", started=1.0, first_byte=1.5, done=2.0, retries=1, fallbacks=1)
    facts.upstream, facts.target_position, facts.key_index = "azure", 1, 0
    facts.answered(200, "req_up_1")
    facts.replied(usage, "end_turn")
    facts.first_token, facts.stream_error_type, facts.cut = 1.6, "overloaded_error", True
    facts.web_search_errors, facts.web_search_seconds = 1, 0.25
    record = RequestRecord()
    record.apply(facts)
    assert (record.upstream_model, record.upstream_status, record.upstream_request_id) == ("gpt-5", 200, "req_up_1")
    assert (record.upstream_started, record.upstream_first_byte, record.upstream_done) == (1.0, 1.5, 2.0)
    assert (record.input_tokens, record.output_tokens, record.reasoning_tokens) == (11, 7, 5)
    assert (record.cache_read_tokens, record.cache_creation_tokens, record.stop_reason) == (3, 2, "end_turn")
    assert (record.retries, record.fallbacks) == (1, 1)
    assert (record.upstream, record.target_position, record.key_index) == ("azure", 1, 0)
    assert (record.first_token, record.error_type, record.disconnected) == (1.6, "overloaded_error", True)
    assert (record.web_searches, record.web_search_errors, record.web_search_ms) == (2, 1, 250.0)


def test_an_unprintable_upstream_id_is_not_kept() -> None:
    facts = UpstreamFacts()
    facts.answered(502, "id with spaces\nand a newline")
    assert facts.request_id is None


def test_an_upstream_call_is_timed_and_its_error_noted() -> None:
    facts = UpstreamFacts()
    with pytest.raises(OverloadedError), upstream_call(facts, "gpt-5"):
        raise OverloadedError("busy")
    assert facts.model == "gpt-5" and facts.error_type == "overloaded_error"
    assert facts.started is not None and facts.done is not None and facts.done >= facts.started
    with pytest.raises(UpstreamProtocolError), upstream_call(facts):
        raise UpstreamProtocolError("not a Responses API response")
    assert facts.model == "gpt-5" and facts.error_type == "api_error"
