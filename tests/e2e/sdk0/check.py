"""Run with the 0.x SDK first on PYTHONPATH: `check.py <gateway url> <api key>`; prints one JSON report.

It exercises what the 2.x test does (create, tool round trip, thinking round trip, count_tokens, models, an error)
and reports what it saw; the calling test asserts on it. Any unexpected exception propagates (non-zero exit).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import anthropic

TOOL: dict[str, Any] = {
    "name": "get_weather",
    "description": "Weather for a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def main(base_url: str, api_key: str) -> dict[str, Any]:
    client = anthropic.Anthropic(base_url=base_url, api_key=api_key, max_retries=0, _strict_response_validation=True)
    report: dict[str, Any] = {"version": anthropic.__version__}
    model = "claude-sonnet-5"
    hello = client.messages.create(model=model, max_tokens=64, messages=[{"role": "user", "content": "Hello"}])
    report["create"] = {
        "text": hello.content[0].text,
        "stop": hello.stop_reason,
        "model": hello.model,
        "input_tokens": hello.usage.input_tokens,
    }
    ask = [{"role": "user", "content": "Use get_weather for `Paris`"}]
    first = client.messages.create(
        model=model, max_tokens=256, tools=[TOOL], messages=ask, thinking={"type": "enabled", "budget_tokens": 2048}
    )
    tool_use = next(b for b in first.content if b.type == "tool_use")
    thinking = [b for b in first.content if b.type == "thinking"]
    follow = [
        *ask,
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "18C"}]},
    ]
    second = client.messages.create(
        model=model, max_tokens=256, tools=[TOOL], messages=follow, thinking={"type": "enabled", "budget_tokens": 2048}
    )
    report["tools"] = {
        "first_stop": first.stop_reason,
        "tool": tool_use.name,
        "input": tool_use.input,
        "thinking_blocks": len(thinking),
        "signature": thinking[0].signature if thinking else None,
        "second_stop": second.stop_reason,
        "second_text": second.content[-1].text,
    }
    count = client.messages.count_tokens(model=model, messages=ask, tools=[TOOL])
    report["count_tokens"] = count.input_tokens
    report["models"] = [m.id for m in client.models.list()]
    report["model_get"] = client.models.retrieve(report["models"][0]).id
    try:
        client.messages.create(model=model, max_tokens=64, messages=[])
    except anthropic.BadRequestError as exc:
        report["error"] = {
            "status": exc.status_code,
            "request_id": exc.request_id,
            "header": exc.response.headers.get("request-id"),
            "type": exc.body["error"]["type"],
        }  # type: ignore[index]
    return report


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
