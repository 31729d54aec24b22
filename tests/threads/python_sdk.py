"""The official Python SDK for the thread tests: the `step` tool and its tool runner, run to the end."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
from anthropic import beta_tool
from anthropic.lib.streaming import BetaMessageStream

from tests.threads.helpers import MODEL
from tests.threads.sdk_gateway import TURNS

PROMPT = f"Please call `step` {TURNS} times"


@beta_tool
def step(n: int) -> str:
    """Take step number n.

    Args:
        n: the step number.
    """
    return f"r{n}"


def run(
    client: anthropic.Anthropic,
    *,
    stream: bool,
    system: str = "Be terse.",
    prompt: str = PROMPT,
    each: Callable[[Any], None] | None = None,
) -> str:
    """The tool runner with default settings to the end; `each(message)` runs after every assistant message."""
    runner = client.beta.messages.tool_runner(
        model=MODEL,
        max_tokens=256,
        system=system,
        tools=[step],
        stream=stream,
        messages=[{"role": "user", "content": prompt}],
    )
    for item in runner:
        message = item.get_final_message() if isinstance(item, BetaMessageStream) else item
        if each is not None:
            each(message)
    final = runner.until_done().content[0]
    assert final.type == "text"
    return final.text
