"""Anthropic request bodies as typed msgspec Structs: the wire, not the internal model.

Field sets follow the anthropic SDK's `MessageCreateParams` (and the beta one's
`context_management` and `mcp_servers`, which Claude Code sends), plus the
sampling fields older SDKs still send (`temperature`, `top_p`, `top_k`). The body
forbids unknown fields, as Anthropic does; nested objects ignore fields they do not
name (`cache_control`, `citations`, `caller`, ...), so newer clients' additions pass.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "Base64Source",
    "Block",
    "ContentSource",
    "DocumentBlock",
    "FileSource",
    "ImageBlock",
    "JSONOutputFormat",
    "MessageWire",
    "MessagesBody",
    "Metadata",
    "OutputConfig",
    "RedactedThinkingBlock",
    "TextBlock",
    "TextSource",
    "ThinkingBlock",
    "ToolChoiceAny",
    "ToolChoiceAuto",
    "ToolChoiceNone",
    "ToolChoiceTool",
    "ToolResultBlock",
    "ToolUseBlock",
    "ToolWire",
    "URLSource",
]

# --- sources --------------------------------------------------------------------------


class Base64Source(msgspec.Struct, tag_field="type", tag="base64"):
    media_type: str
    data: str


class URLSource(msgspec.Struct, tag_field="type", tag="url"):
    url: str


class FileSource(msgspec.Struct, tag_field="type", tag="file"):
    file_id: str


class TextSource(msgspec.Struct, tag_field="type", tag="text"):
    data: str


# --- content blocks -------------------------------------------------------------------


class TextBlock(msgspec.Struct, tag_field="type", tag="text"):
    text: str


class ImageBlock(msgspec.Struct, tag_field="type", tag="image"):
    source: Base64Source | URLSource | FileSource


class ContentSource(msgspec.Struct, tag_field="type", tag="content"):
    content: str | list[TextBlock | ImageBlock]


class DocumentBlock(msgspec.Struct, tag_field="type", tag="document"):
    source: Base64Source | TextSource | ContentSource | URLSource | FileSource


class ThinkingBlock(msgspec.Struct, tag_field="type", tag="thinking"):
    thinking: str = ""


class RedactedThinkingBlock(msgspec.Struct, tag_field="type", tag="redacted_thinking"):
    data: str = ""


class ToolUseBlock(msgspec.Struct, tag_field="type", tag="tool_use"):
    id: str
    name: str
    input: dict[str, Any]


class ToolResultBlock(msgspec.Struct, tag_field="type", tag="tool_result", kw_only=True):
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock | DocumentBlock] | None = None
    is_error: bool | None = None


Block = (
    TextBlock
    | ImageBlock
    | DocumentBlock
    | ThinkingBlock
    | RedactedThinkingBlock
    | ToolUseBlock
    | ToolResultBlock
)


class MessageWire(msgspec.Struct):
    role: Literal["user", "assistant", "system"]
    content: str | list[Block]


# --- tools ----------------------------------------------------------------------------


class ToolWire(msgspec.Struct, kw_only=True):
    """A custom tool (`type` absent or "custom"), or a server tool lockgate refuses."""

    name: str
    type: str | None = None
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    strict: bool | None = None


class ToolChoiceAuto(msgspec.Struct, tag_field="type", tag="auto", kw_only=True):
    disable_parallel_tool_use: bool | None = None


class ToolChoiceAny(msgspec.Struct, tag_field="type", tag="any", kw_only=True):
    disable_parallel_tool_use: bool | None = None


class ToolChoiceTool(msgspec.Struct, tag_field="type", tag="tool", kw_only=True):
    name: str
    disable_parallel_tool_use: bool | None = None


class ToolChoiceNone(msgspec.Struct, tag_field="type", tag="none"):
    pass


# --- the rest -------------------------------------------------------------------------


class Metadata(msgspec.Struct):
    user_id: str | None = None


class JSONOutputFormat(msgspec.Struct):
    type: Literal["json_schema"]
    schema: dict[str, Any]


class OutputConfig(msgspec.Struct, kw_only=True):
    effort: str | None = None
    format: JSONOutputFormat | None = None


class MessagesBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /v1/messages`."""

    model: str
    max_tokens: int
    messages: list[MessageWire]
    cache_control: dict[str, Any] | None = None
    container: str | dict[str, Any] | None = None
    context_management: dict[str, Any] | None = None
    diagnostics: dict[str, Any] | None = None
    inference_geo: str | None = None
    mcp_servers: list[dict[str, Any]] | None = None
    metadata: Metadata | None = None
    output_config: OutputConfig | None = None
    prompt_variables: dict[str, Any] | None = None  # lockgate: variables of a `prompt:` model
    service_tier: str | None = None
    speed: str | None = None
    stop_sequences: list[str] | None = None
    stream: bool | None = None
    system: str | list[TextBlock] | None = None
    temperature: float | None = None
    thinking: dict[str, Any] | None = None
    tool_choice: ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone | None = None
    tools: list[ToolWire] | None = None
    top_k: int | None = None
    top_p: float | None = None
    user_profile_id: str | None = None
    workspace_id: str | None = None
