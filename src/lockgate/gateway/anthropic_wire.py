"""The Anthropic dialect at the edge: client JSON to the internal model and back.

`decode_messages_request` reads a `POST /v1/messages` body into a `ChatRequest`,
validating it the way Anthropic does (`InvalidRequest`, "<location>: <problem>");
`encode_message_response` writes a `message` object; `MessageStreamEncoder`
(`lockgate.gateway.anthropic_stream`) writes the event stream. Only choice 0 is
rendered. `include_usage` is always on (the dialect always reports usage).

Mapped: `system` (a string, or text blocks joined by a blank line) becomes
`ChatRequest.system`; `system`-role messages stay system messages; image blocks
become `ImagePart`s (base64 sources as `data:` URLs); `tool_use` blocks become
`ToolCall`s (arguments: the input as JSON text); `tool_result` blocks become
`ToolResultPart`s (text content joined by newlines); plain-text documents become
text; `metadata.user_id` becomes `user`; `tool_choice` any/tool become
required/tool, and `disable_parallel_tool_use` becomes `parallel`;
`output_config.format` (json_schema) becomes a json_schema `ResponseFormat`.

Accepted and ignored: `thinking`/`redacted_thinking` blocks (dropped), the
`thinking` option, `cache_control` everywhere, `container`, `context_management`,
`diagnostics`, `inference_geo`, `service_tier`, `speed`, `output_config.effort`,
`user_profile_id`, `workspace_id`, an empty `mcp_servers`.

Rejected with a clear `InvalidRequest`: server tools (any `type` but "custom"),
non-empty `mcp_servers`, server-tool and search-result blocks, PDF/URL/file
documents, Files API images, images inside tool results, and blocks in a role that
cannot hold them (`tool_use` from the user, `tool_result` from the assistant).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from lockgate.core.types import (
    ChatRequest,
    ChatResponse,
    Choice,
    ImagePart,
    Message,
    Part,
    ResponseFormat,
    TextPart,
    ToolCall,
    ToolChoice,
    ToolResultPart,
    ToolSpec,
)
from lockgate.errors import InvalidRequest
from lockgate.gateway.anthropic_errors import decode_anthropic, error_body
from lockgate.gateway.anthropic_stream import (
    MessageStreamEncoder,
    anthropic_message_id,
    anthropic_stop_reason,
    anthropic_usage,
)
from lockgate.gateway.anthropic_types import (
    Base64Source,
    Block,
    ContentSource,
    DocumentBlock,
    FileSource,
    ImageBlock,
    MessagesBody,
    OutputConfig,
    RedactedThinkingBlock,
    TextBlock,
    TextSource,
    ThinkingBlock,
    ToolChoiceAny,
    ToolChoiceAuto,
    ToolChoiceNone,
    ToolChoiceTool,
    ToolResultBlock,
    ToolUseBlock,
    ToolWire,
    URLSource,
)

__all__ = [
    "MessageStreamEncoder",
    "decode_messages_request",
    "encode_message_response",
    "encode_model",
    "encode_models_list",
    "error_body",
]


# --- requests -------------------------------------------------------------------------


def decode_messages_request(body: bytes) -> ChatRequest:
    """A messages body as a `ChatRequest`; raises `InvalidRequest`."""
    wire = decode_anthropic(body, MessagesBody)
    _check(wire)
    return ChatRequest(
        model=wire.model,
        messages=[_message(i, m.role, m.content) for i, m in enumerate(wire.messages)],
        system=_system(wire.system),
        max_tokens=wire.max_tokens,
        temperature=wire.temperature,
        top_p=wire.top_p,
        top_k=wire.top_k,
        stop=wire.stop_sequences or [],
        user=wire.metadata.user_id if wire.metadata else None,
        tools=_tools(wire.tools or []),
        tool_choice=_tool_choice(wire),
        response_format=_response_format(wire.output_config),
        stream=bool(wire.stream),
        include_usage=True,
        prompt_variables=wire.prompt_variables,
    )


def _range(name: str, value: float | None, low: float, high: float | None = None) -> None:
    if value is None:
        return
    if value < low:
        raise InvalidRequest(
            f"{name}: Input should be greater than or equal to {low:g}", param=name
        )
    if high is not None and value > high:
        raise InvalidRequest(f"{name}: Input should be less than or equal to {high:g}", param=name)


def _check(wire: MessagesBody) -> None:
    if not wire.model:
        raise InvalidRequest("model: String should have at least 1 character", param="model")
    if not wire.messages and not wire.model.startswith("prompt:"):  # a prompt brings its own
        raise InvalidRequest("messages: at least one message is required", param="messages")
    _range("max_tokens", wire.max_tokens, 1)
    _range("temperature", wire.temperature, 0, 1)
    _range("top_p", wire.top_p, 0, 1)
    _range("top_k", wire.top_k, 0)
    if wire.mcp_servers:
        raise InvalidRequest(
            "mcp_servers: MCP servers are not supported by this gateway", param="mcp_servers"
        )


def _system(system: str | list[TextBlock] | None) -> str | None:
    if isinstance(system, list):
        return "\n\n".join(b.text for b in system) or None
    return system or None


def _message(
    i: int, role: Literal["user", "assistant", "system"], content: str | list[Block]
) -> Message:
    if isinstance(content, str):
        return Message(role=role, content=[TextPart(text=content)])
    parts, calls = _blocks(i, role, content)
    return Message(role=role, content=parts, tool_calls=calls)


def _blocks(i: int, role: str, blocks: list[Block]) -> tuple[list[Part], list[ToolCall]]:
    parts: list[Part] = []
    calls: list[ToolCall] = []
    for j, block in enumerate(blocks):
        loc = f"messages.{i}.content.{j}"
        match block:
            case ThinkingBlock() | RedactedThinkingBlock():
                continue
            case TextBlock():
                parts.append(TextPart(text=block.text))
            case ToolUseBlock() if role == "assistant":
                arguments = msgspec.json.encode(block.input).decode()
                calls.append(ToolCall(id=block.id, name=block.name, arguments=arguments))
            case ImageBlock() if role == "user":
                parts.append(_image(loc, block))
            case DocumentBlock() if role == "user":
                parts.append(TextPart(text=_document_text(loc, block)))
            case ToolResultBlock() if role == "user":
                text = _tool_result_text(loc, block)
                result = ToolResultPart(
                    tool_call_id=block.tool_use_id, content=text, is_error=bool(block.is_error)
                )
                parts.append(result)
            case _:
                tag = type(block).__struct_config__.tag
                raise InvalidRequest(
                    f"{loc}: '{tag}' blocks are not allowed in {role} messages", param=loc
                )
    return parts, calls


def _image(loc: str, block: ImageBlock) -> ImagePart:
    match block.source:
        case Base64Source(media_type=media_type, data=data):
            return ImagePart(url=f"data:{media_type};base64,{data}")
        case URLSource(url=url):
            return ImagePart(url=url)
        case FileSource():
            raise InvalidRequest(
                f"{loc}.source: file sources (Files API) are not supported by this gateway",
                param=f"{loc}.source",
            )


def _document_text(loc: str, block: DocumentBlock) -> str:
    match block.source:
        case TextSource(data=data):
            return data
        case ContentSource(content=content):
            if isinstance(content, str):
                return content
            at = f"{loc}.source.content"
            return "\n".join(_text_only(f"{at}.{k}", b) for k, b in enumerate(content))
        case Base64Source() | URLSource() | FileSource():
            raise InvalidRequest(
                f"{loc}.source: only plain-text documents are supported by this gateway "
                "(no PDF, URL or file sources)",
                param=f"{loc}.source",
            )


def _text_only(loc: str, block: TextBlock | ImageBlock) -> str:
    if isinstance(block, ImageBlock):
        raise InvalidRequest(
            f"{loc}: images are not supported here by this gateway, only text", param=loc
        )
    return block.text


def _tool_result_text(loc: str, block: ToolResultBlock) -> str:
    content = block.content
    if content is None or isinstance(content, str):
        return content or ""
    texts: list[str] = []
    for k, item in enumerate(content):
        at = f"{loc}.content.{k}"
        texts.append(
            _document_text(at, item) if isinstance(item, DocumentBlock) else _text_only(at, item)
        )
    return "\n".join(texts)


def _tools(tools: list[ToolWire]) -> list[ToolSpec]:
    specs: list[ToolSpec] = []
    for i, tool in enumerate(tools):
        if tool.type not in (None, "custom"):
            raise InvalidRequest(
                f"tools.{i}: server tools ('{tool.type}') are not supported by this gateway; "
                "send custom tools (name, description, input_schema)",
                param=f"tools.{i}.type",
            )
        if tool.input_schema is None:
            raise InvalidRequest(
                f"tools.{i}.custom.input_schema: Field required", param=f"tools.{i}.input_schema"
            )
        spec = ToolSpec(
            name=tool.name,
            description=tool.description,
            parameters=tool.input_schema,
            strict=tool.strict,
        )
        specs.append(spec)
    return specs


def _tool_choice(wire: MessagesBody) -> ToolChoice | None:
    choice = wire.tool_choice
    match choice:
        case None:
            return None
        case ToolChoiceNone():
            return ToolChoice(mode="none")
        case ToolChoiceAuto() | ToolChoiceAny() | ToolChoiceTool():
            disabled = choice.disable_parallel_tool_use
            parallel = None if disabled is None else not disabled
            if isinstance(choice, ToolChoiceTool):
                return ToolChoice(mode="tool", name=choice.name, parallel=parallel)
            mode = "auto" if isinstance(choice, ToolChoiceAuto) else "required"
            return ToolChoice(mode=mode, parallel=parallel)


def _response_format(config: OutputConfig | None) -> ResponseFormat | None:
    if config is None or config.format is None:
        return None
    return ResponseFormat(type="json_schema", schema=config.format.schema)


# --- responses ------------------------------------------------------------------------


def _tool_input(arguments: str) -> dict[str, Any]:
    """The model's JSON arguments as an object; anything else becomes {}."""
    try:
        value: Any = msgspec.json.decode(arguments) if arguments else {}
    except msgspec.DecodeError:
        return {}
    return value if isinstance(value, dict) else {}  # pyright: ignore[reportUnknownVariableType]


def encode_message_response(resp: ChatResponse, *, model: str) -> bytes:
    """A `message` object from choice 0; `model` is the name the client asked for."""
    choice = resp.choices[0] if resp.choices else Choice()
    content: list[dict[str, Any]] = []
    if text := choice.text or choice.refusal:
        content.append({"type": "text", "text": text})
    content.extend(
        {"type": "tool_use", "id": t.id, "name": t.name, "input": _tool_input(t.arguments)}
        for t in choice.tool_calls
    )
    stop_reason = anthropic_stop_reason(choice.finish_reason, resp.stop_sequence)
    message = {
        "id": anthropic_message_id(resp.id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": resp.stop_sequence if stop_reason == "stop_sequence" else None,
        "usage": anthropic_usage(resp.usage),
    }
    return msgspec.json.encode(message)


def _model(name: str, created: int) -> dict[str, Any]:
    created_at = datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "type": "model",
        "id": name,
        "display_name": name,
        "created_at": created_at,
        "lifecycle": "active",
    }


def encode_models_list(names: list[str], created: int) -> bytes:
    """`GET /v1/models` for Anthropic clients: one page holding every model."""
    data = [_model(n, created) for n in names]
    page = {
        "data": data,
        "has_more": False,
        "first_id": names[0] if names else None,
        "last_id": names[-1] if names else None,
    }
    return msgspec.json.encode(page)


def encode_model(name: str, created: int) -> bytes:
    """`GET /v1/models/{model}` for Anthropic clients."""
    return msgspec.json.encode(_model(name, created))
