"""Logging: stdlib `logging` with one formatter (JSON lines or console) that prints an allowlist of fields.

Why stdlib and not structlog: every library in the process (uvicorn, asgi-correlation-id, httpx, starlette) logs
through stdlib `logging`, so one handler with one formatter covers all output, and the privacy rules below apply to
third-party records too (uvicorn's exception logs are where peers leak). The access record is built once per request
from a fixed set of fields, so a processor chain would add per-call cost and nothing else.

Privacy rules enforced here, whatever a caller passes:
- only `extra` keys in `ALLOWED_FIELDS` are printed (an allowlist, not a denylist); content fields
  (`request_body`, `response_body`) are printed only when `BRIDGE_LOG_CONTENT=true` configured the formatter;
- an exception prints its type and the stack (code locations), never its message, which may quote request data;
- messages and printed values pass through `Masker`, which blanks the configured keys and key-like tokens;
- control characters are escaped in both styles, and console values that could pose as more fields are quoted.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import traceback
from collections.abc import Iterable
from typing import IO, Literal
from urllib.parse import urlsplit

import msgspec
from asgi_correlation_id import correlation_id
from pydantic import SecretStr

from messages_bridge.config import Settings
from messages_bridge.observability.record import ACCESS_FIELDS

MASK = "***"
ACCESS_LOGGER = "messages_bridge.access"
CONTENT_LOGGER = "messages_bridge.content"

# The access record travels as one `access` dict whose keys must be in ACCESS_FIELDS (observability/record.py).
_ACCESS_ALLOWED = frozenset(ACCESS_FIELDS)
# Top-level `extra` keys.
ALLOWED_FIELDS = (
    "exception_type",
    "settings",
    "upstream",
    "key_index",
    "reason",
    "bench_seconds",
    "breaker",
    "key",
    "outcome",
    "spent_usd",
    "budget_usd",
    "rows",
    "backlog",
)
CONTENT_FIELDS = ("request_body", "response_body")
# Loggers that would print URLs or connection chatter at INFO/DEBUG; their warnings still get through.
_QUIET_LOGGERS = ("httpx", "httpcore", "hpack", "aiohttp", "uvicorn.access")
_KEY_LIKE = re.compile(r"(?i)\b(bearer\s+)[^\s\"',]+|\b(?:sk|mbk)[-_][A-Za-z0-9_\-]{6,}")
_SECRET_NAME = re.compile(r"(?i)key|secret|token|password|authorization|cookie")
_URL_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
_MAX_MESSAGE = 2048
# What could end a line, move the cursor or recolour a terminal (C0 and C1 controls, DEL, Unicode line separators,
# bidirectional overrides): printed as `\uXXXX`, so no value (a model name, a path) can forge or hide a log line.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# A console value with these is printed as a JSON string, so it cannot pose as more `key=value` pairs.
_NEEDS_QUOTES = re.compile(r'[\s"=\\]')
_NUMBERS = frozenset({int, float, bool})  # printed as they are (most access fields): nothing to escape

_ENCODER = msgspec.json.Encoder()


class Masker:
    """Blanks the configured secret values and anything shaped like a bearer token or an `sk-` key.

    The one masking routine: log lines, captured content and every text bound for a client pass through it.
    Call it on decoded text (a JSON-escaped secret is plain again there); `json_text` is for raw JSON that cannot
    be decoded first (captured bodies, cut at a size cap).
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: tuple[str, ...] = ()
        self._escaped: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """More values to blank (the keys of a routing file, known once it is loaded)."""
        self._secrets = tuple(sorted({*self._secrets, *(s for s in secrets if len(s) >= 4)}, key=len, reverse=True))
        spellings = "|".join("".join(_json_spellings(c) for c in secret) for secret in self._secrets)
        self._escaped = re.compile(spellings) if spellings else None

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return _KEY_LIKE.sub(lambda m: (m.group(1) or "") + MASK, text)

    def json_text(self, text: str) -> str:
        """Raw JSON text: the secrets in any JSON spelling (`sk\\u002d…`, any characters escaped) blanked too."""
        if self._escaped is not None:
            text = self._escaped.sub(MASK, text)
        return self(text)


def _json_spellings(char: str) -> str:
    """A pattern for `char` as JSON may write it inside a string: itself or `\\uXXXX` (hex in either case)."""
    hex_digits = "".join(f"[{d.lower()}{d.upper()}]" if d.isalpha() else d for d in f"{ord(char):04x}")
    return f"(?:{re.escape(char)}|\\\\u{hex_digits})"


def settings_secrets(settings: Settings) -> list[str]:
    """Every secret value a setting holds (the upstream key, the client keys, a password in the upstream URL, the
    thread keys)."""
    values = [k.get_secret_value() for k in settings.api_keys]
    if settings.openai_api_key is not None:
        values.append(settings.openai_api_key.get_secret_value())
    if password := urlsplit(settings.upstream_base_url).password:
        values.append(password)
    if settings.threads_key is not None:
        values += [k.strip() for k in settings.threads_key.get_secret_value().split(",")]
    return values


def masked_settings(settings: Settings) -> dict[str, object]:
    """The effective settings, printable: secrets become `***`, credentials in URLs are dropped."""
    out: dict[str, object] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            out[name] = MASK
        elif isinstance(value, tuple) and value and isinstance(value[0], SecretStr):
            out[name] = f"{len(value)} key(s) {MASK}"
        elif _SECRET_NAME.search(name) and value not in (None, (), ""):
            out[name] = MASK
        elif isinstance(value, str):
            out[name] = _URL_USERINFO.sub(MASK + "@", value)
        else:
            out[name] = value if isinstance(value, int | float | bool | type(None)) else _printable(value)
    out["demo"] = settings.demo
    return out


def _printable(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [str(v) for v in value]
    return str(value)


class Formatter(logging.Formatter):
    """Renders a record as one JSON line or one console line, printing only allowlisted fields."""

    def __init__(self, *, style: Literal["json", "console"], masker: Masker, content: bool = False) -> None:
        super().__init__()
        self._render = style
        self._mask = self.masker = masker
        self._allowed = ALLOWED_FIELDS + CONTENT_FIELDS if content else ALLOWED_FIELDS

    def fields(self, record: logging.LogRecord) -> dict[str, object]:
        out: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": self._mask(_message(record)),
        }
        if (request_id := correlation_id.get() or _library_id(record)) is not None:
            out["request_id"] = request_id
        attrs = record.__dict__
        access = attrs.get("access")
        if isinstance(access, dict):
            for key, value in access.items():
                if key in _ACCESS_ALLOWED:
                    out[key] = self._mask(value) if isinstance(value, str) else value
        for key in self._allowed:
            if key in attrs:
                value = attrs[key]
                out[key] = self._mask(value) if isinstance(value, str) else value
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__name__
            # Frame locations only (file, line, function): the exception's message may quote request data.
            frames = traceback.extract_tb(record.exc_info[2])
            out["stack"] = " < ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in reversed(frames))
        return out

    def format(self, record: logging.LogRecord) -> str:
        fields = self.fields(record)
        if self._render == "json":
            return _escape(_ENCODER.encode(fields).decode())
        return _console(fields)


def _library_id(record: logging.LogRecord) -> str | None:
    """asgi-correlation-id logs "generated a new id" before it sets the contextvar; the new id is its argument."""
    if record.name == "asgi_correlation_id" and isinstance(record.args, tuple) and record.args:
        return str(record.args[0])
    return None


def _message(record: logging.LogRecord) -> str:
    try:
        message = record.getMessage()
    except (TypeError, ValueError):
        message = str(record.msg)
    return message if len(message) <= _MAX_MESSAGE else message[:_MAX_MESSAGE] + "…"


def _escape(text: str) -> str:
    if text.isascii() and text.isprintable():  # the common case, checked in C: nothing to escape
        return text
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _console_value(value: object) -> str:
    """`value` for `key=value`: bare when plainly one token, else a JSON string (escapes kept ASCII)."""
    if isinstance(value, dict | list):
        return _escape(_ENCODER.encode(value).decode())
    text = str(value)
    if text and text.isascii() and text.isprintable() and not _NEEDS_QUOTES.search(text):
        return text
    return _escape(_ENCODER.encode(text).decode())


def _console(fields: dict[str, object]) -> str:
    ts = time.strftime("%H:%M:%S", time.localtime(float(str(fields.pop("ts")))))
    level, logger, event = str(fields.pop("level")).upper(), _escape(str(fields.pop("logger"))), fields.pop("event")
    head = f"{ts} {level:<7} {logger}: {_escape(str(event))}"
    stack = fields.pop("stack", None)
    rest = " ".join(
        f"{k}={v if type(v) in _NUMBERS else _console_value(v)}" for k, v in fields.items() if v is not None
    )
    line = f"{head} {rest}" if rest else head
    return f"{line}\n{_escape(str(stack))}" if stack else line


class _Installed(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler this module installed, so configuring twice replaces it instead of doubling output."""


def configure_logging(settings: Settings, *, stream: IO[str] | None = None) -> logging.Handler:
    """Route every logger through one handler and the allowlist formatter; returns the handler."""
    handler = _Installed(stream if stream is not None else sys.stderr)
    handler.setFormatter(
        Formatter(style=settings.log_format, masker=Masker(settings_secrets(settings)), content=settings.log_content)
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Installed)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    # The formatter prints none of these, so skip collecting them per record (the logging HOWTO's "Optimization").
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()  # uvicorn's own formatters print exception messages: send its records to ours
        logger.propagate = True
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler


def mask_secrets(values: Iterable[str]) -> None:
    """Blank these values too in every installed handler's output (keys loaded after logging was set up)."""
    for handler in logging.getLogger().handlers:
        formatter = handler.formatter
        if isinstance(handler, _Installed) and isinstance(formatter, Formatter):
            formatter.masker.add(values)


def log_startup(settings: Settings) -> None:
    """The effective settings (secrets masked), and a loud warning when content logging is on."""
    logger = logging.getLogger("messages_bridge")
    logger.info("settings", extra={"settings": masked_settings(settings)})
    if settings.log_content:
        logger.warning(
            "BRIDGE_LOG_CONTENT=true: request and response bodies will be written to the logs "
            "(secrets masked). Use for debugging only; never in production."
        )
