"""Every top-level request field is decided (translated, no-op, refused), and the SDK cannot grow one unnoticed."""

from __future__ import annotations

import logging
import tracemalloc
import uuid
from typing import Any

import httpx
import msgspec
import pytest
from anthropic.types import message_count_tokens_params, message_create_params
from anthropic.types.beta import message_count_tokens_params as beta_count_tokens_params
from anthropic.types.beta import message_create_params as beta_create_params
from prometheus_client import REGISTRY

from messages_bridge.observability.request_fields import MAX_NAMES, OTHER, FieldLabels
from messages_bridge.protocol import anthropic as a
from messages_bridge.protocol.request_fields import (
    COUNT_TOKENS,
    KEY_SCAN_BYTES,
    MAX_UNKNOWN,
    MESSAGES,
    REQUEST_FIELDS,
    Decision,
    Endpoint,
    refusal,
)

SDK_PARAMS: dict[Endpoint, tuple[Any, ...]] = {
    "messages": (
        message_create_params.MessageCreateParamsNonStreaming,
        message_create_params.MessageCreateParamsStreaming,
        beta_create_params.MessageCreateParamsNonStreaming,
        beta_create_params.MessageCreateParamsStreaming,
    ),
    "count_tokens": (
        message_count_tokens_params.MessageCountTokensParams,
        beta_count_tokens_params.MessageCountTokensParams,
    ),
}
STRUCTS: dict[Endpoint, type[msgspec.Struct]] = {"messages": a.MessagesRequest, "count_tokens": a.CountTokensRequest}
BODY: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]}


def decided(endpoint: Endpoint) -> set[str]:
    """The names decided for `endpoint`: exactly the fields its request struct must declare."""
    return {name for name, rule in REQUEST_FIELDS.items() if rule.on(endpoint) is not None}


def _sdk_fields(endpoint: Endpoint) -> set[str]:
    return {key for params in SDK_PARAMS[endpoint] for key in params.__required_keys__ | params.__optional_keys__}


@pytest.mark.parametrize("endpoint", ["messages", "count_tokens"])
def test_every_sdk_field_is_decided(endpoint: Endpoint) -> None:
    undecided = _sdk_fields(endpoint) - decided(endpoint)
    assert not undecided, f"decide these {endpoint} fields in protocol/request_fields.py: {sorted(undecided)}"


@pytest.mark.parametrize("endpoint", ["messages", "count_tokens"])
def test_decided_fields_are_sdk_fields_or_marked_legacy(endpoint: Endpoint) -> None:
    extra = {n for n in decided(endpoint) - _sdk_fields(endpoint) if not REQUEST_FIELDS[n].legacy}
    assert not extra, f"not in the installed SDK's types: mark legacy or drop: {sorted(extra)}"
    stale = {n for n in decided(endpoint) & _sdk_fields(endpoint) if REQUEST_FIELDS[n].legacy}
    assert not stale, f"marked legacy but in the SDK: {sorted(stale)}"


@pytest.mark.parametrize("endpoint", ["messages", "count_tokens"])
def test_the_struct_declares_exactly_the_decided_fields(endpoint: Endpoint) -> None:
    declared = {f.encode_name for f in msgspec.structs.fields(STRUCTS[endpoint])}
    assert declared == decided(endpoint)


def test_every_decision_gives_a_reason() -> None:
    for name, rule in REQUEST_FIELDS.items():
        assert len(rule.why) > 10, name


def _encoded(**extra: object) -> bytes:
    return msgspec.json.encode(BODY | extra)


def test_only_decided_fields_decode_in_one_pass_and_unknown_ones_are_named() -> None:
    assert MESSAGES.decode(_encoded(context_management={"edits": []}, top_k=5)).unknown == ()
    decoded = MESSAGES.decode(_encoded(zz_future=1, temperature=0.5, yy_future={"a": 1}))
    assert decoded.unknown == ("zz_future", "yy_future")
    assert decoded.request.temperature == 0.5
    assert COUNT_TOKENS.decode(_encoded()).unknown == ("max_tokens",)  # a generation field: not one of count_tokens


def test_unknown_names_are_bounded_per_request_and_large_bodies_are_not_scanned() -> None:
    many = {f"zz_{i}": 0 for i in range(MAX_UNKNOWN * 4)}
    assert MESSAGES.decode(_encoded(**many)).unknown == tuple(list(many)[:MAX_UNKNOWN])
    padding = "x" * KEY_SCAN_BYTES
    large = _encoded(zz_first=1, zz_second=2, system=padding)
    assert MESSAGES.decode(large).unknown == ("zz_first",)  # named by the strict decoder, no key listing


def test_a_body_of_many_unknown_keys_costs_no_memory_per_key() -> None:
    keys = b",".join(b'"k%d":0' % i for i in range(200_000))  # 2.3 MB, past the key-scan limit
    body = _encoded()[:-1] + b"," + keys + b"}"
    tracemalloc.start()
    try:
        decoded = MESSAGES.decode(body)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert decoded.unknown == ("k0",)
    assert peak < 64 * 1024  # bytes: no object per key (a full listing would hold about 25 MB)


def test_an_invalid_body_with_an_unknown_field_still_names_the_real_error() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"max_tokens"):
        MESSAGES.decode(msgspec.json.encode({"zz_future": 1, "model": "m", "messages": [], "max_tokens": -1}))


REFUSED_EXAMPLES: list[tuple[str, object]] = [
    ("mcp_servers", [{"type": "url", "url": "https://mcp.example", "name": "x"}]),
    ("container", {"skills": [{"type": "anthropic", "skill_id": "pptx"}]}),
    ("container", {"id": "container_011", "skills": [{"type": "custom", "skill_id": "x"}]}),
    ("compaction", {"type": "summarize"}),
    ("fallbacks", [{"model": "claude-haiku-4-5"}]),
    ("billing_policy", {"type": "billing_policy", "bill_to": "user_profile"}),
]
ACCEPTED_EXAMPLES: list[tuple[str, object]] = [
    ("mcp_servers", []),
    ("container", None),
    ("container", "container_011"),
    ("container", {"id": "container_011", "skills": []}),
    ("compaction", None),
    ("fallbacks", "default"),
    ("billing_policy", {"type": "billing_policy", "bill_to": "self"}),
    ("cache_control", {"type": "ephemeral"}),
    ("inference_geo", "us"),
    ("diagnostics", {"previous_message_id": None}),
    ("fallback_credit_token", "tok"),
    ("betas", ["x"]),
    ("user_profile_id", "up_1"),
    ("workspace_id", "wrkspc_1"),
]


def test_every_refused_field_has_a_refused_example() -> None:
    refused = {n for n, r in REQUEST_FIELDS.items() if Decision.REFUSED in (r.messages, r.count_tokens)}
    assert {name for name, _ in REFUSED_EXAMPLES} == refused


@pytest.mark.parametrize(("name", "value"), REFUSED_EXAMPLES)
def test_refused_fields_that_ask_for_something_are_refused_by_name(name: str, value: object) -> None:
    message = refusal(MESSAGES.decode(_encoded(**{name: value})).request, "messages")
    assert message is not None
    assert message.startswith(f"{name}: ")


@pytest.mark.parametrize(("name", "value"), ACCEPTED_EXAMPLES)
def test_inert_values_and_no_ops_are_accepted(name: str, value: object) -> None:
    assert refusal(MESSAGES.decode(_encoded(**{name: value})).request, "messages") is None


def test_count_tokens_ignores_compaction_as_the_api_does() -> None:
    body = msgspec.json.encode({k: v for k, v in BODY.items() if k != "max_tokens"} | {"compaction": {"type": "x"}})
    assert refusal(COUNT_TOKENS.decode(body).request, "count_tokens") is None


def test_labels_are_bounded_by_pattern_and_count() -> None:
    labels = FieldLabels(limit=3)
    assert labels.label("future_a") == ("future_a", True)
    assert labels.label("future_a") == ("future_a", False)
    assert labels.label("Bad-Name") == (OTHER, True)
    assert labels.label("x" * 41) == (OTHER, False)
    assert labels.label("future_b") == ("future_b", True)
    assert labels.label("future_c") == (OTHER, False)  # the limit is reached: new names share `other`
    assert labels.label("future_b") == ("future_b", False)
    assert MAX_NAMES <= 100


def _unknown_count(endpoint: str, field: str) -> float:
    value = REGISTRY.get_sample_value(
        "messages_bridge_unknown_request_fields_total", {"endpoint": endpoint, "field": field}
    )
    return value or 0.0


async def test_unknown_fields_are_accepted_counted_and_logged_once(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    name = "future_" + uuid.uuid4().hex[:8]  # new to this process, whatever ran before
    caplog.set_level(logging.WARNING, logger="messages_bridge.request_fields")
    for _ in range(2):
        reply = await client.post("/v1/messages", json=BODY | {name: {"anything": True}})
        assert reply.status_code == 200, reply.text
    assert _unknown_count("messages", name) == 2
    assert sum(name in r.getMessage() for r in caplog.records) == 1


async def test_no_op_sampling_fields_are_logged_at_debug(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="messages_bridge.translate")
    reply = await client.post("/v1/messages", json=BODY | {"top_k": 5})
    assert reply.status_code == 200, reply.text
    assert [r.getMessage() for r in caplog.records if r.name == "messages_bridge.translate"] == [
        "left out, no upstream equivalent: top_k"
    ]


async def test_a_refused_field_is_a_400_naming_it(client: httpx.AsyncClient) -> None:
    reply = await client.post("/v1/messages", json=BODY | {"mcp_servers": [{"type": "url", "url": "u", "name": "n"}]})
    assert reply.status_code == 400
    assert reply.json()["error"]["type"] == "invalid_request_error"
    assert reply.json()["error"]["message"].startswith("mcp_servers: ")
