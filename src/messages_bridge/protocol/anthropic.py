"""Wire shapes of the Anthropic Messages API (requests in, messages and events out).

Requests are decoded and validated in one pass by msgspec (fast, and its errors name the JSON path).
Every top-level request field is decided in protocol/request_fields.py (translated, no-op or refused) and declared
here; the ones the gateway has no use for are `Raw` (a slice of the body, never decoded). Inside blocks, fields the
gateway accepts but has no use for (`cache_control`, `citations`, `caller`) are simply not declared: msgspec skips
unknown fields without building objects for them.
Tool schemas and tool inputs stay `msgspec.Raw`: the gateway forwards them verbatim, so decoding
64 KB of JSON Schema into Python objects on every request would be pure waste.
Responses are TypedDicts: they are built once and encoded straight to JSON.
Request structs are `gc=False`: they are plain trees that can never form a reference cycle, and a decoded Claude
Code request is thousands of them — untracked, they cost the cyclic garbage collector nothing under concurrency.
"""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired, TypedDict

import msgspec
from msgspec import UNSET, Meta, Raw, Struct, UnsetType


class _Block(Struct, gc=False, tag_field="type", kw_only=True, omit_defaults=True):
    """Base of every request content block; the JSON `type` field is the tag."""


class TextBlock(_Block, tag="text"):
    text: str


class Base64Source(Struct, gc=False, tag_field="type", tag="base64", kw_only=True):
    media_type: str
    data: str


class UrlSource(Struct, gc=False, tag_field="type", tag="url", kw_only=True):
    url: str


class FileSource(Struct, gc=False, tag_field="type", tag="file", kw_only=True):
    file_id: str


class PlainTextSource(Struct, gc=False, tag_field="type", tag="text", kw_only=True):
    data: str
    media_type: str = "text/plain"


class ContentSource(Struct, gc=False, tag_field="type", tag="content", kw_only=True):
    content: str | list[TextBlock | ImageBlock]


class ImageBlock(_Block, tag="image"):
    source: Base64Source | UrlSource | FileSource


class DocumentBlock(_Block, tag="document"):
    source: Base64Source | UrlSource | FileSource | PlainTextSource | ContentSource
    title: str | None = None
    context: str | None = None


class SearchResultBlock(_Block, tag="search_result"):
    content: list[TextBlock]
    source: str
    title: str


class ToolReferenceBlock(_Block, tag="tool_reference"):
    tool_name: str


ToolResultContent = TextBlock | ImageBlock | DocumentBlock | SearchResultBlock | ToolReferenceBlock


class ToolUseBlock(_Block, tag="tool_use"):
    id: str
    name: str
    input: Raw


class ToolResultBlock(_Block, tag="tool_result"):
    tool_use_id: str
    content: str | list[ToolResultContent] | None = None
    is_error: bool | None = None


class ThinkingBlock(_Block, tag="thinking"):
    thinking: str
    signature: str


class RedactedThinkingBlock(_Block, tag="redacted_thinking"):
    data: str


class ServerToolUseBlock(_Block, tag="server_tool_use"):
    id: str
    name: str
    input: Raw


class WebSearchToolResultBlock(_Block, tag="web_search_tool_result"):
    tool_use_id: str
    content: Raw


ContentBlock = (
    TextBlock
    | ImageBlock
    | DocumentBlock
    | SearchResultBlock
    | ToolReferenceBlock
    | ToolUseBlock
    | ToolResultBlock
    | ThinkingBlock
    | RedactedThinkingBlock
    | ServerToolUseBlock
    | WebSearchToolResultBlock
)


class InputMessage(Struct, gc=False, kw_only=True):
    role: Literal["user", "assistant", "system"]
    content: str | list[ContentBlock]


class Tool(Struct, gc=False, kw_only=True, omit_defaults=True):
    """A custom tool, or an Anthropic-defined tool when `type` is a versioned name."""

    name: Annotated[str, Meta(min_length=1, max_length=128)]
    type: str | None = None
    description: str | None = None
    input_schema: Raw | UnsetType = UNSET
    strict: bool | None = None
    defer_loading: bool | None = None
    allowed_domains: list[str] | None = None
    blocked_domains: list[str] | None = None
    user_location: Raw | UnsetType = UNSET
    max_uses: int | None = None


class ToolChoiceAuto(Struct, gc=False, tag_field="type", tag="auto", kw_only=True):
    disable_parallel_tool_use: bool | None = None


class ToolChoiceAny(Struct, gc=False, tag_field="type", tag="any", kw_only=True):
    disable_parallel_tool_use: bool | None = None


class ToolChoiceTool(Struct, gc=False, tag_field="type", tag="tool", kw_only=True):
    name: str
    disable_parallel_tool_use: bool | None = None


class ToolChoiceNone(Struct, gc=False, tag_field="type", tag="none", kw_only=True):
    pass


ToolChoice = ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone


class ThinkingEnabled(Struct, gc=False, tag_field="type", tag="enabled", kw_only=True):
    budget_tokens: Annotated[int, Meta(ge=0)]
    display: Literal["summarized", "omitted"] | None = None


class ThinkingAdaptive(Struct, gc=False, tag_field="type", tag="adaptive", kw_only=True):
    display: Literal["summarized", "omitted"] | None = None


class ThinkingDisabled(Struct, gc=False, tag_field="type", tag="disabled", kw_only=True):
    pass


class ThinkingBetweenTools(Struct, gc=False, tag_field="type", tag="between_tools", kw_only=True):
    pass


ThinkingConfig = ThinkingEnabled | ThinkingAdaptive | ThinkingDisabled | ThinkingBetweenTools


class JsonSchemaFormat(Struct, gc=False, tag_field="type", tag="json_schema", kw_only=True):
    schema: Raw


class OutputConfig(Struct, gc=False, kw_only=True):
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None
    format: JsonSchemaFormat | None = None


class Metadata(Struct, gc=False, kw_only=True):
    user_id: str | None = None


class _ConversationRequest(Struct, gc=False, kw_only=True):
    """Fields shared by /v1/messages and /v1/messages/count_tokens."""

    model: Annotated[str, Meta(min_length=1)]
    messages: list[InputMessage]
    system: str | list[TextBlock] | None = None
    # Raw: Claude Code resends the same ~64 KB tool array on every turn, so it is decoded and translated once per
    # distinct array (translate/tools.tool_set), not on every request.
    tools: Raw | UnsetType = UNSET
    tool_choice: ToolChoice | None = None
    thinking: ThinkingConfig | None = None
    output_config: OutputConfig | None = None
    speed: Literal["standard", "fast"] | None = None
    # Decided in protocol/request_fields.py: no-ops, and refused fields checked there.
    cache_control: Raw | UnsetType = UNSET
    context_management: Raw | UnsetType = UNSET
    betas: Raw | UnsetType = UNSET
    user_profile_id: Raw | UnsetType = UNSET
    workspace_id: Raw | UnsetType = UNSET
    billing_policy: Raw | UnsetType = UNSET
    compaction: Raw | UnsetType = UNSET
    mcp_servers: Raw | UnsetType = UNSET


class MessagesRequest(_ConversationRequest, kw_only=True):
    """`POST /v1/messages` body (undecided top-level fields are ignored, and reported: see request_fields.py)."""

    max_tokens: Annotated[int, Meta(ge=0)]
    stop_sequences: list[str] | None = None
    stream: bool | None = None
    metadata: Metadata | None = None
    temperature: Annotated[float, Meta(ge=0, le=1)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    top_k: Annotated[int, Meta(ge=0)] | None = None
    service_tier: Literal["auto", "standard_only"] | None = None
    thread: Raw | UnsetType = UNSET
    diagnostics: Raw | UnsetType = UNSET
    inference_geo: Raw | UnsetType = UNSET
    fallback_credit_token: Raw | UnsetType = UNSET
    container: Raw | UnsetType = UNSET
    fallbacks: Raw | UnsetType = UNSET

    @property
    def threaded(self) -> bool:
        """Whether the request names a message thread (absent or `null`: no); `threads/` reads the field itself."""
        return not isinstance(self.thread, UnsetType) and bytes(self.thread) != b"null"


class CountTokensRequest(_ConversationRequest, kw_only=True):
    """`POST /v1/messages/count_tokens` body."""


TOOLS_DECODER = msgspec.json.Decoder(list[Tool] | None)


# ---- output shapes -------------------------------------------------------------------------------


class ServerToolUsage(TypedDict):
    web_search_requests: int


class Usage(TypedDict):
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    service_tier: NotRequired[str]
    output_tokens_details: NotRequired[dict[str, int]]
    server_tool_use: NotRequired[ServerToolUsage]


class WebSearchCitation(TypedDict):
    type: Literal["web_search_result_location"]
    url: str
    title: str
    cited_text: str
    encrypted_index: str


class TextOut(TypedDict):
    type: Literal["text"]
    text: str
    citations: NotRequired[list[WebSearchCitation]]


class ThinkingOut(TypedDict):
    type: Literal["thinking"]
    thinking: str
    signature: str


class ToolUseOut(TypedDict):
    type: Literal["tool_use"]
    id: str
    name: str
    input: object


class ServerToolUseOut(TypedDict):
    type: Literal["server_tool_use"]
    id: str
    name: Literal["web_search"]
    input: dict[str, object]


class WebSearchResult(TypedDict):
    type: Literal["web_search_result"]
    url: str
    title: str
    encrypted_content: str
    page_age: str | None


class WebSearchError(TypedDict):
    type: Literal["web_search_tool_result_error"]
    error_code: str


class WebSearchToolResultOut(TypedDict):
    type: Literal["web_search_tool_result"]
    tool_use_id: str
    content: list[WebSearchResult] | WebSearchError


ContentOut = TextOut | ThinkingOut | ToolUseOut | ServerToolUseOut | WebSearchToolResultOut

StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal", "pause_turn"]


class StopDetails(TypedDict):
    type: Literal["refusal"]
    category: str | None
    explanation: str | None


class Message(TypedDict):
    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[ContentOut]
    stop_reason: StopReason | None
    stop_sequence: str | None
    usage: Usage
    stop_details: NotRequired[StopDetails | None]
