"""The internal model of a request, a response and a stream.

Every wire dialect (OpenAI, Anthropic) translates to and from these types at the
edge, and every provider adapter translates them to and from its upstream's wire
format. Nothing in between knows about a dialect.

They are `msgspec.Struct`s: cheap to build on the hot path, immutable by habit
(not enforced, so stages may fill in fields such as `usage`), and typed.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "ChatRequest",
    "ChatResponse",
    "Choice",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "FinishReason",
    "ImagePart",
    "Message",
    "Part",
    "ResponseFormat",
    "Role",
    "StreamEvent",
    "StreamFinish",
    "StreamStart",
    "StreamTextDelta",
    "StreamToolCallDelta",
    "StreamToolCallStart",
    "StreamUsage",
    "TextPart",
    "ToolCall",
    "ToolChoice",
    "ToolResultPart",
    "ToolSpec",
    "Usage",
]

Role = Literal["system", "user", "assistant", "tool"]

# The union of what both dialects can say, named once:
#   stop: natural end or a stop sequence; length: max tokens; tool_calls: the model
#   wants tools run; content_filter: the provider refused; error: the stream broke.
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]


class TextPart(msgspec.Struct, tag="text", kw_only=True):
    text: str


class ImagePart(msgspec.Struct, tag="image", kw_only=True):
    """An image by URL (`https://...` or a `data:` URL)."""

    url: str
    detail: str | None = None


class ToolResultPart(msgspec.Struct, tag="tool_result", kw_only=True):
    """A tool's result inside a user turn (Anthropic style). OpenAI sends these as
    `role: tool` messages; the OpenAI dialect turns them into this part."""

    tool_call_id: str
    content: str
    is_error: bool = False


Part = TextPart | ImagePart | ToolResultPart


class ToolCall(msgspec.Struct, kw_only=True):
    id: str
    name: str
    arguments: str  # a JSON text, as the model produced it


class Message(msgspec.Struct, kw_only=True, omit_defaults=True):
    role: Role
    content: list[Part] = msgspec.field(default_factory=lambda: [])
    tool_calls: list[ToolCall] = msgspec.field(default_factory=lambda: [])
    tool_call_id: str | None = None  # for role "tool"
    name: str | None = None

    def text(self) -> str:
        return "".join(p.text for p in self.content if isinstance(p, TextPart))


class ToolSpec(msgspec.Struct, kw_only=True):
    name: str
    description: str | None = None
    parameters: dict[str, Any] = msgspec.field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None


class ToolChoice(msgspec.Struct, kw_only=True):
    """auto: the model decides; none: no tools; required: some tool; tool: the named one."""

    mode: Literal["auto", "none", "required", "tool"] = "auto"
    name: str | None = None
    parallel: bool | None = None  # None: the provider's default


class ResponseFormat(msgspec.Struct, kw_only=True):
    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


class ChatRequest(msgspec.Struct, kw_only=True):
    """One chat request, whatever dialect it came in."""

    model: str
    messages: list[Message]
    system: str | None = None  # a system prompt given apart from the messages (Anthropic)
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] = msgspec.field(default_factory=lambda: [])
    n: int = 1
    seed: int | None = None
    user: str | None = None
    tools: list[ToolSpec] = msgspec.field(default_factory=lambda: [])
    tool_choice: ToolChoice | None = None
    response_format: ResponseFormat | None = None
    stream: bool = False
    include_usage: bool = False  # OpenAI's stream_options.include_usage
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=lambda: {})
    # Variables for a `prompt:NAME@REF` model (lockgate's `prompt_variables` body field);
    # the resolve stage renders the prompt with them and clears them.
    prompt_variables: dict[str, Any] | None = None

    def system_text(self) -> str | None:
        """The system prompt and any system messages, joined."""
        parts = [self.system] if self.system else []
        parts.extend(m.text() for m in self.messages if m.role == "system")
        return "\n\n".join(parts) if parts else None


class Usage(msgspec.Struct, kw_only=True):
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0  # part of input_tokens read from a prompt cache
    cache_write_tokens: int = 0  # Anthropic's cache_creation_input_tokens
    reasoning_tokens: int = 0  # part of output_tokens
    estimated: bool = False  # counted locally, not reported by the provider

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class Choice(msgspec.Struct, kw_only=True):
    index: int = 0
    text: str = ""
    tool_calls: list[ToolCall] = msgspec.field(default_factory=lambda: [])
    finish_reason: FinishReason = "stop"
    refusal: str | None = None


class ChatResponse(msgspec.Struct, kw_only=True):
    id: str
    model: str  # the upstream's model name, as it answered
    created: int
    choices: list[Choice]
    usage: Usage = msgspec.field(default_factory=Usage)
    stop_sequence: str | None = None  # which stop sequence ended it, when known


# --- streaming -----------------------------------------------------------------------


class StreamStart(msgspec.Struct, tag="start", kw_only=True):
    id: str
    model: str
    created: int


class StreamTextDelta(msgspec.Struct, tag="text", kw_only=True):
    text: str
    index: int = 0  # the choice


class StreamToolCallStart(msgspec.Struct, tag="tool_start", kw_only=True):
    tool_index: int  # position of the call within the choice
    id: str
    name: str
    index: int = 0


class StreamToolCallDelta(msgspec.Struct, tag="tool_delta", kw_only=True):
    tool_index: int
    arguments: str  # a fragment of the JSON arguments
    index: int = 0


class StreamFinish(msgspec.Struct, tag="finish", kw_only=True):
    finish_reason: FinishReason
    index: int = 0
    stop_sequence: str | None = None


class StreamUsage(msgspec.Struct, tag="usage", kw_only=True):
    usage: Usage


StreamEvent = (
    StreamStart | StreamTextDelta | StreamToolCallStart | StreamToolCallDelta | StreamFinish | StreamUsage
)
"""A provider's stream yields StreamStart first, then deltas, a StreamFinish per choice,
and StreamUsage (when the upstream reports it) last. Errors are raised, not yielded."""


# --- embeddings ----------------------------------------------------------------------


class EmbeddingRequest(msgspec.Struct, kw_only=True):
    model: str
    input: list[str] | list[list[int]]
    dimensions: int | None = None
    user: str | None = None
    encoding_format: Literal["float", "base64"] = "float"


class EmbeddingResponse(msgspec.Struct, kw_only=True):
    model: str
    data: list[list[float]]
    usage: Usage = msgspec.field(default_factory=Usage)
