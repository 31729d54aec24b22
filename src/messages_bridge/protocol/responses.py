"""Wire shapes of the OpenAI Responses API (requests out, responses in).

Requests are TypedDicts (the openai SDK's `…Param` style): built by the pure translator, encoded once.
Responses are msgspec Structs decoded with validation; output items are dispatched on their `type`
so an item type this gateway does not know is reported by the translator instead of failing the decode.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

import msgspec
from msgspec import Raw, Struct

# ---- request shapes ------------------------------------------------------------------------------


class InputText(TypedDict):
    type: Literal["input_text"]
    text: str


class InputImage(TypedDict):
    type: Literal["input_image"]
    image_url: str
    detail: Literal["auto", "low", "high"]


class InputFile(TypedDict, total=False):
    type: Literal["input_file"]
    file_data: str
    file_url: str
    filename: str


InputPart = InputText | InputImage | InputFile


class InputMessageItem(TypedDict):
    type: Literal["message"]
    role: Literal["user", "developer", "system"]
    content: list[InputPart]


class AssistantMessageItem(TypedDict):
    type: Literal["message"]
    role: Literal["assistant"]
    content: str


class FunctionCallItem(TypedDict):
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str


class FunctionCallOutputItem(TypedDict):
    type: Literal["function_call_output"]
    call_id: str
    output: str | list[InputPart]


class SummaryTextPart(TypedDict):
    type: Literal["summary_text"]
    text: str


class ReasoningInputItem(TypedDict):
    type: Literal["reasoning"]
    id: NotRequired[str]  # absent when the upstream gave its reasoning item no id
    summary: list[SummaryTextPart]
    encrypted_content: str


class UrlSourceParam(TypedDict):
    type: Literal["url"]
    url: str


class WebSearchActionParam(TypedDict):
    type: Literal["search"]
    query: str
    sources: NotRequired[list[UrlSourceParam]]


class WebSearchCallItem(TypedDict):
    """A hosted search replayed as history (its `ws_` id comes back from the client's `server_tool_use` id)."""

    type: Literal["web_search_call"]
    id: str
    status: Literal["completed"]
    action: WebSearchActionParam


InputItem = (
    InputMessageItem
    | AssistantMessageItem
    | FunctionCallItem
    | FunctionCallOutputItem
    | ReasoningInputItem
    | WebSearchCallItem
)


class FunctionTool(TypedDict):
    type: Literal["function"]
    name: str
    description: NotRequired[str]
    parameters: Raw | dict[str, object]
    strict: bool


class WebSearchFilters(TypedDict):
    allowed_domains: list[str]


class WebSearchTool(TypedDict):
    """The hosted search tool (`web_search`); `blocked_domains` and a per-tool use limit have no counterpart."""

    type: Literal["web_search"]
    filters: NotRequired[WebSearchFilters]
    user_location: NotRequired[dict[str, object]]


class ToolChoiceFunction(TypedDict):
    type: Literal["function"]
    name: str


class ToolChoiceAllowed(TypedDict):
    type: Literal["allowed_tools"]
    mode: Literal["auto", "required"]
    tools: list[dict[str, str]]


ToolChoiceParam = Literal["auto", "required", "none"] | ToolChoiceFunction | ToolChoiceAllowed


class ReasoningParam(TypedDict, total=False):
    effort: str
    summary: Literal["auto", "concise", "detailed"]


class TextFormatJsonSchema(TypedDict):
    type: Literal["json_schema"]
    name: str
    schema: Raw
    strict: bool


class TextConfig(TypedDict):
    format: TextFormatJsonSchema


class ResponsesRequest(TypedDict):
    """The body this gateway sends to `POST {base}/responses` (a subset of `ResponseCreateParams`)."""

    model: str
    input: list[InputItem]
    store: bool
    include: list[str]
    instructions: NotRequired[str]
    max_output_tokens: NotRequired[int]
    tools: NotRequired[Raw]  # an encoded `list[FunctionTool]`, translated once per distinct tool array
    tool_choice: NotRequired[ToolChoiceParam]
    parallel_tool_calls: NotRequired[bool]
    max_tool_calls: NotRequired[int]
    reasoning: NotRequired[ReasoningParam]
    text: NotRequired[TextConfig]
    temperature: NotRequired[float]
    top_p: NotRequired[float]
    safety_identifier: NotRequired[str]
    prompt_cache_key: NotRequired[str]
    service_tier: NotRequired[str]
    stream: NotRequired[bool]
    stream_options: NotRequired[dict[str, bool]]


# ---- response shapes -----------------------------------------------------------------------------


class Annotation(Struct, kw_only=True):
    """An `output_text` annotation; only `url_citation` ones (web search) are translated."""

    type: str
    url: str = ""
    title: str = ""
    start_index: int = 0
    end_index: int = 0


class OutputText(Struct, tag_field="type", tag="output_text", kw_only=True):
    text: str
    annotations: list[Annotation] = msgspec.field(default_factory=list)


class Refusal(Struct, tag_field="type", tag="refusal", kw_only=True):
    refusal: str


class MessageOutput(Struct, tag_field="type", tag="message", kw_only=True):
    id: str = ""
    content: list[OutputText | Refusal] = msgspec.field(default_factory=list)


class FunctionCallOutput(Struct, tag_field="type", tag="function_call", kw_only=True):
    call_id: str
    name: str
    arguments: str = ""  # some servers omit it while the call is in progress
    id: str = ""


class SummaryText(Struct, kw_only=True):
    text: str


class ReasoningContent(Struct, kw_only=True):
    """A part of a reasoning item's `content`: `reasoning_text` (LM Studio, vLLM) carries the raw reasoning."""

    type: str
    text: str = ""


class ReasoningOutput(Struct, tag_field="type", tag="reasoning", kw_only=True):
    id: str = ""
    summary: list[SummaryText] = msgspec.field(default_factory=list)
    content: list[ReasoningContent] | None = None
    encrypted_content: str | None = None


class UrlSource(Struct, kw_only=True):
    type: str = "url"
    url: str = ""


class WebSearchAction(Struct, kw_only=True):
    """`search` (query, sources when included), `open_page` (url) or `find`."""

    type: str = "search"
    query: str | None = None
    queries: list[str] | None = None
    sources: list[UrlSource] | None = None
    url: str | None = None


class WebSearchCallOutput(Struct, tag_field="type", tag="web_search_call", kw_only=True):
    id: str
    status: str = "completed"
    action: WebSearchAction | None = None


OutputItem = MessageOutput | FunctionCallOutput | ReasoningOutput | WebSearchCallOutput


class InputTokensDetails(Struct, kw_only=True):
    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(Struct, kw_only=True):
    reasoning_tokens: int = 0


class ResponseUsage(Struct, kw_only=True):
    input_tokens: int = 0
    output_tokens: int = 0
    input_tokens_details: InputTokensDetails | None = None
    output_tokens_details: OutputTokensDetails | None = None


class ResponseError(Struct, kw_only=True):
    message: str = ""
    code: str | None = None


class IncompleteDetails(Struct, kw_only=True):
    reason: str | None = None


class Response(Struct, kw_only=True):
    """A Responses API `Response`; `output` stays raw until each item is dispatched on its type."""

    id: str = ""
    status: str | None = None
    output: list[Raw] = msgspec.field(default_factory=list)
    usage: ResponseUsage | None = None
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    service_tier: str | None = None


class _ItemType(Struct):
    type: str


class InputTokensCount(Struct, kw_only=True):
    input_tokens: int


RESPONSE_DECODER = msgspec.json.Decoder(Response)
INPUT_TOKENS_DECODER = msgspec.json.Decoder(InputTokensCount)
_ITEM_TYPE_DECODER = msgspec.json.Decoder(_ItemType)
_ITEM_DECODERS: dict[str, msgspec.json.Decoder[OutputItem]] = {
    "message": msgspec.json.Decoder(MessageOutput),
    "function_call": msgspec.json.Decoder(FunctionCallOutput),
    "reasoning": msgspec.json.Decoder(ReasoningOutput),
    "web_search_call": msgspec.json.Decoder(WebSearchCallOutput),
}


def decode_output_item(raw: Raw | bytes) -> OutputItem | str:
    """Decode one output item; an item type without a decoder comes back as its type name.

    Raises `msgspec.ValidationError` for an item that is not an object or lacks a required field.
    """
    item_type = _ITEM_TYPE_DECODER.decode(raw).type
    decoder = _ITEM_DECODERS.get(item_type)
    return decoder.decode(raw) if decoder is not None else item_type
