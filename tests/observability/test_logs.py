"""The formatter's rules: allowlisted fields only, exception types not messages, masked keys and settings."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from messages_bridge.config import Settings
from messages_bridge.observability.logs import Formatter, Masker, log_startup, masked_settings
from tests.observability.helpers import CLIENT_KEY, UPSTREAM_KEY, LogCapture, leaks


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
