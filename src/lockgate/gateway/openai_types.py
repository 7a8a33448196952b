"""OpenAI request bodies as typed msgspec Structs: the wire, not the internal model.

Field sets follow the openai SDK's `CompletionCreateParams` and
`EmbeddingCreateParams`. The top-level bodies forbid unknown fields, as OpenAI
does; nested objects ignore fields they do not name, so additions in newer SDKs
(cache breakpoints on parts and the like) pass. Objects lockgate accepts but never
reads (`audio`, `prediction`, `web_search_options`, ...) are typed loosely.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "AllowedToolChoice",
    "AssistantMessage",
    "AudioContent",
    "ChatCompletionBody",
    "CustomTool",
    "CustomToolCall",
    "CustomToolChoice",
    "DeveloperMessage",
    "EmbeddingBody",
    "FileContent",
    "FunctionCallWire",
    "FunctionDefinition",
    "FunctionMessage",
    "FunctionTool",
    "FunctionToolCall",
    "FunctionToolChoice",
    "ImageContent",
    "JSONObjectFormat",
    "JSONSchemaFormat",
    "RefusalContent",
    "SystemMessage",
    "TextContent",
    "TextFormat",
    "ToolChoiceWire",
    "ToolMessage",
    "UserMessage",
    "WireMessage",
]

# --- content parts --------------------------------------------------------------------


class TextContent(msgspec.Struct, tag_field="type", tag="text"):
    text: str


class ImageURL(msgspec.Struct):
    url: str
    detail: str | None = None


class ImageContent(msgspec.Struct, tag_field="type", tag="image_url"):
    image_url: ImageURL


class AudioContent(msgspec.Struct, tag_field="type", tag="input_audio"):
    input_audio: dict[str, Any]


class FileContent(msgspec.Struct, tag_field="type", tag="file"):
    file: dict[str, Any]


class RefusalContent(msgspec.Struct, tag_field="type", tag="refusal"):
    refusal: str


TextOnly = str | list[TextContent]
UserContent = str | list[TextContent | ImageContent | AudioContent | FileContent]

# --- messages -------------------------------------------------------------------------


class FunctionCallWire(msgspec.Struct):
    name: str
    arguments: str


class FunctionToolCall(msgspec.Struct, tag_field="type", tag="function"):
    id: str
    function: FunctionCallWire


class CustomToolCall(msgspec.Struct, tag_field="type", tag="custom"):
    id: str
    custom: dict[str, Any]


class SystemMessage(msgspec.Struct, tag_field="role", tag="system", kw_only=True):
    content: TextOnly
    name: str | None = None


class DeveloperMessage(msgspec.Struct, tag_field="role", tag="developer", kw_only=True):
    content: TextOnly
    name: str | None = None


class UserMessage(msgspec.Struct, tag_field="role", tag="user", kw_only=True):
    content: UserContent
    name: str | None = None


class AssistantMessage(msgspec.Struct, tag_field="role", tag="assistant", kw_only=True):
    content: str | list[TextContent | RefusalContent] | None = None
    name: str | None = None
    refusal: str | None = None
    tool_calls: list[FunctionToolCall | CustomToolCall] | None = None
    function_call: FunctionCallWire | None = None
    audio: dict[str, Any] | None = None


class ToolMessage(msgspec.Struct, tag_field="role", tag="tool", kw_only=True):
    content: TextOnly
    tool_call_id: str


class FunctionMessage(msgspec.Struct, tag_field="role", tag="function", kw_only=True):
    content: str | None
    name: str


WireMessage = (
    SystemMessage
    | DeveloperMessage
    | UserMessage
    | AssistantMessage
    | ToolMessage
    | FunctionMessage
)

# --- tools ----------------------------------------------------------------------------


class FunctionDefinition(msgspec.Struct, kw_only=True):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionTool(msgspec.Struct, tag_field="type", tag="function"):
    function: FunctionDefinition


class CustomTool(msgspec.Struct, tag_field="type", tag="custom"):
    custom: dict[str, Any]


class NamedFunction(msgspec.Struct):
    name: str


class FunctionToolChoice(msgspec.Struct, tag_field="type", tag="function"):
    function: NamedFunction


class CustomToolChoice(msgspec.Struct, tag_field="type", tag="custom"):
    custom: NamedFunction


class AllowedTools(msgspec.Struct):
    mode: Literal["auto", "required"]
    tools: list[dict[str, Any]]


class AllowedToolChoice(msgspec.Struct, tag_field="type", tag="allowed_tools"):
    allowed_tools: AllowedTools


ToolChoiceWire = (
    Literal["auto", "none", "required"] | FunctionToolChoice | CustomToolChoice | AllowedToolChoice
)

# --- response format, stream options --------------------------------------------------


class TextFormat(msgspec.Struct, tag_field="type", tag="text"):
    pass


class JSONObjectFormat(msgspec.Struct, tag_field="type", tag="json_object"):
    pass


class JSONSchema(msgspec.Struct, kw_only=True):
    name: str
    description: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


class JSONSchemaFormat(msgspec.Struct, tag_field="type", tag="json_schema"):
    json_schema: JSONSchema


class StreamOptions(msgspec.Struct, kw_only=True):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


# --- bodies ---------------------------------------------------------------------------


class ChatCompletionBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /v1/chat/completions`."""

    messages: list[WireMessage]
    model: str
    audio: dict[str, Any] | None = None
    frequency_penalty: float | None = None
    function_call: Literal["none", "auto"] | NamedFunction | None = None
    functions: list[FunctionDefinition] | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    max_completion_tokens: int | None = None
    max_tokens: int | None = None
    metadata: dict[str, str] | None = None
    modalities: list[str] | None = None
    moderation: dict[str, Any] | None = None
    n: int | None = None
    parallel_tool_calls: bool | None = None
    prediction: dict[str, Any] | None = None
    presence_penalty: float | None = None
    prompt_cache_key: str | None = None
    prompt_cache_options: dict[str, Any] | None = None
    prompt_cache_retention: str | None = None
    prompt_variables: dict[str, Any] | None = None  # lockgate: variables of a `prompt:` model
    reasoning_effort: str | None = None
    response_format: TextFormat | JSONObjectFormat | JSONSchemaFormat | None = None
    safety_identifier: str | None = None
    seed: int | None = None
    service_tier: str | None = None
    stop: str | list[str] | None = None
    store: bool | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    temperature: float | None = None
    tool_choice: ToolChoiceWire | None = None
    tools: list[FunctionTool | CustomTool] | None = None
    top_logprobs: int | None = None
    top_p: float | None = None
    user: str | None = None
    verbosity: str | None = None
    web_search_options: dict[str, Any] | None = None


class EmbeddingBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /v1/embeddings`. `input` is checked further by hand (msgspec cannot tell
    a list of strings from a list of token lists in one union)."""

    input: str | list[str | int | list[int]]
    model: str
    dimensions: int | None = None
    encoding_format: Literal["float", "base64"] | None = None
    user: str | None = None
