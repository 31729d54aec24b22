"""One of each thing: a second copy of these definitions would drift from the first (it did, for retry-after)."""

from __future__ import annotations

from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "messages_bridge"


def _files_with(needle: str) -> list[str]:
    return sorted(str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if needle in p.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("needle", "home"),
    [
        ("CHARS_PER_TOKEN = ", "translate/tokens.py"),  # the token estimate's one ratio
        ('"cache_read_input_tokens": 0', "translate/usage.py"),  # `empty_usage()`
        ('.get("retry-after', "protocol/headers.py"),  # the one retry-after parser
        ("class Masker", "observability/logs.py"),  # the one secret-masking routine
        ("cache_creation: int = 0", "translate/usage.py"),  # `TokenUsage`, the token counts summed and settled
        ("GatewayState(", "app/factory.py"),  # the routes' shared state, built by both lifespans' one factory
    ],
)
def test_defined_once(needle: str, home: str) -> None:
    assert _files_with(needle) == [home]


def test_the_shared_state_is_built_in_one_place() -> None:
    assert (SRC / "app" / "factory.py").read_text(encoding="utf-8").count("GatewayState(") == 1


def test_no_per_request_state_is_ambient() -> None:
    """The access record travels in the ASGI scope and as arguments; the upstream call's facts as a value."""
    assert _files_with("ContextVar") == []
