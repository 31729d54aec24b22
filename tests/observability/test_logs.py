"""The formatter's rules: allowlisted fields only, exception types not messages, masked keys and settings."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from messages_bridge.config import Settings
from messages_bridge.observability.logs import Formatter, Masker, log_startup, masked_settings
from tests.conftest import GATEWAY
from tests.observability.helpers import CLIENT_KEY, UPSTREAM_KEY, LogCapture, leaks

# What must never be printed raw: C0/C1 controls, DEL, Unicode line separators, bidirectional overrides.
UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
CONSOLE_FIELD = re.compile(r' (\w+)=("(?:[^"\\]|\\.)*"|[^\s"]+)')
CONSOLE_LINE = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) +[\w.]+: ")


def console_fields(line: str) -> dict[str, object]:
    """The `key=value` fields of a console line (bare tokens or JSON strings), which must tile its tail exactly."""
    tail = line.split(": ", 1)[1].removeprefix("request")
    found = list(CONSOLE_FIELD.finditer(tail))
    assert "".join(m.group() for m in found) == tail, line  # nothing between or around the fields
    return {m[1]: json.loads(m[2]) if m[2][0] in '"0123456789' else m[2] for m in found}


def _record(msg: str, *, exc: BaseException | None = None, **extra: object) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    record = logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, msg, (), exc_info)
    record.__dict__.update(extra)
    return record


def test_exception_logs_print_type_and_frames_never_the_message() -> None:
    try:
        raise ValueError("CANARY-user-text-91b2 in an exception message")
    except ValueError as caught:
        exc = caught
    line = Formatter(style="json", masker=Masker()).format(_record("Exception in ASGI application", exc=exc))
    fields = json.loads(line)
    assert fields["exc_type"] == "ValueError" and "test_logs.py" in fields["stack"]
    assert "CANARY" not in line


def test_only_allowlisted_extra_fields_are_printed() -> None:
    access = {"status": 200, "prompt": "CANARY-user-text-91b2"}
    record = _record("request", access=access, body="CANARY-user-text-91b2", headers={"x-api-key": CLIENT_KEY})
    for style in ("json", "console"):
        line = Formatter(style=style, masker=Masker()).format(record)
        assert "200" in line and "CANARY" not in line and CLIENT_KEY not in line


def test_content_fields_need_the_opt_in() -> None:
    record = _record("content", request_body="CANARY-user-text-91b2")
    assert "CANARY" not in Formatter(style="json", masker=Masker()).format(record)
    assert "CANARY" in Formatter(style="json", masker=Masker(), content=True).format(record)


def test_messages_are_masked() -> None:
    masker = Masker([UPSTREAM_KEY])
    text = f"auth Bearer abc.def-123 key {UPSTREAM_KEY} other sk-proj-ABCDEF123456"
    assert masker(text) == "auth Bearer *** key *** other ***"


def test_startup_logs_effective_settings_with_secrets_masked(
    make_settings: Callable[..., Settings], capture_logs: Callable[[Settings], LogCapture]
) -> None:
    settings = make_settings(api_keys=CLIENT_KEY, openai_base_url="https://user:pw-secret@proxy.example/v1")
    logs = capture_logs(settings)
    log_startup(settings)
    (startup,) = [r for r in logs.records() if r["event"] == "settings"]
    assert startup["settings"]["openai_api_key"] == "***" and startup["settings"]["port"] == 8080
    assert startup["settings"]["openai_base_url"] == "https://***@proxy.example/v1"
    assert leaks(logs.text) == [] and "pw-secret" not in logs.text
    assert masked_settings(settings)["api_keys"] == "1 key(s) ***"


def test_content_opt_in_warns_at_startup_and_debug_alone_does_not_enable_it(
    make_settings: Callable[..., Settings], capture_logs: Callable[[Settings], LogCapture]
) -> None:
    debug = make_settings(log_level="debug")
    assert debug.log_content is False
    logs = capture_logs(debug)
    log_startup(debug)
    assert not [r for r in logs.records() if r["level"] == "warning"]
    opted = make_settings(log_content=True)
    logs = capture_logs(opted)
    log_startup(opted)
    assert [r for r in logs.records() if r["level"] == "warning" and "BRIDGE_LOG_CONTENT" in r["event"]]


FORGERIES = [
    "gpt-5\n12:00:00 ERROR   messages_bridge.access: request status=200",
    "gpt-5\r\x1b[2K12:00:00 INFO forged",
    "\x1b[31mred\x1b[0m",
    "\x9b31mred",  # the 8-bit CSI
    "gpt-5 status=200 error_type=None",
    'gpt-5" status=200',
    "gpt\u2028line two",
    "\u202eevil-5tpg",
    "back\\slash\x7f",
    "",
]


@pytest.mark.parametrize("model", FORGERIES)
def test_no_field_can_forge_a_line_or_reach_the_terminal(model: str) -> None:
    record = _record("request", access={"status": 400, "model": model, "upstream_model": model})
    console = Formatter(style="console", masker=Masker()).format(record)
    assert "\n" not in console and not UNSAFE.search(console), console
    assert console_fields(console) == {"status": 400, "model": model, "upstream_model": model}, console
    line = Formatter(style="json", masker=Masker()).format(record)
    assert not UNSAFE.search(line) and json.loads(line)["model"] == model


async def test_forged_model_names_reach_the_console_log_escaped(
    app_factory: Callable[[Settings], Any],
    make_settings: Callable[..., Settings],
    capture_logs: Callable[[Settings], LogCapture],
) -> None:
    settings = make_settings(log_format="console", log_level="debug")
    logs = capture_logs(settings)
    app = await app_factory(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY) as http:
        for model in FORGERIES:
            body = {"model": model, "max_tokens": 0, "messages": [{"role": "user", "content": "hi"}]}
            await http.post("/v1/messages", json=body)
    lines = logs.text.splitlines()
    assert len([line for line in lines if "messages_bridge.access: request" in line]) == len(FORGERIES)
    assert all(CONSOLE_LINE.match(line) for line in lines), lines
    assert not UNSAFE.search(logs.text.replace("\n", ""))


def test_raw_json_is_masked_in_every_json_spelling() -> None:
    masker = Masker([UPSTREAM_KEY, CLIENT_KEY])
    escaped = "".join(f"\\u{ord(c):04X}" for c in CLIENT_KEY)
    raw = json.dumps({"a": f"x{UPSTREAM_KEY}y", "b": "sk\\u002dupstream-secret"}).replace("\\\\", "\\") + escaped
    masked = masker.json_text(raw)
    assert masked.count("***") == 3, masked
    assert masker.json_text("nothing here") == "nothing here" and Masker().json_text("sk\\u002dx") == "sk\\u002dx"


async def test_captured_content_is_masked_after_any_json_escaping(
    app_factory: Callable[[Settings], Any],
    make_settings: Callable[..., Settings],
    capture_logs: Callable[[Settings], LogCapture],
) -> None:
    settings = make_settings(log_content=True, api_keys=CLIENT_KEY)
    logs = capture_logs(settings)
    app = await app_factory(settings)
    text = "quote: sk\\u002dupstream\\u002dsecret and " + "".join(f"\\u{ord(c):04x}" for c in CLIENT_KEY)
    request = {"model": "claude-sonnet-4-5", "max_tokens": 0, "messages": [{"role": "user", "content": "@"}]}
    body = json.dumps(request).replace('"@"', f'"{text}"')
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY) as http:
        reply = await http.post("/v1/messages", content=body, headers={"x-api-key": CLIENT_KEY})
    assert reply.status_code == 200
    (content,) = [r for r in logs.records() if r["logger"] == "messages_bridge.content"]
    decoded = json.loads(content["request_body"])["messages"][0]["content"]
    assert UPSTREAM_KEY not in decoded and CLIENT_KEY not in decoded and decoded.count("***") == 2, decoded
