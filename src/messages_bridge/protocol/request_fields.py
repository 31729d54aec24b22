"""What the gateway does with every top-level request field: the one table of decisions, and the decoder that uses it.

Each field of `POST /v1/messages` and `POST /v1/messages/count_tokens` that the `anthropic` SDK can send (its
stable and beta `MessageCreateParams` / `MessageCountTokensParams`, plus the sampling fields older clients still
send) is decided once here:

- `translated`: mapped to the Responses request (or emulated by the gateway), see docs/mapping.md;
- `no-op`: accepted and ignored, because ignoring it does not change the answer the client gets;
- `refused`: a 400 naming the field whenever it asks for something (`null`, `[]` and `{}` are always accepted),
  because ignoring it would change what the client gets.

Every decided field is declared on the request structs (no-ops as `msgspec.Raw`, which costs a slice, not a
decode), so a field that is *not* declared is one nobody decided on. Such fields are still accepted — new Claude
Code releases add fields often, and refusing them would break every new release — but the decoder reports their
names, and the app counts and logs them (observability/request_fields.py). tests/protocol/test_request_fields.py
fails when the installed SDK grows a field that is not in this table.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, Literal, TypeVar, get_args

import msgspec
from msgspec import UNSET, Raw

from messages_bridge.protocol import anthropic as a

T = TypeVar("T", a.MessagesRequest, a.CountTokensRequest)
Endpoint = Literal["messages", "count_tokens"]


class Decision(StrEnum):
    TRANSLATED = "translated"
    NOOP = "no-op"
    REFUSED = "refused"


def _absent(value: object) -> bool:
    return value is None or value == [] or value == {}


def _default_fallbacks(value: object) -> bool:
    # "default" asks for the model's own fallback configuration; a model without fallbacks then runs alone.
    return _absent(value) or value == "default"


def _no_skills(value: object) -> bool:
    # A container id alone matters only to code-execution tools, which are refused on their own (tools).
    return _absent(value) or isinstance(value, str) or (isinstance(value, dict) and not value.get("skills"))


def _billed_to_self(value: object) -> bool:
    return _absent(value) or (isinstance(value, dict) and value.get("bill_to", "self") in ("self", None))


@dataclass(frozen=True, slots=True)
class FieldRule:
    """The decision for one field on each endpoint (`None`: not a field of that endpoint) and why."""

    messages: Decision | None
    count_tokens: Decision | None
    why: str
    inert: Callable[[object], bool] = _absent  # for `refused`: values that ask for nothing, accepted
    legacy: bool = False  # not in the current SDK's types, but older clients send it

    def on(self, endpoint: Endpoint) -> Decision | None:
        return self.messages if endpoint == "messages" else self.count_tokens


_T, _N, _R = Decision.TRANSLATED, Decision.NOOP, Decision.REFUSED
_HEADER = "the SDKs send it as a request header, never in the body; in a body it is ignored"

REQUEST_FIELDS: Mapping[str, FieldRule] = {
    # the conversation
    "model": FieldRule(_T, _T, "mapped to an upstream model by BRIDGE_MODEL_MAP"),
    "messages": FieldRule(_T, _T, "input items (see docs/mapping.md for every block type)"),
    "system": FieldRule(_T, _T, "`instructions`; Claude Code's billing-tag block is left out"),
    "tools": FieldRule(_T, _T, "function tools (names shortened when OpenAI would reject them)"),
    "tool_choice": FieldRule(_T, _T, "`tool_choice` and `parallel_tool_calls`"),
    "thinking": FieldRule(_T, _T, "`reasoning.effort` and `reasoning.summary`"),
    "output_config": FieldRule(_T, _T, "`effort` → `reasoning.effort`; `format` → `text.format` (JSON schema)"),
    "thread": FieldRule(
        _T, None, "held by the gateway (README, Message threads); on count_tokens, 400 thread_unsupported_request"
    ),
    # generation
    "max_tokens": FieldRule(_T, None, "`max_output_tokens` (at least 16); 0 answers an empty message locally"),
    "stop_sequences": FieldRule(_T, None, "emulated: the text is cut at the first match"),
    "stream": FieldRule(_T, None, "`stream`; events are translated one by one"),
    "metadata": FieldRule(_T, None, "`user_id` is hashed into `safety_identifier` and `prompt_cache_key`"),
    "service_tier": FieldRule(_T, None, "`service_tier` (`auto` → auto, `standard_only` → default)"),
    "speed": FieldRule(_T, _N, "`fast` → `service_tier: priority`; a count does not depend on it"),
    "temperature": FieldRule(_T, None, "sent to BRIDGE_SAMPLING_MODELS only (reasoning models reject it)", legacy=True),
    "top_p": FieldRule(_T, None, "sent to BRIDGE_SAMPLING_MODELS only (reasoning models reject it)", legacy=True),
    "top_k": FieldRule(_N, None, "no Responses equivalent; a sampling hint, logged at debug", legacy=True),
    # caching, context and accounting
    "cache_control": FieldRule(_N, _N, "the upstream caches prefixes implicitly; cache reads are still reported"),
    "context_management": FieldRule(_N, _N, "the gateway never edits context: the full conversation goes upstream"),
    "diagnostics": FieldRule(_N, None, "asks for an optional `diagnostics` answer field, which is left out"),
    "inference_geo": FieldRule(_N, None, "the region is the operator's choice of upstream (OPENAI_BASE_URL)"),
    "fallback_credit_token": FieldRule(_N, None, "a billing discount between Anthropic models; nothing to redeem"),
    "betas": FieldRule(_N, _N, _HEADER),
    "user_profile_id": FieldRule(_N, _N, _HEADER),
    "workspace_id": FieldRule(_N, _N, _HEADER),
    "billing_policy": FieldRule(
        _R, _N, "billing another organization's user profile is not possible through this gateway", _billed_to_self
    ),
    # features with no upstream counterpart: ignoring them would change the answer
    "compaction": FieldRule(_R, _N, "compaction requests (a summary block in place of an answer) are not supported"),
    "container": FieldRule(_R, None, "skills (loaded into a code-execution container) are not supported", _no_skills),
    "mcp_servers": FieldRule(_R, _R, "the MCP connector is not supported: give the tools as `tools` instead"),
    "fallbacks": FieldRule(
        _R, None, 'fallback models are not supported (only `"default"`, which runs the model alone)', _default_fallbacks
    ),
}


_REFUSED: dict[Endpoint, tuple[tuple[str, FieldRule], ...]] = {
    endpoint: tuple((name, rule) for name, rule in REQUEST_FIELDS.items() if rule.on(endpoint) is Decision.REFUSED)
    for endpoint in get_args(Endpoint)
}  # per endpoint, once: every request checks them


def refusal(req: a.MessagesRequest | a.CountTokensRequest, endpoint: Endpoint) -> str | None:
    """The error message for the first refused field that asks for something, or None."""
    for name, rule in _REFUSED[endpoint]:
        raw = getattr(req, name, UNSET)
        if raw is not UNSET and not rule.inert(msgspec.json.decode(raw)):
            return f"{name}: {rule.why}"
    return None


_KEYS = msgspec.json.Decoder(dict[str, Raw])
# Listing every top-level key builds one object per key (about 10× the body in memory for a body of tiny keys), so it
# is done only for bodies up to this size; a larger body reports the first undecided name, which the strict decoder
# names anyway. At most MAX_UNKNOWN names are reported per request.
KEY_SCAN_BYTES = 1 << 20
MAX_UNKNOWN = 16
_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `(.*)`")


class StrictMessagesRequest(a.MessagesRequest, forbid_unknown_fields=True):
    """`MessagesRequest` that fails on an undeclared field: the fast path, for bodies with none."""


class StrictCountTokensRequest(a.CountTokensRequest, forbid_unknown_fields=True):
    """`CountTokensRequest` that fails on an undeclared field."""


@dataclass(frozen=True, slots=True)
class Decoded(Generic[T]):
    request: T
    unknown: tuple[str, ...] = ()  # top-level names nobody decided on (client-chosen: bound before use)


class RequestDecoder(Generic[T]):
    """Decodes a request body and names the top-level fields nobody decided on.

    A body with only decided fields is decoded once, strictly. Otherwise the strict decode fails and the body is
    decoded again leniently (which raises the real validation error, if there is one) and its keys listed.
    """

    def __init__(self, endpoint: Endpoint, strict: type[T], lenient: type[T]) -> None:
        self.endpoint: Endpoint = endpoint
        self._strict: msgspec.json.Decoder[T] = msgspec.json.Decoder(strict)
        self._lenient: msgspec.json.Decoder[T] = msgspec.json.Decoder(lenient)
        self._declared = frozenset(f.encode_name for f in msgspec.structs.fields(lenient))

    def decode(self, body: bytes) -> Decoded[T]:
        try:
            return Decoded(self._strict.decode(body))
        except msgspec.ValidationError as exc:
            first = _UNKNOWN_FIELD.fullmatch(str(exc))
            request = self._lenient.decode(body)
        if len(body) > KEY_SCAN_BYTES:
            return Decoded(request, (first.group(1),) if first else ())
        unknown = (k for k in _KEYS.decode(body) if k not in self._declared)
        return Decoded(request, tuple(itertools.islice(unknown, MAX_UNKNOWN)))


MESSAGES = RequestDecoder("messages", StrictMessagesRequest, a.MessagesRequest)
COUNT_TOKENS = RequestDecoder("count_tokens", StrictCountTokensRequest, a.CountTokensRequest)
