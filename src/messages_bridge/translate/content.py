"""Anthropic content blocks → Responses input parts and items: one small function per block kind."""

from __future__ import annotations

from messages_bridge.errors import InvalidRequestError
from messages_bridge.protocol import anthropic as a
from messages_bridge.protocol import responses as r


def text_part(text: str) -> r.InputText:
    return {"type": "input_text", "text": text}


def image_part(block: a.ImageBlock) -> r.InputImage:
    """Images are passed by data URL or URL: the gateway never fetches a URL itself (no SSRF)."""
    source = block.source
    if isinstance(source, a.Base64Source):
        return {"type": "input_image", "image_url": f"data:{source.media_type};base64,{source.data}", "detail": "auto"}
    if isinstance(source, a.UrlSource):
        return {"type": "input_image", "image_url": source.url, "detail": "auto"}
    raise InvalidRequestError(
        "image.source: 'file' sources (Anthropic Files API ids) are not supported by this gateway"
    )


def _titled(block: a.DocumentBlock, text: str) -> str:
    header = "\n".join(part for part in (block.title, block.context) if part)
    return f"{header}\n\n{text}" if header else text


def document_parts(block: a.DocumentBlock) -> list[r.InputPart]:
    """PDFs become `input_file`; plain-text and content documents become text (and image) parts."""
    source = block.source
    if isinstance(source, a.Base64Source):
        filename = block.title or ("document.pdf" if source.media_type == "application/pdf" else "document")
        return [
            {"type": "input_file", "filename": filename, "file_data": f"data:{source.media_type};base64,{source.data}"}
        ]
    if isinstance(source, a.UrlSource):
        return [{"type": "input_file", "file_url": source.url}]
    if isinstance(source, a.PlainTextSource):
        return [text_part(_titled(block, source.data))]
    if isinstance(source, a.ContentSource):
        if isinstance(source.content, str):
            return [text_part(_titled(block, source.content))]
        parts: list[r.InputPart] = [text_part(_titled(block, ""))] if block.title or block.context else []
        for inner in source.content:
            parts.append(text_part(inner.text) if isinstance(inner, a.TextBlock) else image_part(inner))
        return parts
    raise InvalidRequestError("document.source: 'file' sources (Anthropic Files API ids) are not supported")


def search_result_part(block: a.SearchResultBlock) -> r.InputText:
    body = "\n\n".join(t.text for t in block.content)
    return text_part(f"Search result: {block.title}\nSource: {block.source}\n\n{body}")


def user_parts(block: a.ContentBlock, where: str) -> list[r.InputPart]:
    """Parts for a block that sits in user (or tool_result) content."""
    match block:
        case a.TextBlock(text=text):
            return [text_part(text)]
        case a.ImageBlock():
            return [image_part(block)]
        case a.DocumentBlock():
            return document_parts(block)
        case a.SearchResultBlock():
            return [search_result_part(block)]
        case a.ToolReferenceBlock(tool_name=name):
            return [text_part(f"Tool loaded: {name}")]
        case _:
            raise InvalidRequestError(f"{where}: content block type '{block_type(block)}' is not allowed here")


def tool_result_output(block: a.ToolResultBlock, where: str) -> str | list[r.InputPart]:
    """The `output` of a function_call_output; `is_error` is spelled out so the model sees the failure."""
    content = block.content
    if content is None or isinstance(content, str):
        text = content or ""
        return f"Error: {text}" if block.is_error else text
    parts: list[r.InputPart] = [text_part("Error:")] if block.is_error else []
    for inner in content:
        parts.extend(user_parts(inner, where))
    if all(p["type"] == "input_text" for p in parts):
        # A plain string keeps the output compact and is accepted by every Responses implementation.
        return "\n".join(p["text"] for p in parts if p["type"] == "input_text")
    return parts


def block_type(block: a.ContentBlock) -> str:
    """The wire `type` of a decoded block (its msgspec tag)."""
    return str(type(block).__struct_config__.tag)
