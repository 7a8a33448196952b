"""Anthropic's Messages API (`POST {base_url}/v1/messages`).

How the internal request maps onto it, where the two differ:
- `system`: the system prompt and every system message, joined (`ChatRequest.system_text`).
- Consecutive messages of one role are merged (Anthropic requires alternation); a
  `tool` message and a `ToolResultPart` become `tool_result` blocks in a user turn.
  Empty text parts, and messages left with nothing, are dropped (Anthropic refuses them).
- Assistant tool calls become `tool_use` blocks; arguments that are not a JSON object
  are sent as `{}`. A tool call without arguments comes back as `"{}"`, streamed too.
- `response_format`: Anthropic has no JSON mode. For `json_object` and `json_schema`
  an instruction is appended to the system prompt to answer with JSON only (quoting
  the schema); the answer is not validated here.
- `n > 1` is served by `n` parallel requests (their usage summed); a stream with
  `n > 1` is refused with `UnsupportedOperation`.
- `temperature` is capped at 1.0, Anthropic's maximum (OpenAI's goes to 2).
  `presence_penalty`, `frequency_penalty` and `seed` have no equivalent and are not sent.
- `max_tokens` is required by Anthropic: `default_max_tokens` from the config when unset.
- Usage: `input_tokens` includes cache reads and cache writes, which are also given
  apart (`cached_input_tokens`, `cache_write_tokens`).
- Anthropic answers carry no timestamp: `created` is the time of the call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import aclosing
from typing import Any, Final

import aiohttp
import msgspec

from lockgate.config.schema import AnthropicProviderConfig
from lockgate.core.types import (
    ChatRequest,
    ChatResponse,
    Choice,
    EmbeddingRequest,
    EmbeddingResponse,
    FinishReason,
    ImagePart,
    Message,
    Part,
    StreamEvent,
    StreamFinish,
    StreamStart,
    StreamTextDelta,
    StreamToolCallDelta,
    StreamToolCallStart,
    StreamUsage,
    TextPart,
    ToolCall,
    ToolChoice,
    Usage,
)
from lockgate.errors import UnsupportedOperation, UpstreamError, UpstreamRateLimited
from lockgate.providers._http import decode, post_json, stream_sse

__all__ = ["AnthropicProvider", "messages_payload", "parse_message"]

STOP_REASONS: Final[Mapping[str, FinishReason]] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_TOOL_CHOICE: Final[Mapping[str, str]] = {
    "auto": "auto",
    "required": "any",
    "tool": "tool",
    "none": "none",
}
JSON_ONLY: Final = (
    "Answer with a single JSON value only: no prose before or after it, no code fences."
)

# --- the upstream's answers ------------------------------------------------------------


class _Block(msgspec.Struct):
    type: str
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: msgspec.Raw = msgspec.Raw()  # the tool's arguments, kept as JSON text


class _Usage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None


class _Message(msgspec.Struct):
    id: str = ""
    model: str = ""
    content: list[_Block] = []
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: _Usage | None = None


class _Delta(msgspec.Struct):
    type: str = ""
    text: str | None = None
    partial_json: str | None = None
    stop_reason: str | None = None
    stop_sequence: str | None = None


class _Error(msgspec.Struct):
    type: str = ""
    message: str = ""


class _Event(msgspec.Struct):  # every stream event, by its `type`
    type: str
    index: int = 0
    message: _Message | None = None
    content_block: _Block | None = None
    delta: _Delta | None = None
    usage: _Usage | None = None
    error: _Error | None = None


_MESSAGE: Final = msgspec.json.Decoder(_Message)
_EVENT: Final = msgspec.json.Decoder(_Event)

# --- request ---------------------------------------------------------------------------


def messages_payload(
    request: ChatRequest, model: str, *, default_max_tokens: int, stream: bool
) -> dict[str, Any]:
    """The Messages API body for `request`, sent to the upstream model `model`."""
    max_tokens = request.max_tokens if request.max_tokens is not None else default_max_tokens
    body: dict[str, Any] = {"model": model, "max_tokens": max_tokens}
    system = _system(request)
    if system:
        body["system"] = system
    body["messages"] = _messages(request.messages)
    if request.temperature is not None:
        body["temperature"] = min(request.temperature, 1.0)
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.top_k is not None:
        body["top_k"] = request.top_k
    if request.stop:
        body["stop_sequences"] = request.stop
    if request.user:
        body["metadata"] = {"user_id": request.user}
    if request.tools:
        body["tools"] = [_tool(t.name, t.description, t.parameters) for t in request.tools]
        if request.tool_choice is not None:
            body["tool_choice"] = _tool_choice(request.tool_choice)
    if stream:
        body["stream"] = True
    return body


def _system(request: ChatRequest) -> str | None:
    text = request.system_text()
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return text
    instruction = JSON_ONLY
    if fmt.type == "json_schema" and fmt.schema:
        schema = msgspec.json.encode(fmt.schema).decode()
        instruction += f" It must conform to this JSON Schema:\n{schema}"
    return f"{text}\n\n{instruction}" if text else instruction


def _messages(messages: list[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        role = "assistant" if m.role == "assistant" else "user"
        if m.role == "tool":
            blocks = [_tool_result(m.tool_call_id or "", m.text(), is_error=False)]
        else:
            blocks = [_block(p) for p in m.content if not (isinstance(p, TextPart) and not p.text)]
            blocks.extend(_tool_use(c) for c in m.tool_calls)
        if not blocks:
            continue  # Anthropic refuses empty turns
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return out


def _block(p: Part) -> dict[str, Any]:
    if isinstance(p, TextPart):
        return {"type": "text", "text": p.text}
    if isinstance(p, ImagePart):
        return {"type": "image", "source": _image_source(p.url)}
    return _tool_result(p.tool_call_id, p.content, is_error=p.is_error)


def _image_source(url: str) -> dict[str, str]:
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header[5:].split(";", 1)[0]
        return {"type": "base64", "media_type": media_type, "data": data}
    return {"type": "url", "url": url}


def _tool_result(tool_use_id: str, content: str, *, is_error: bool) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_use_id, "content": content}
    if is_error:
        block["is_error"] = True
    return block


def _tool_use(call: ToolCall) -> dict[str, Any]:
    try:
        args = msgspec.json.decode(call.arguments or "{}", type=dict[str, Any])
    except msgspec.DecodeError:  # not JSON, or not an object
        args = {}
    return {"type": "tool_use", "id": call.id, "name": call.name, "input": args}


def _tool(name: str, description: str | None, schema: dict[str, Any]) -> dict[str, Any]:
    if description is None:
        return {"name": name, "input_schema": schema}
    return {"name": name, "description": description, "input_schema": schema}


def _tool_choice(choice: ToolChoice) -> dict[str, Any]:
    out: dict[str, Any] = {"type": _TOOL_CHOICE[choice.mode]}
    if choice.mode == "tool":
        out["name"] = choice.name or ""
    if choice.parallel is False and choice.mode != "none":
        out["disable_parallel_tool_use"] = True
    return out


# --- response --------------------------------------------------------------------------


def parse_message(data: bytes, provider: str, *, now: int) -> ChatResponse:
    """A Messages API answer; `now` is its `created` (Anthropic gives none)."""
    m = decode(data, _MESSAGE, provider)
    texts: list[str] = []
    calls: list[ToolCall] = []
    for b in m.content:
        if b.type == "text":
            texts.append(b.text or "")
        elif b.type == "tool_use":
            calls.append(ToolCall(id=b.id or "", name=b.name or "", arguments=_arguments(b.input)))
    reason = STOP_REASONS.get(m.stop_reason or "end_turn", "stop")
    choice = Choice(text="".join(texts), tool_calls=calls, finish_reason=reason)
    return ChatResponse(
        id=m.id,
        model=m.model,
        created=now,
        choices=[choice],
        usage=_usage(m.usage or _Usage()),
        stop_sequence=m.stop_sequence,
    )


def _arguments(raw: msgspec.Raw) -> str:
    return bytes(raw).decode() if len(raw) else "{}"


def _usage(u: _Usage) -> Usage:
    read = u.cache_read_input_tokens or 0
    write = u.cache_creation_input_tokens or 0
    return Usage(
        input_tokens=(u.input_tokens or 0) + read + write,
        output_tokens=u.output_tokens or 0,
        cached_input_tokens=read,
        cache_write_tokens=write,
    )


def _combine(responses: list[ChatResponse]) -> ChatResponse:
    """n answers to one request, as one answer with n choices."""
    first = responses[0]
    choices = [msgspec.structs.replace(r.choices[0], index=i) for i, r in enumerate(responses)]
    usage = Usage(
        input_tokens=sum(r.usage.input_tokens for r in responses),
        output_tokens=sum(r.usage.output_tokens for r in responses),
        cached_input_tokens=sum(r.usage.cached_input_tokens for r in responses),
        cache_write_tokens=sum(r.usage.cache_write_tokens for r in responses),
    )
    return msgspec.structs.replace(first, choices=choices, usage=usage)


# --- stream ----------------------------------------------------------------------------


class _StreamState:
    """Turns stream events into StreamEvents; counts tool_use blocks and usage."""

    __slots__ = ("now", "provider", "tools", "usage", "with_args")

    def __init__(self, provider: str, now: int) -> None:
        self.provider = provider
        self.now = now
        self.usage = _Usage()
        self.tools: dict[int, int] = {}  # content block index -> tool index
        self.with_args: set[int] = set()  # tool blocks that received argument text

    def feed(self, ev: _Event) -> list[StreamEvent]:
        kind = ev.type
        if kind == "content_block_delta" and ev.delta is not None:
            return self._delta(ev.index, ev.delta)
        if kind == "content_block_start" and ev.content_block is not None:
            return self._block_start(ev.index, ev.content_block)
        if kind == "content_block_stop" and ev.index in self.tools:
            if ev.index in self.with_args:
                return []
            return [StreamToolCallDelta(tool_index=self.tools[ev.index], arguments="{}")]
        if kind == "message_delta":
            return self._message_delta(ev)
        if kind == "message_start" and ev.message is not None:
            self._add_usage(ev.message.usage)
            return [StreamStart(id=ev.message.id, model=ev.message.model, created=self.now)]
        if kind == "error":
            raise _stream_error(self.provider, ev.error or _Error())
        return []  # ping, and kinds added after this was written

    def _delta(self, index: int, d: _Delta) -> list[StreamEvent]:
        if d.type == "text_delta" and d.text:
            return [StreamTextDelta(text=d.text)]
        if d.type == "input_json_delta" and d.partial_json and index in self.tools:
            self.with_args.add(index)
            return [StreamToolCallDelta(tool_index=self.tools[index], arguments=d.partial_json)]
        return []  # thinking, signatures, citations

    def _block_start(self, index: int, b: _Block) -> list[StreamEvent]:
        if b.type == "tool_use":
            tool_index = self.tools[index] = len(self.tools)
            return [StreamToolCallStart(tool_index=tool_index, id=b.id or "", name=b.name or "")]
        if b.type == "text" and b.text:
            return [StreamTextDelta(text=b.text)]
        return []

    def _message_delta(self, ev: _Event) -> list[StreamEvent]:
        self._add_usage(ev.usage)
        d = ev.delta
        if d is None or d.stop_reason is None:
            return []
        reason = STOP_REASONS.get(d.stop_reason, "stop")
        return [StreamFinish(finish_reason=reason, stop_sequence=d.stop_sequence)]

    def _add_usage(self, u: _Usage | None) -> None:
        # message_delta's counts are cumulative: the latest value of each wins.
        if u is None:
            return
        for field in _Usage.__struct_fields__:
            value = getattr(u, field)
            if value is not None:
                setattr(self.usage, field, value)


def _stream_error(provider: str, err: _Error) -> UpstreamError:
    message = f"{provider}: {(err.message or err.type or 'error in the stream')[:500]}"
    if err.type == "rate_limit_error":
        return UpstreamRateLimited(message, upstream_status=429)
    if err.type == "overloaded_error":
        return UpstreamError(message, upstream_status=529)
    if err.type == "api_error":
        return UpstreamError(message, upstream_status=500)
    return UpstreamError(message)


# --- the provider ----------------------------------------------------------------------


class AnthropicProvider:
    """Anthropic's Messages API, or a server that copies it."""

    system: str = "anthropic"

    def __init__(
        self,
        name: str,
        config: AnthropicProviderConfig,
        *,
        session: aiohttp.ClientSession,
        api_key: str | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self._session = session
        self._url = f"{config.base_url.rstrip('/')}/v1/messages"
        self._max_tokens = config.default_max_tokens
        headers = dict(config.headers)
        headers["anthropic-version"] = config.anthropic_version
        headers["Content-Type"] = "application/json"
        if api_key:
            headers["x-api-key"] = api_key
        self._headers = headers
        self._clock = clock

    def _body(self, request: ChatRequest, model: str, *, stream: bool) -> bytes:
        payload = messages_payload(
            request, model, default_max_tokens=self._max_tokens, stream=stream
        )
        return msgspec.json.encode(payload)

    async def chat(self, request: ChatRequest, *, model: str, timeout: float) -> ChatResponse:
        body = self._body(request, model, stream=False)
        if request.n <= 1:
            return await self._chat_once(body, timeout)
        try:
            async with asyncio.TaskGroup() as tasks:
                calls = [
                    tasks.create_task(self._chat_once(body, timeout)) for _ in range(request.n)
                ]
        except BaseExceptionGroup as group:
            # One failure cancels the others; the router sees that one, as for n == 1.
            first = group.exceptions[0]
            raise first from first.__cause__
        return _combine([c.result() for c in calls])

    async def _chat_once(self, body: bytes, timeout: float) -> ChatResponse:
        data = await post_json(
            self._session, self._url, body, self._headers, provider=self.name, timeout=timeout
        )
        return parse_message(data, self.name, now=int(self._clock()))

    async def stream(
        self, request: ChatRequest, *, model: str, timeout: float
    ) -> AsyncIterator[StreamEvent]:
        """See `Provider.stream`; the request is streamed whatever its `stream` says."""
        if request.n > 1:
            raise UnsupportedOperation(f"{self.name}: streaming with n > 1 is not supported")
        body = self._body(request, model, stream=True)
        state = _StreamState(self.name, int(self._clock()))
        sse = stream_sse(
            self._session, self._url, body, self._headers, provider=self.name, timeout=timeout
        )
        async with aclosing(sse):
            async for name, data in sse:
                if name == b"ping":
                    continue
                event = decode(data, _EVENT, self.name)
                if event.type == "message_stop":
                    break
                for out in state.feed(event):
                    yield out
            else:
                raise UpstreamError(f"{self.name}: the stream ended before message_stop")
        yield StreamUsage(usage=_usage(state.usage))

    async def embed(
        self, request: EmbeddingRequest, *, model: str, timeout: float
    ) -> EmbeddingResponse:
        raise UnsupportedOperation(f"{self.name}: Anthropic has no embeddings API")

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None
