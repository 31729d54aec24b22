"""A deterministic Responses API simulator (pure): the demo upstream and the test suite's fake upstream.

It validates what the real API validates where the gateway could get it wrong (unknown parameters, function
calls without outputs, reasoning items whose encrypted content does not match their id, item ids with the
wrong prefix), answers in text, calls a tool when tools are offered and the prompt asks for one, and reasons
(with a summary and encrypted content) when the request asks for reasoning.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from messages_bridge.translate.tokens import CHARS_PER_TOKEN

JSON = dict[str, Any]

KNOWN_PARAMS = frozenset(
    {
        "model",
        "input",
        "instructions",
        "max_output_tokens",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "reasoning",
        "text",
        "temperature",
        "top_p",
        "store",
        "include",
        "stream",
        "stream_options",
        "safety_identifier",
        "prompt_cache_key",
        "service_tier",
        "truncation",
        "metadata",
        "user",
        "max_tool_calls",
    }
)
SOURCES_INCLUDE = "web_search_call.action.sources"
_SEARCH_QUERY = re.compile(r"web search for the query:\s*(.+)", re.IGNORECASE | re.DOTALL)
_SEARCH_WORDS = re.compile(r"\b(search|look up|latest|news)\b", re.IGNORECASE)
SEARCH_RESULTS = 3
_TOOL_WORDS = re.compile(r"\b(use|call|run|invoke|execute)\b", re.IGNORECASE)
_BACKTICKS = re.compile(r"`([^`]+)`")
_REPEAT = re.compile(r"\b(\d{1,3}) times\b", re.IGNORECASE)  # "call `step` 20 times": a multi-turn tool loop


class SimulatorError(Exception):
    """A 4xx the real API would return, with its OpenAI error body."""

    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body: JSON = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:24]


def encrypted_for(item_id: str) -> str:
    """The simulator's 'encrypted' reasoning: verifiable against the item id, like OpenAI's."""
    return base64.b64encode(f"sim:{item_id}".encode()).decode()


def _check_reasoning(item: JSON, index: int) -> None:
    item_id = str(item.get("id", ""))
    if not item_id.startswith("rs_"):
        raise SimulatorError(400, f"Invalid 'input[{index}].id': '{item_id}'. Expected an ID that begins with 'rs'.")
    if item.get("encrypted_content") != encrypted_for(item_id):
        raise SimulatorError(400, f"The encrypted content for item {item_id} could not be verified.")


def _search_tool(request: JSON) -> JSON | None:
    return next((t for t in request.get("tools") or [] if t.get("type") == "web_search"), None)


def _check_search(request: JSON) -> None:
    if _search_tool(request) is None:
        return
    if (request.get("reasoning") or {}).get("effort") == "minimal":
        raise SimulatorError(
            400, "The following tools cannot be used with reasoning.effort 'minimal': web_search.", param="tools"
        )


def _check_search_item(item: JSON, index: int) -> None:
    if not str(item.get("id", "")).startswith("ws_"):
        raise SimulatorError(400, f"Invalid 'input[{index}].id'. Expected an ID that begins with 'ws'.")
    action = item.get("action")
    if not isinstance(action, dict) or action.get("type") not in ("search", "open_page", "find"):
        raise SimulatorError(400, f"Missing required parameter: 'input[{index}].action'.")


def validate(request: JSON) -> None:
    """Reject what the real Responses API rejects (the subset a gateway could get wrong)."""
    unknown = sorted(set(request) - KNOWN_PARAMS)
    if unknown:
        raise SimulatorError(400, f"Unknown parameter: '{unknown[0]}'.", code="unknown_parameter", param=unknown[0])
    if not isinstance(request.get("model"), str):
        raise SimulatorError(400, "Missing required parameter: 'model'.", param="model")
    if (limit := request.get("max_output_tokens")) is not None and limit < 16:
        raise SimulatorError(400, "Invalid 'max_output_tokens': integer below minimum value 16.")
    _check_search(request)
    items = request.get("input") or []
    calls: dict[str, int] = {}
    outputs: set[str] = set()
    for index, item in enumerate(items):
        kind = item.get("type", "message")
        if kind == "function_call":
            calls[item["call_id"]] = index
            if "id" in item and not str(item["id"]).startswith("fc"):
                raise SimulatorError(400, f"Invalid 'input[{index}].id'. Expected an ID that begins with 'fc'.")
        elif kind == "function_call_output":
            outputs.add(item["call_id"])
        elif kind == "web_search_call":
            _check_search_item(item, index)
        elif kind == "reasoning":
            _check_reasoning(item, index)
            if index + 1 >= len(items) or items[index + 1].get("role") == "user":
                raise SimulatorError(
                    400, f"Item '{item['id']}' of type 'reasoning' was provided without its required following item."
                )
    for call_id in calls:
        if call_id not in outputs:
            raise SimulatorError(400, f"No tool output found for function call {call_id}.")


def _last_text(items: list[JSON]) -> str:
    for item in reversed(items):
        if item.get("type", "message") == "message" and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                return content
            return " ".join(p.get("text", "") for p in content or [] if p.get("type") == "input_text")
    return ""


def _dummy(schema: JSON, hint: str, number: int) -> Any:
    kind = schema.get("type")
    if "enum" in schema:
        return schema["enum"][0]
    if kind in ("integer", "number"):
        return number
    if kind == "boolean":
        return False
    if kind == "array":
        return []
    if kind == "object":
        return {}
    return hint


def _arguments(tool: JSON, prompt: str, number: int = 1) -> JSON:
    params = tool.get("parameters") or {}
    props: JSON = params.get("properties") or {}
    quoted = _BACKTICKS.search(prompt)
    hint = quoted.group(1) if quoted else "demo"
    args: JSON = {}
    for name in params.get("required") or list(props)[:1]:
        args[name] = _dummy(props.get(name, {}), hint, number)
    if "command" in props:
        args["command"] = hint
    if tool.get("name") == "web_search" and "query" in props:
        args["query"] = search_query(prompt)  # the gateway's search function (gateway-run web search)
    return args


def _pick_tool(request: JSON, prompt: str) -> JSON | None:
    tools = [t for t in request.get("tools") or [] if t.get("type") == "function"]
    if not tools or request.get("tool_choice") == "none":
        return None
    choice = request.get("tool_choice")
    if isinstance(choice, dict):
        return next((t for t in tools if t["name"] == choice.get("name")), None)
    named = [t for t in tools if re.search(rf"\b{re.escape(t['name'])}\b", prompt, re.IGNORECASE)]
    if named and (_TOOL_WORDS.search(prompt) or choice == "required"):
        first: JSON = named[0]
        return first
    return tools[0] if choice == "required" else None


def _outputs_since_prompt(items: list[JSON]) -> list[str]:
    """The tool outputs after the last user text (one per call of the loop that prompt asked for)."""
    outputs: list[str] = []
    for item in reversed(items):
        if item.get("type") == "function_call_output":
            output = item.get("output")
            outputs.append(output if isinstance(output, str) else "[structured output]")
        elif item.get("type", "message") == "message" and item.get("role") == "user":
            break
    return outputs[::-1]


def _words(text: str) -> int:
    return max(1, len(text.split()))


def _wants_search(request: JSON, prompt: str, last: JSON) -> bool:
    if _search_tool(request) is None or request.get("tool_choice") == "none" or last.get("type") != "message":
        return False
    choice = request.get("tool_choice")
    forced = choice == "required" or (isinstance(choice, dict) and choice.get("type") == "allowed_tools")
    return forced or bool(_SEARCH_WORDS.search(prompt))


def search_query(prompt: str) -> str:
    """The query the simulated model searches for (Claude Code's sub-request names it)."""
    found = _SEARCH_QUERY.search(prompt)
    return (found.group(1) if found else prompt).strip()[:100] or "query"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "query"


def _search_output(request: JSON, prompt: str, response_id: str) -> list[JSON]:
    """A hosted search like the real API's: a `web_search_call` (sources only when included), then an answer
    whose `url_citation` annotations carry the character range of each cited link."""
    tool = _search_tool(request) or {}
    query = search_query(prompt)
    domains = (tool.get("filters") or {}).get("allowed_domains") or ["example.org"]
    slug = _slug(query)
    urls = [f"https://{domains[0]}/{slug}/page-{n}" for n in range(1, SEARCH_RESULTS + 1)]
    action: JSON = {"type": "search", "query": query}
    if SOURCES_INCLUDE in (request.get("include") or []):
        action["sources"] = [{"type": "url", "url": u} for u in urls]
    call = {
        "id": "ws_" + _digest(response_id, "ws"),
        "type": "web_search_call",
        "status": "completed",
        "action": action,
    }
    text = f"Here is what I found about {query}."
    annotations = []
    for n, url in enumerate(urls[:2], start=1):
        cited = f"{url}?utm_source=openai"
        link = f" ([{domains[0]}]({cited}))"
        text += f" Finding {n} comes from page {n}."
        start = len(text)  # the citation is the link after the sentence
        text += link
        title = f"Result {n} about {slug}"
        annotation = {
            "type": "url_citation",
            "start_index": start,
            "end_index": len(text),
            "url": cited,
            "title": title,
        }
        annotations.append(annotation)
    message = {
        "id": "msg_" + _digest(response_id, "msg"),
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": annotations}],
    }
    return [call, message]


def plan_output(request: JSON, response_id: str) -> tuple[list[JSON], bool]:
    """The output items for a request, and whether max_output_tokens cut them short."""
    items: list[JSON] = request.get("input") or []
    prompt = _last_text(items)
    output: list[JSON] = []
    reasoning = request.get("reasoning") or {}
    if reasoning.get("effort") not in (None, "none", "minimal") or reasoning.get("summary"):
        rs_id = "rs_" + _digest(response_id, "rs")
        summary = [{"type": "summary_text", "text": f"Considering: {prompt[:60]}"}] if reasoning.get("summary") else []
        output.append({"id": rs_id, "type": "reasoning", "summary": summary, "encrypted_content": encrypted_for(rs_id)})
    last = items[-1] if items else {}
    if _wants_search(request, prompt, {"type": "message", **last}):
        return [*output, *_search_output(request, prompt, response_id)], False
    repeat = _REPEAT.search(prompt)
    results = _outputs_since_prompt(items)
    wanted = int(repeat.group(1)) if repeat else 1
    more = last.get("type") != "function_call_output" or len(results) < wanted
    tool = _pick_tool(request, prompt) if more else None
    if tool is not None:
        call = {
            "id": "fc_" + _digest(response_id, "fc"),
            "type": "function_call",
            "status": "completed",
            "call_id": "call_" + _digest(response_id, "call"),
            "name": tool["name"],
        }
        call["arguments"] = _json(_arguments(tool, prompt, len(results) + 1))
        output.append(call)
        return output, False
    if repeat and len(results) > 1:
        text = f"The tool returned {len(results)} results: " + ", ".join(r[:40] for r in results)
    elif last.get("type") == "function_call_output":
        result = last.get("output")
        shown = result if isinstance(result, str) else "[structured output]"
        text = f"The tool returned: {shown[:200]}"
    else:
        text = f"Hello from the messages-bridge demo upstream ({request.get('model')}). You said: {prompt[:200]}"
    limit = request.get("max_output_tokens")
    truncated = limit is not None and _words(text) > limit
    if truncated:
        text = " ".join(text.split()[:limit])
    output.append(
        {
            "id": "msg_" + _digest(response_id, "msg"),
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }
    )
    return output, truncated


def _json(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))


def usage_for(request: JSON, output: list[JSON]) -> JSON:
    input_chars, instruction_chars = len(_json(request.get("input") or [])), len(request.get("instructions") or "")
    input_tokens = max(1, input_chars // CHARS_PER_TOKEN + instruction_chars // CHARS_PER_TOKEN)
    out_text = " ".join(_json(o) for o in output)
    reasoning = sum(1 for o in output if o["type"] == "reasoning") * 8
    output_tokens = max(1, _words(out_text) // 2) + reasoning  # a tool call costs tokens too
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input_tokens + output_tokens,
    }


def respond(request: JSON) -> JSON:
    """The `Response` object the simulator returns for a valid request."""
    validate(request)
    response_id = "resp_" + _digest(_json(request.get("input") or []), str(request.get("model")))
    output, truncated = plan_output(request, response_id)
    return {
        "id": response_id,
        "object": "response",
        "created_at": 1_764_000_000,
        "model": request["model"],
        "status": "incomplete" if truncated else "completed",
        "incomplete_details": {"reason": "max_output_tokens"} if truncated else None,
        "error": None,
        "output": output,
        "usage": usage_for(request, output),
    }


def count_input_tokens(request: JSON) -> JSON:
    return {"object": "response.input_tokens", "input_tokens": usage_for(request, [])["input_tokens"]}
