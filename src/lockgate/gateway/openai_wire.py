"""The OpenAI dialect at the edge: client JSON to the internal model and back.

`decode_chat_request` reads a `POST /v1/chat/completions` body into a `ChatRequest`,
validating it the way OpenAI does (an `InvalidRequest` naming the `param`);
`encode_chat_response` writes a `chat.completion`; `ChatStreamEncoder`
(`lockgate.gateway.openai_stream`) writes the chunk stream; embeddings live in
`lockgate.gateway.openai_embeddings`. All are re-exported here.

Mapped: `developer` messages become `system` ones; `role: tool` messages stay
`Message(role="tool", tool_call_id=..)`; legacy `role: function` messages become
tool messages whose `tool_call_id` is the function's name, as does an assistant's
legacy `function_call`; assistant `refusal` parts become text;
`max_completion_tokens` wins over `max_tokens`; `user` falls back to
`safety_identifier`; `tool_choice: {"type": "allowed_tools"}` keeps only the allowed
tools and takes its mode; `stream_options.include_usage` counts only when streaming.
lockgate's own field `prompt_variables` goes with a `prompt:NAME@REF` model (whose
`messages` may then be empty); see docs/prompts.md.

Accepted and ignored (nothing internal to map them to): `audio`, `function_call`
(legacy, meaningless without `functions`), `logit_bias`, `logprobs`,
`top_logprobs`, `moderation`, `prediction`, `prompt_cache_key`,
`prompt_cache_options`, `prompt_cache_retention`, `reasoning_effort`,
`service_tier`, `store`, `verbosity`, `web_search_options`,
`stream_options.include_obfuscation`, `json_schema.description`, `modalities: ["text"]`.

Rejected with a clear `InvalidRequest`: `input_audio` and `file` content parts,
`custom` tools, tool calls and tool choices, non-empty legacy `functions`, and
`modalities` asking for audio.
"""

from __future__ import annotations

from typing import Any, cast

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
    ToolSpec,
)
from lockgate.errors import InvalidRequest
from lockgate.gateway.openai_embeddings import decode_embedding_request, encode_embedding_response
from lockgate.gateway.openai_errors import check_range, decode_openai, error_body
from lockgate.gateway.openai_stream import ChatStreamEncoder, openai_finish_reason, openai_usage
from lockgate.gateway.openai_types import (
    AllowedToolChoice,
    AssistantMessage,
    ChatCompletionBody,
    CustomTool,
    CustomToolCall,
    CustomToolChoice,
    DeveloperMessage,
    FunctionMessage,
    FunctionToolChoice,
    ImageContent,
    JSONObjectFormat,
    JSONSchemaFormat,
    SystemMessage,
    TextContent,
    TextFormat,
    TextOnly,
    ToolMessage,
    UserContent,
    UserMessage,
    WireMessage,
)

__all__ = [
    "ChatStreamEncoder",
    "decode_chat_request",
    "decode_embedding_request",
    "encode_chat_response",
    "encode_embedding_response",
    "encode_model",
    "encode_models_list",
    "error_body",
]


# --- requests -------------------------------------------------------------------------


def decode_chat_request(body: bytes) -> ChatRequest:
    """A chat completions body as a `ChatRequest`; raises `InvalidRequest`."""
    wire = decode_openai(body, ChatCompletionBody)
    _check_chat(wire)
    tool_choice, tools = _tool_choice(wire, _tools(wire))
    stop = [wire.stop] if isinstance(wire.stop, str) else (wire.stop or [])
    options = wire.stream_options
    return ChatRequest(
        model=wire.model,
        messages=[_message(i, m) for i, m in enumerate(wire.messages)],
        max_tokens=wire.max_completion_tokens
        if wire.max_completion_tokens is not None
        else wire.max_tokens,
        temperature=wire.temperature,
        top_p=wire.top_p,
        stop=stop,
        n=1 if wire.n is None else wire.n,
        seed=wire.seed,
        user=wire.user if wire.user is not None else wire.safety_identifier,
        tools=tools,
        tool_choice=tool_choice,
        response_format=_response_format(wire),
        stream=bool(wire.stream),
        include_usage=bool(wire.stream and options and options.include_usage),
        presence_penalty=wire.presence_penalty,
        frequency_penalty=wire.frequency_penalty,
        metadata=wire.metadata or {},
        prompt_variables=wire.prompt_variables,
    )


def _check_chat(wire: ChatCompletionBody) -> None:
    if not wire.model:
        raise InvalidRequest("you must provide a model parameter", param="model")
    if not wire.messages and not wire.model.startswith("prompt:"):  # a prompt brings its own
        raise InvalidRequest(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            param="messages",
        )
    check_range("temperature", wire.temperature, 0, 2)
    check_range("top_p", wire.top_p, 0, 1)
    check_range("presence_penalty", wire.presence_penalty, -2, 2)
    check_range("frequency_penalty", wire.frequency_penalty, -2, 2)
    check_range("n", wire.n, 1, 128)
    check_range("max_tokens", wire.max_tokens, 1)
    check_range("max_completion_tokens", wire.max_completion_tokens, 1)
    check_range("top_logprobs", wire.top_logprobs, 0, 20)
    if wire.stream_options is not None and not wire.stream:
        raise InvalidRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )
    if wire.functions:
        raise InvalidRequest(
            "The deprecated 'functions' parameter is not supported by this gateway; use 'tools'.",
            param="functions",
        )
    if wire.modalities and "audio" in wire.modalities:
        raise InvalidRequest(
            "Audio output is not supported by this gateway; use 'modalities': ['text'].",
            param="modalities",
        )


def _message(i: int, m: WireMessage) -> Message:
    match m:
        case SystemMessage() | DeveloperMessage():
            return Message(role="system", content=_text_parts(m.content), name=m.name)
        case UserMessage():
            return Message(role="user", content=_user_parts(i, m.content), name=m.name)
        case AssistantMessage():
            return _assistant(i, m)
        case ToolMessage():
            return Message(role="tool", content=_text_parts(m.content), tool_call_id=m.tool_call_id)
        case FunctionMessage():
            content = m.content or ""
            return Message(
                role="tool", content=[TextPart(text=content)], tool_call_id=m.name, name=m.name
            )


def _text_parts(content: TextOnly) -> list[Part]:
    if isinstance(content, str):
        return [TextPart(text=content)]
    return [TextPart(text=p.text) for p in content]


def _user_parts(i: int, content: UserContent) -> list[Part]:
    if isinstance(content, str):
        return [TextPart(text=content)]
    parts: list[Part] = []
    for j, p in enumerate(content):
        if isinstance(p, TextContent):
            parts.append(TextPart(text=p.text))
        elif isinstance(p, ImageContent):
            parts.append(ImagePart(url=p.image_url.url, detail=p.image_url.detail))
        else:
            kind = type(p).__struct_config__.tag
            raise InvalidRequest(
                f"Invalid value for 'messages[{i}].content[{j}].type': content parts of type "
                f"'{kind}' are not supported by this gateway; send 'text' or 'image_url' parts.",
                param=f"messages[{i}].content[{j}].type",
            )
    return parts


def _assistant(i: int, m: AssistantMessage) -> Message:
    parts: list[Part] = []
    if isinstance(m.content, str):
        parts = [TextPart(text=m.content)] if m.content else []
    elif m.content:
        parts = [
            TextPart(text=p.text if isinstance(p, TextContent) else p.refusal) for p in m.content
        ]
    calls: list[ToolCall] = []
    for j, call in enumerate(m.tool_calls or ()):
        if isinstance(call, CustomToolCall):
            raise InvalidRequest(
                f"Invalid value for 'messages[{i}].tool_calls[{j}].type': custom tool calls "
                "are not supported by this gateway.",
                param=f"messages[{i}].tool_calls[{j}].type",
            )
        fn = call.function
        calls.append(ToolCall(id=call.id, name=fn.name, arguments=fn.arguments))
    if m.function_call is not None:
        fn = m.function_call
        calls.append(ToolCall(id=fn.name, name=fn.name, arguments=fn.arguments))
    return Message(role="assistant", content=parts, tool_calls=calls, name=m.name)


def _tools(wire: ChatCompletionBody) -> list[ToolSpec]:
    tools: list[ToolSpec] = []
    for i, tool in enumerate(wire.tools or ()):
        if isinstance(tool, CustomTool):
            raise InvalidRequest(
                f"Invalid value for 'tools[{i}].type': custom tools are not supported by this "
                "gateway; use 'function' tools.",
                param=f"tools[{i}].type",
            )
        fn = tool.function
        parameters: dict[str, Any] = fn.parameters or {"type": "object", "properties": {}}
        tools.append(
            ToolSpec(
                name=fn.name, description=fn.description, parameters=parameters, strict=fn.strict
            )
        )
    return tools


def _tool_choice(
    wire: ChatCompletionBody, tools: list[ToolSpec]
) -> tuple[ToolChoice | None, list[ToolSpec]]:
    """The internal choice, and the tools left once `allowed_tools` has filtered them."""
    choice, parallel = wire.tool_choice, wire.parallel_tool_calls
    match choice:
        case None:
            if parallel is None:
                return None, tools
            return ToolChoice(mode="auto" if tools else "none", parallel=parallel), tools
        case "auto" | "none" | "required":
            return ToolChoice(mode=choice, parallel=parallel), tools
        case FunctionToolChoice():
            return ToolChoice(mode="tool", name=choice.function.name, parallel=parallel), tools
        case CustomToolChoice():
            raise InvalidRequest(
                "Invalid value for 'tool_choice.type': custom tools are not supported by this gateway.",
                param="tool_choice.type",
            )
        case AllowedToolChoice():
            allowed = {_allowed_name(t) for t in choice.allowed_tools.tools}
            kept = [t for t in tools if t.name in allowed]
            return ToolChoice(mode=choice.allowed_tools.mode, parallel=parallel), kept


def _allowed_name(tool: dict[str, Any]) -> str | None:
    """`{"type": "function", "function": {"name": ..}}` -> the name."""
    fn: Any = tool.get("function")
    if not isinstance(fn, dict):
        return None
    name = cast(dict[str, Any], fn).get("name")
    return name if isinstance(name, str) else None


def _response_format(wire: ChatCompletionBody) -> ResponseFormat | None:
    match wire.response_format:
        case None:
            return None
        case TextFormat():
            return ResponseFormat(type="text")
        case JSONObjectFormat():
            return ResponseFormat(type="json_object")
        case JSONSchemaFormat(json_schema=spec):
            return ResponseFormat(
                type="json_schema", name=spec.name, schema=spec.schema, strict=spec.strict
            )


# --- responses ------------------------------------------------------------------------


def encode_chat_response(resp: ChatResponse, *, model: str) -> bytes:
    """A `chat.completion` object; `model` is the name the client asked for."""
    return msgspec.json.encode(
        {
            "id": resp.id,
            "object": "chat.completion",
            "created": resp.created,
            "model": model,
            "choices": [_choice(c) for c in resp.choices],
            "usage": openai_usage(resp.usage),
            "system_fingerprint": None,
        }
    )


def _choice(choice: Choice) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": choice.text or (None if choice.tool_calls or choice.refusal else ""),
        "refusal": choice.refusal,
        "annotations": [],
    }
    if choice.tool_calls:
        message["tool_calls"] = [
            {"id": t.id, "type": "function", "function": {"name": t.name, "arguments": t.arguments}}
            for t in choice.tool_calls
        ]
    return {
        "index": choice.index,
        "message": message,
        "logprobs": None,
        "finish_reason": openai_finish_reason(choice.finish_reason),
    }


def _model(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "lockgate"}


def encode_models_list(names: list[str], created: int) -> bytes:
    """`GET /v1/models`: every name as a model owned by "lockgate"."""
    return msgspec.json.encode({"object": "list", "data": [_model(n, created) for n in names]})


def encode_model(name: str, created: int) -> bytes:
    """`GET /v1/models/{model}`: one `model` object."""
    return msgspec.json.encode(_model(name, created))
