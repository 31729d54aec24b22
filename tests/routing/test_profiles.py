"""Capability profiles: effort mapping (nearest, `max` → highest, no thinking → `none` or the lowest), sampling,
and the `max_output_tokens` ceiling clamping `max_tokens`; unlisted models keep the prefix settings."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from messages_bridge.config import Settings
from messages_bridge.protocol import anthropic as a
from messages_bridge.routing.config_file import ModelProfile
from messages_bridge.routing.router import build_profile
from messages_bridge.translate.request import nearest_effort, to_responses_request
from messages_bridge.translate.tools import tool_set

SETTINGS = Settings(openai_api_key="sk-x")
GPT5 = ("minimal", "low", "medium", "high")
GPT51 = ("none", "low", "medium", "high")
CODEX = ("low", "medium", "high", "xhigh")


def request(**fields: Any) -> a.MessagesRequest:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 64000, "messages": [{"role": "user", "content": "Hi"}]}
    return msgspec.convert(body | fields, a.MessagesRequest)


def body_for(profile: ModelProfile | None, model: str = "gpt-5", **fields: Any) -> dict[str, Any]:
    req = request(**fields)
    profile_for = build_profile(model, profile, SETTINGS)
    translated = to_responses_request(req, tool_set(req.tools), profile_for, api_version="")
    return dict(translated.body)


@pytest.mark.parametrize(
    ("requested", "supported", "expected"),
    [
        ("max", CODEX, "xhigh"),
        ("max", GPT5, "high"),
        ("xhigh", GPT5, "high"),
        ("minimal", GPT51, "low"),  # a tie (none / low) goes to the higher
        ("minimal", GPT5, "minimal"),
        ("none", CODEX, "low"),
        ("medium", ("low", "high"), "high"),
        ("low", ("high",), "high"),
        ("high", (), None),
    ],
)
def test_nearest_effort(requested: str, supported: tuple[str, ...], expected: str | None) -> None:
    assert nearest_effort(requested, supported) == expected


def test_max_effort_maps_to_the_highest_the_model_has() -> None:
    profile = ModelProfile(reasoning_efforts=CODEX)
    body = body_for(profile, thinking={"type": "adaptive"}, output_config={"effort": "max"})
    assert body["reasoning"]["effort"] == "xhigh"


def test_a_thinking_budget_maps_to_the_nearest_supported_effort() -> None:
    profile = ModelProfile(reasoning_efforts=("low", "high"))
    body = body_for(profile, thinking={"type": "enabled", "budget_tokens": 8000})  # medium → high (tie upward)
    assert body["reasoning"]["effort"] == "high"


def test_no_thinking_is_none_where_the_model_has_it_else_its_lowest() -> None:
    assert body_for(ModelProfile(reasoning_efforts=GPT51), "gpt-5.1")["reasoning"]["effort"] == "none"
    assert body_for(ModelProfile(reasoning_efforts=GPT5))["reasoning"]["effort"] == "minimal"
    assert body_for(ModelProfile(reasoning_efforts=CODEX))["reasoning"]["effort"] == "low"
    disabled = body_for(ModelProfile(reasoning_efforts=GPT51), "gpt-5.1", thinking={"type": "disabled"})
    assert disabled["reasoning"]["effort"] == "none"


def test_an_empty_effort_list_means_no_reasoning_at_all() -> None:
    body = body_for(ModelProfile(reasoning_efforts=(), sampling=True), "gpt-4.1", temperature=0.3)
    assert "reasoning" not in body
    assert body["include"] == []
    assert body["temperature"] == 0.3


def test_sampling_false_drops_temperature() -> None:
    assert "temperature" not in body_for(ModelProfile(sampling=False), "gpt-4.1", temperature=0.3)


def test_max_output_tokens_clamps_max_tokens() -> None:
    assert body_for(ModelProfile(max_output_tokens=32768), "gpt-4.1")["max_output_tokens"] == 32768
    assert body_for(ModelProfile(max_output_tokens=32768), "gpt-4.1", max_tokens=100)["max_output_tokens"] == 100
    assert body_for(None)["max_output_tokens"] == 64000  # no ceiling declared: passed through as today


def test_unlisted_models_and_unset_fields_keep_the_prefix_settings() -> None:
    unlisted = build_profile("gpt-4o", None, SETTINGS)
    assert (unlisted.reasoning, unlisted.sampling, unlisted.efforts) == (False, True, None)
    assert unlisted.context_window == SETTINGS.context_window
    partial = build_profile("gpt-5", ModelProfile(context_window=272000), SETTINGS)
    assert (partial.reasoning, partial.sampling, partial.efforts, partial.context_window) == (True, False, None, 272000)
    assert body_for(None)["reasoning"]["effort"] == SETTINGS.disabled_thinking_effort  # today's mapping


def test_efforts_are_ordered_whatever_order_the_file_lists_them() -> None:
    assert build_profile("m", ModelProfile(reasoning_efforts=("high", "none", "low")), SETTINGS).efforts == (
        "none",
        "low",
        "high",
    )
