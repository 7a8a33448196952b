"""The OpenAI wire dialect: chat completions and embeddings, as spoken by OpenAI and by
the servers that copy it (vLLM, llama.cpp, Ollama, LM Studio ...).

`OpenAICompatible` holds the dialect; an endpoint says only where to send it and how
to authenticate (`OpenAIProvider` here, `AzureOpenAIProvider` beside it).

Choices made for the broadest compatibility:
- `max_tokens` is sent, not `max_completion_tokens` (which the compatible servers and
  older Azure API versions do not know; OpenAI's reasoning models need the latter).
- `top_k` and `metadata` are not sent: OpenAI rejects `top_k`, and `metadata` needs `store`.
- A `ToolResultPart` becomes a `role: tool` message before the rest of its user turn;
  its `is_error` has no OpenAI equivalent and is dropped.
- A stream always asks for `stream_options.include_usage`, so usage is known; the
  usage is yielded last, after every `StreamFinish`.
- Embeddings are always requested as floats; a base64 answer is decoded anyway.
"""

from __future__ import annotations

import base64
import sys
import time
import uuid
from array import array
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import aclosing
from typing import Any, Final

import aiohttp
import msgspec

from lockgate.config.schema import OpenAIProviderConfig
from lockgate.core.types import (
    ChatRequest,
    ChatResponse,
    Choice,
    EmbeddingRequest,
    EmbeddingResponse,
    FinishReason,
    ImagePart,
    Message,
    ResponseFormat,
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
    ToolResultPart,
    ToolSpec,
    Usage,
)
from lockgate.errors import UpstreamError
from lockgate.providers._http import decode, post_json, stream_sse

__all__ = [
    "OpenAICompatible",
    "OpenAIProvider",
    "chat_payload",
    "embedding_payload",
    "parse_chat",
    "parse_embeddings",
]

FINISH_REASONS: Final[Mapping[str, FinishReason]] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
_SCALARS: Final = (
    "max_tokens",
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "user",
)

# --- the upstream's answers ------------------------------------------------------------


class _Function(msgspec.Struct):
    name: str | None = None
    arguments: str | dict[str, Any] | None = None  # some servers send an object


class _ToolCall(msgspec.Struct):
    index: int = 0
    id: str | None = None
    function: _Function | None = None


class _Message(msgspec.Struct):  # a response's message or a chunk's delta
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _Choice(msgspec.Struct):
    index: int = 0
    message: _Message | None = None
    delta: _Message | None = None
    finish_reason: str | None = None


class _Details(msgspec.Struct):
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_tokens_details: _Details | None = None
    completion_tokens_details: _Details | None = None


class _Error(msgspec.Struct):
    message: str | None = None


class _Completion(msgspec.Struct):  # a response, or one chunk of a stream
    id: str = ""
    model: str = ""
    created: int = 0
    choices: list[_Choice] | None = None
    usage: _Usage | None = None
    error: _Error | str | None = None


class _Embedding(msgspec.Struct):
    embedding: list[float] | str
    index: int = 0


class _EmbeddingList(msgspec.Struct):
    data: list[_Embedding]
    model: str = ""
    usage: _Usage | None = None


_COMPLETION: Final = msgspec.json.Decoder(_Completion)
_EMBEDDINGS: Final = msgspec.json.Decoder(_EmbeddingList)

# --- request ---------------------------------------------------------------------------


def chat_payload(request: ChatRequest, model: str, *, stream: bool) -> dict[str, Any]:
    """The chat.completions body for `request`, sent to the upstream model `model`."""
    body: dict[str, Any] = {"model": model, "messages": _messages(request)}
    for key in _SCALARS:
        value = getattr(request, key)
        if value is not None:
            body[key] = value
    if request.stop:
        body["stop"] = request.stop
    if request.n != 1:
        body["n"] = request.n
    if request.tools:
        body["tools"] = [_tool(t) for t in request.tools]
        if request.tool_choice is not None:
            _tool_choice(request.tool_choice, body)
    elif request.tool_choice is not None and request.tool_choice.mode == "none":
        body["tool_choice"] = "none"
    if request.response_format is not None and request.response_format.type != "text":
        body["response_format"] = _response_format(request.response_format)
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _messages(request: ChatRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if request.system:
        out.append({"role": "system", "content": request.system})
    for m in request.messages:
        if m.role == "assistant":
            out.append(_assistant(m))
        elif m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id or "", "content": m.text()})
        elif m.role == "system":
            out.append(_named({"role": "system", "content": m.text()}, m))
        elif len(m.content) == 1 and isinstance(m.content[0], TextPart):
            out.append(_named({"role": "user", "content": m.content[0].text}, m))
        else:
            _user(m, out)
    return out


def _named(msg: dict[str, Any], m: Message) -> dict[str, Any]:
    if m.name:
        msg["name"] = m.name
    return msg


def _user(m: Message, out: list[dict[str, Any]]) -> None:
    parts: list[dict[str, Any]] = []
    for p in m.content:
        if isinstance(p, ToolResultPart):
            out.append({"role": "tool", "tool_call_id": p.tool_call_id, "content": p.content})
        elif isinstance(p, TextPart):
            parts.append({"type": "text", "text": p.text})
        else:
            parts.append({"type": "image_url", "image_url": _image(p)})
    if parts or not m.content:
        content = parts[0]["text"] if len(parts) == 1 and parts[0]["type"] == "text" else parts
        out.append(_named({"role": "user", "content": content or ""}, m))


def _image(p: ImagePart) -> dict[str, str]:
    return {"url": p.url, "detail": p.detail} if p.detail else {"url": p.url}


def _assistant(m: Message) -> dict[str, Any]:
    text = m.text()
    if not m.tool_calls:
        return _named({"role": "assistant", "content": text}, m)
    calls = [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in m.tool_calls
    ]
    return _named({"role": "assistant", "content": text or None, "tool_calls": calls}, m)


def _tool(t: ToolSpec) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": t.name}
    if t.description is not None:
        fn["description"] = t.description
    fn["parameters"] = t.parameters
    if t.strict is not None:
        fn["strict"] = t.strict
    return {"type": "function", "function": fn}


def _tool_choice(choice: ToolChoice, body: dict[str, Any]) -> None:
    if choice.mode == "tool":
        body["tool_choice"] = {"type": "function", "function": {"name": choice.name or ""}}
    else:
        body["tool_choice"] = choice.mode
    if choice.parallel is not None:
        body["parallel_tool_calls"] = choice.parallel


def _response_format(fmt: ResponseFormat) -> dict[str, Any]:
    if fmt.type == "json_object":
        return {"type": "json_object"}
    spec: dict[str, Any] = {"name": fmt.name or "response", "schema": fmt.schema or {}}
    if fmt.strict is not None:
        spec["strict"] = fmt.strict
    return {"type": "json_schema", "json_schema": spec}


def embedding_payload(request: EmbeddingRequest, model: str) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "input": request.input, "encoding_format": "float"}
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    if request.user is not None:
        body["user"] = request.user
    return body


# --- response --------------------------------------------------------------------------


def parse_chat(data: bytes, provider: str, *, now: int) -> ChatResponse:
    """A chat.completions answer; `now` stands in for a missing `created`."""
    c = decode(data, _COMPLETION, provider)
    _raise_error(c, provider)
    return ChatResponse(
        id=c.id,
        model=c.model,
        created=c.created or now,
        choices=[_choice(ch) for ch in c.choices or ()],
        usage=_usage(c.usage),
    )


def _raise_error(c: _Completion, provider: str) -> None:
    if c.error is not None:
        text = c.error if isinstance(c.error, str) else c.error.message
        raise UpstreamError(f"{provider}: {(text or 'error in the answer')[:500]}")


def _choice(ch: _Choice) -> Choice:
    msg = ch.message or _Message()
    calls = [
        ToolCall(id=tc.id or _new_id(), name=tc.function.name or "", arguments=_args(tc.function))
        for tc in msg.tool_calls or ()
        if tc.function is not None
    ]
    return Choice(
        index=ch.index,
        text=msg.content or "",
        tool_calls=calls,
        finish_reason=FINISH_REASONS.get(ch.finish_reason or "stop", "stop"),
        refusal=msg.refusal,
    )


def _args(fn: _Function) -> str:
    args = fn.arguments
    if args is None:
        return ""
    return args if isinstance(args, str) else msgspec.json.encode(args).decode()


def _new_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _usage(u: _Usage | None) -> Usage:
    if u is None:
        return Usage()
    pd, cd = u.prompt_tokens_details, u.completion_tokens_details
    return Usage(
        input_tokens=u.prompt_tokens or 0,
        output_tokens=u.completion_tokens or 0,
        cached_input_tokens=(pd.cached_tokens or 0) if pd else 0,
        reasoning_tokens=(cd.reasoning_tokens or 0) if cd else 0,
    )


def parse_embeddings(data: bytes, provider: str) -> EmbeddingResponse:
    e = decode(data, _EMBEDDINGS, provider)
    items = sorted(e.data, key=lambda d: d.index)
    return EmbeddingResponse(
        model=e.model, data=[_vector(d.embedding) for d in items], usage=_usage(e.usage)
    )


def _vector(v: list[float] | str) -> list[float]:
    if not isinstance(v, str):
        return v
    floats = array("f")
    floats.frombytes(base64.b64decode(v))
    if sys.byteorder == "big":
        floats.byteswap()
    return floats.tolist()


# --- stream ----------------------------------------------------------------------------


class _StreamState:
    """Turns chunks into StreamEvents; keeps what a chunk alone cannot say."""

    __slots__ = ("finished", "now", "provider", "started", "tools", "usage")

    def __init__(self, provider: str, now: int) -> None:
        self.provider = provider
        self.now = now
        self.started = False
        self.finished = False
        self.tools: set[tuple[int, int]] = set()  # (choice, tool index) already started
        self.usage: Usage | None = None

    def feed(self, c: _Completion) -> list[StreamEvent]:
        _raise_error(c, self.provider)
        out: list[StreamEvent] = []
        if not self.started:
            if not c.id and not c.choices and c.usage is None:
                return out  # Azure's leading prompt-filter chunk
            self.started = True
            out.append(StreamStart(id=c.id, model=c.model, created=c.created or self.now))
        for ch in c.choices or ():
            d = ch.delta
            if d is not None:
                if d.content:
                    out.append(StreamTextDelta(text=d.content, index=ch.index))
                if d.refusal:
                    out.append(StreamTextDelta(text=d.refusal, index=ch.index))
                if d.tool_calls:
                    self._tools(d.tool_calls, ch.index, out)
            if ch.finish_reason:
                self.finished = True
                reason = FINISH_REASONS.get(ch.finish_reason, "stop")
                out.append(StreamFinish(finish_reason=reason, index=ch.index))
        if c.usage is not None:
            self.usage = _usage(c.usage)
        return out

    def _tools(self, calls: list[_ToolCall], index: int, out: list[StreamEvent]) -> None:
        for tc in calls:
            fn = tc.function or _Function()
            key = (index, tc.index)
            if key not in self.tools and (tc.id or fn.name):
                self.tools.add(key)
                out.append(
                    StreamToolCallStart(
                        tool_index=tc.index, id=tc.id or _new_id(), name=fn.name or "", index=index
                    )
                )
            if fn.arguments:
                out.append(
                    StreamToolCallDelta(tool_index=tc.index, arguments=_args(fn), index=index)
                )

    def end(self, done: bool) -> list[StreamEvent]:
        """The closing events; `done`: the upstream sent `[DONE]`."""
        if not self.started or not (self.finished or done):
            raise UpstreamError(f"{self.provider}: the stream ended before it finished")
        # A server that says [DONE] without a finish_reason still finished.
        out: list[StreamEvent] = [] if self.finished else [StreamFinish(finish_reason="stop")]
        if self.usage is not None:
            out.append(StreamUsage(usage=self.usage))
        return out


# --- the provider ----------------------------------------------------------------------


class OpenAICompatible:
    """The OpenAI dialect over HTTP. Subclasses say where the endpoint is (`url`) and
    how to authenticate (`headers`)."""

    system: str = "openai"

    def __init__(
        self,
        name: str,
        *,
        base_url: str,
        session: aiohttp.ClientSession,
        headers: Mapping[str, str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._headers = {**headers, "Content-Type": "application/json"}
        self._clock = clock

    def url(self, model: str, path: str) -> str:
        """The URL of `path` ("chat/completions", "embeddings") for the upstream `model`."""
        return f"{self.base_url}/{path}"

    async def chat(self, request: ChatRequest, *, model: str, timeout: float) -> ChatResponse:
        payload = chat_payload(request, model, stream=False)
        data = await self._post(self.url(model, "chat/completions"), payload, timeout)
        return parse_chat(data, self.name, now=int(self._clock()))

    async def stream(
        self, request: ChatRequest, *, model: str, timeout: float
    ) -> AsyncIterator[StreamEvent]:
        """See `Provider.stream`; the request is streamed whatever its `stream` says."""
        body = msgspec.json.encode(chat_payload(request, model, stream=True))
        url = self.url(model, "chat/completions")
        state = _StreamState(self.name, int(self._clock()))
        sse = stream_sse(
            self._session, url, body, self._headers, provider=self.name, timeout=timeout
        )
        done = False
        async with aclosing(sse):
            async for _, data in sse:
                if data == b"[DONE]":
                    done = True
                    break
                for event in state.feed(decode(data, _COMPLETION, self.name)):
                    yield event
        for event in state.end(done):
            yield event

    async def embed(
        self, request: EmbeddingRequest, *, model: str, timeout: float
    ) -> EmbeddingResponse:
        payload = embedding_payload(request, model)
        data = await self._post(self.url(model, "embeddings"), payload, timeout)
        return parse_embeddings(data, self.name)

    async def _post(self, url: str, payload: dict[str, Any], timeout: float) -> bytes:
        body = msgspec.json.encode(payload)
        return await post_json(
            self._session, url, body, self._headers, provider=self.name, timeout=timeout
        )

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


class OpenAIProvider(OpenAICompatible):
    """OpenAI, or any server with an OpenAI-compatible `/v1` (`base_url`)."""

    system = "openai"

    def __init__(
        self,
        name: str,
        config: OpenAIProviderConfig,
        *,
        session: aiohttp.ClientSession,
        api_key: str | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        headers = dict(config.headers)
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        super().__init__(
            name, base_url=config.base_url, session=session, headers=headers, clock=clock
        )
