"""Anthropic adapter: golden request bodies, and recorded answers parsed whole,
non-streamed and streamed, over real HTTP."""

from __future__ import annotations

from typing import Any

import aiohttp
import msgspec
import pytest
from upstream_server import NOW, Reply, Upstream, assemble, chunked, collect

from lockgate.config.schema import AnthropicProviderConfig
from lockgate.core.types import (
    ChatRequest,
    ChatResponse,
    Choice,
    EmbeddingRequest,
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
from lockgate.errors import UnsupportedOperation, UpstreamError, UpstreamRateLimited
from lockgate.providers.anthropic import JSON_ONLY, AnthropicProvider, messages_payload
from lockgate.providers.base import Provider

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def anthropic(upstream: Upstream, session: aiohttp.ClientSession) -> AnthropicProvider:
    config = AnthropicProviderConfig(
        type="anthropic",
        base_url=upstream.url + "/",
        headers={"anthropic-beta": "prompt-caching-2024-07-31"},
    )
    return AnthropicProvider(
        "claude", config, session=session, api_key="sk-ant-test-123456", clock=lambda: NOW
    )


def ask(text: str = "hi", **kw: Any) -> ChatRequest:
    return ChatRequest(
        model="gw", messages=[Message(role="user", content=[TextPart(text=text)])], **kw
    )


def payload(request: ChatRequest, stream: bool = False) -> dict[str, Any]:
    return messages_payload(
        request, "claude-sonnet-4-20250514", default_max_tokens=4096, stream=stream
    )


# --- request ---------------------------------------------------------------------------

FULL_REQUEST = ChatRequest(
    model="gw",
    system="You are terse.",
    messages=[
        Message(role="system", content=[TextPart(text="Use metric units.")]),
        Message(
            role="user",
            content=[
                TextPart(text="Weather in Paris and Oslo?"),
                ImagePart(url="data:image/png;base64,iVBORw0KGgo="),
                ImagePart(url="https://example.com/map.png", detail="high"),
            ],
        ),
        Message(
            role="assistant",
            content=[TextPart(text="Let me check."), TextPart(text="")],
            tool_calls=[
                ToolCall(id="toolu_1", name="get_weather", arguments='{"city": "Paris"}'),
                ToolCall(id="toolu_2", name="get_weather", arguments="not json"),
                ToolCall(id="toolu_3", name="get_weather", arguments='["a list"]'),
            ],
        ),
        Message(role="tool", tool_call_id="toolu_1", content=[TextPart(text="18C")]),
        Message(role="tool", tool_call_id="toolu_2", content=[TextPart(text="9C")]),
        Message(
            role="user",
            content=[
                ToolResultPart(tool_call_id="toolu_3", content="boom", is_error=True),
                TextPart(text="Which is warmer?"),
            ],
        ),
        Message(role="user", content=[TextPart(text="And tomorrow?")]),
        Message(role="assistant", content=[TextPart(text="")]),
    ],
    temperature=1.5,
    top_p=0.9,
    top_k=40,
    stop=["###"],
    n=1,
    seed=7,
    user="u-1",
    tools=[
        ToolSpec(name="get_weather", description="Current weather", parameters=WEATHER, strict=True)
    ],
    tool_choice=ToolChoice(mode="tool", name="get_weather", parallel=False),
    response_format=ResponseFormat(type="json_schema", name="answer", schema={"type": "object"}),
    presence_penalty=0.1,
    frequency_penalty=0.2,
)

FULL_PAYLOAD: dict[str, Any] = {
    "model": "claude-sonnet-4-20250514",
    "max_tokens": 4096,
    "system": f'You are terse.\n\nUse metric units.\n\n{JSON_ONLY} It must conform to this JSON Schema:\n{{"type":"object"}}',
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather in Paris and Oslo?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/map.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}},
                {"type": "tool_use", "id": "toolu_3", "name": "get_weather", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "9C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_3",
                    "content": "boom",
                    "is_error": True,
                },
                {"type": "text", "text": "Which is warmer?"},
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
    ],
    "temperature": 1.0,
    "top_p": 0.9,
    "top_k": 40,
    "stop_sequences": ["###"],
    "metadata": {"user_id": "u-1"},
    "tools": [{"name": "get_weather", "description": "Current weather", "input_schema": WEATHER}],
    "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
}


@pytest.mark.parametrize("stream", [False, True])
def test_full_request_payload(stream: bool) -> None:
    expected = FULL_PAYLOAD | ({"stream": True} if stream else {})
    assert payload(FULL_REQUEST, stream) == expected


_T = [ToolSpec(name="t")]
_T_WIRE: list[dict[str, Any]] = [
    {"name": "t", "input_schema": {"type": "object", "properties": {}}}
]


SMALL_REQUESTS: list[tuple[ChatRequest, dict[str, Any]]] = [
    (ask(), {}),
    (ask(max_tokens=10, temperature=0.5), {"max_tokens": 10, "temperature": 0.5}),
    (ask(tool_choice=ToolChoice(mode="none")), {}),  # no tools: no choice to send
    (
        ask(tools=_T, tool_choice=ToolChoice(mode="auto")),
        {"tools": _T_WIRE, "tool_choice": {"type": "auto"}},
    ),
    (
        ask(tools=_T, tool_choice=ToolChoice(mode="none", parallel=False)),
        {"tools": _T_WIRE, "tool_choice": {"type": "none"}},
    ),
    (
        ask(tools=_T, tool_choice=ToolChoice(mode="required", parallel=False)),
        {"tools": _T_WIRE, "tool_choice": {"type": "any", "disable_parallel_tool_use": True}},
    ),
    (
        ask(tools=_T, tool_choice=ToolChoice(mode="required", parallel=True)),
        {"tools": _T_WIRE, "tool_choice": {"type": "any"}},
    ),
    (ask(response_format=ResponseFormat(type="json_object")), {"system": JSON_ONLY}),
    (ask(response_format=ResponseFormat(type="text"), system="S"), {"system": "S"}),
]


@pytest.mark.parametrize(("request_", "extra"), SMALL_REQUESTS)
def test_small_request_payloads(request_: ChatRequest, extra: dict[str, Any]) -> None:
    expected = {
        "model": "claude-sonnet-4-20250514",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    }
    assert payload(request_) == expected | extra


@pytest.mark.parametrize("stream", [False, True])
async def test_request_on_the_wire(
    upstream: Upstream, session: aiohttp.ClientSession, stream: bool
) -> None:
    upstream.script(Reply(body=TEXT_JSON) if not stream else Reply(chunks=[TEXT_SSE]))
    provider = anthropic(upstream, session)
    if stream:
        await collect(provider.stream(FULL_REQUEST, model="claude-sonnet-4-20250514", timeout=5))
    else:
        await provider.chat(FULL_REQUEST, model="claude-sonnet-4-20250514", timeout=5)
    [sent] = upstream.requests
    assert (sent.method, sent.path_qs) == ("POST", "/v1/messages")
    assert msgspec.json.decode(sent.body) == payload(FULL_REQUEST, stream)
    assert sent.headers["x-api-key"] == "sk-ant-test-123456"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert sent.headers["Content-Type"] == "application/json"


# --- recorded answers ------------------------------------------------------------------

# Extended thinking, then text that stopped on a stop sequence.
TEXT_JSON = b"""{
  "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
  "type": "message",
  "role": "assistant",
  "model": "claude-sonnet-4-20250514",
  "content": [
    {"type": "thinking", "thinking": "Compare 18 and 9.", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"},
    {"type": "text", "text": "Paris is warmer."}
  ],
  "stop_reason": "stop_sequence",
  "stop_sequence": "###",
  "usage": {"input_tokens": 25, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 21, "service_tier": "standard"}
}"""
TEXT_SSE = b"""event: message_start
data: {"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-20250514","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1,"service_tier":"standard"}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Compare 18 and 9."}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Paris is"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":" warmer."}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"stop_sequence","stop_sequence":"###"},"usage":{"output_tokens":21}}

event: message_stop
data: {"type":"message_stop"}

"""
TEXT_USAGE = Usage(input_tokens=25, output_tokens=21)
TEXT_RESPONSE = ChatResponse(
    id="msg_01XFDUDYJgAACzvnptvVoYEL",
    model="claude-sonnet-4-20250514",
    created=NOW,
    choices=[Choice(text="Paris is warmer.", finish_reason="stop")],
    usage=TEXT_USAGE,
    stop_sequence="###",
)
TEXT_EVENTS: list[StreamEvent] = [
    StreamStart(id="msg_01XFDUDYJgAACzvnptvVoYEL", model="claude-sonnet-4-20250514", created=NOW),
    StreamTextDelta(text="Paris is"),
    StreamTextDelta(text=" warmer."),
    StreamFinish(finish_reason="stop", stop_sequence="###"),
    StreamUsage(usage=TEXT_USAGE),
]

# Text, then two tool calls (the second without arguments), with a prompt-cache read.
TOOLS_JSON = b"""{
  "id": "msg_014p7gG3wDgGV9EUtLvnow3U",
  "type": "message",
  "role": "assistant",
  "model": "claude-3-5-haiku-20241022",
  "content": [
    {"type": "text", "text": "Okay, let me check."},
    {"type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather", "input": {"location": "San Francisco, CA", "unit": "fahrenheit"}},
    {"type": "tool_use", "id": "toolu_01VKN6HiBv4uGhBXQDD2bdtc", "name": "get_time", "input": {}}
  ],
  "stop_reason": "tool_use",
  "stop_sequence": null,
  "usage": {"input_tokens": 472, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 2048, "output_tokens": 89}
}"""
TOOLS_SSE = b"""event: message_start
data: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-3-5-haiku-20241022","stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":100,"cache_read_input_tokens":2048,"output_tokens":2},"content":[],"stop_reason":null}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Okay, let me check."}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\\"location\\": \\"San Fra"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ncisco, CA\\", \\"unit\\": \\"fahrenheit\\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_01VKN6HiBv4uGhBXQDD2bdtc","name":"get_time","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

"""
TOOLS_USAGE = Usage(
    input_tokens=2620, output_tokens=89, cached_input_tokens=2048, cache_write_tokens=100
)
TOOLS_RESPONSE = ChatResponse(
    id="msg_014p7gG3wDgGV9EUtLvnow3U",
    model="claude-3-5-haiku-20241022",
    created=NOW,
    choices=[
        Choice(
            text="Okay, let me check.",
            tool_calls=[
                ToolCall(
                    id="toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                    name="get_weather",
                    arguments='{"location": "San Francisco, CA", "unit": "fahrenheit"}',
                ),
                ToolCall(id="toolu_01VKN6HiBv4uGhBXQDD2bdtc", name="get_time", arguments="{}"),
            ],
            finish_reason="tool_calls",
        )
    ],
    usage=TOOLS_USAGE,
)
TOOLS_EVENTS: list[StreamEvent] = [
    StreamStart(id="msg_014p7gG3wDgGV9EUtLvnow3U", model="claude-3-5-haiku-20241022", created=NOW),
    StreamTextDelta(text="Okay, let me check."),
    StreamToolCallStart(tool_index=0, id="toolu_01T1x1fJ34qAmk2tNTrN7Up6", name="get_weather"),
    StreamToolCallDelta(tool_index=0, arguments='{"location": "San Fra'),
    StreamToolCallDelta(tool_index=0, arguments='ncisco, CA", "unit": "fahrenheit"}'),
    StreamToolCallStart(tool_index=1, id="toolu_01VKN6HiBv4uGhBXQDD2bdtc", name="get_time"),
    StreamToolCallDelta(tool_index=1, arguments="{}"),
    StreamFinish(finish_reason="tool_calls"),
    StreamUsage(usage=TOOLS_USAGE),
]

SCENARIOS = {
    "thinking-stop-sequence": (TEXT_JSON, TEXT_SSE, TEXT_RESPONSE, TEXT_EVENTS),
    "text-and-tools-cached": (TOOLS_JSON, TOOLS_SSE, TOOLS_RESPONSE, TOOLS_EVENTS),
}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_recorded_answers(
    upstream: Upstream, session: aiohttp.ClientSession, scenario: str, stream: bool
) -> None:
    body, sse, response, events = SCENARIOS[scenario]
    provider = anthropic(upstream, session)
    if not stream:
        upstream.script(Reply(body=body))
        assert await provider.chat(ask(), model="m", timeout=5) == response
    else:
        upstream.script(Reply(chunks=chunked(sse, 41)))
        got = await collect(provider.stream(ask(), model="m", timeout=5))
        assert got == events
        assert assemble(got) == response


def _message(stop_reason: str, text: str = "x", output: int = 1) -> bytes:
    return msgspec.json.encode(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude",
            "content": [{"type": "text", "text": text}],
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": output},
        }
    )


def _sse(stop_reason: str) -> bytes:
    return (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","model":"claude","usage":{"input_tokens":10,"output_tokens":1}}}\n\n'
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"'
        + stop_reason.encode()
        + b'","stop_sequence":null},"usage":{"output_tokens":1}}\n\n'
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("something_new", "stop"),
    ],
)
async def test_stop_reasons(
    upstream: Upstream,
    session: aiohttp.ClientSession,
    stop_reason: str,
    finish: FinishReason,
    stream: bool,
) -> None:
    provider = anthropic(upstream, session)
    if not stream:
        upstream.script(Reply(body=_message(stop_reason)))
        got = await provider.chat(ask(), model="m", timeout=5)
        assert got.choices == [Choice(text="x", finish_reason=finish)]
    else:
        upstream.script(Reply(chunks=[_sse(stop_reason)]))
        got_events = await collect(provider.stream(ask(), model="m", timeout=5))
        assert got_events[1] == StreamFinish(finish_reason=finish)


async def test_n_parallel_requests_are_combined(
    upstream: Upstream, session: aiohttp.ClientSession
) -> None:
    upstream.script(
        Reply(body=_message("end_turn", "one", 3)), Reply(body=_message("max_tokens", "two", 5))
    )
    got = await anthropic(upstream, session).chat(ask(n=2), model="m", timeout=5)
    assert sorted(c.text for c in got.choices) == ["one", "two"]  # the order of arrival may vary
    assert [c.index for c in got.choices] == [0, 1]
    assert got.usage == Usage(input_tokens=20, output_tokens=8)
    assert len(upstream.requests) == 2
    assert upstream.requests[0].body == upstream.requests[1].body


async def test_n_parallel_requests_fail_as_one(
    upstream: Upstream, session: aiohttp.ClientSession
) -> None:
    upstream.script(
        Reply(body=_message("end_turn")), Reply(status=429, headers={"retry-after": "3"})
    )
    with pytest.raises(UpstreamRateLimited) as info:
        await anthropic(upstream, session).chat(ask(n=2), model="m", timeout=5)
    assert info.value.retry_after == 3.0


async def test_streaming_n_over_one_is_unsupported(
    upstream: Upstream, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(UnsupportedOperation):
        await collect(anthropic(upstream, session).stream(ask(n=2), model="m", timeout=5))
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("error", "kind", "status"),
    [
        ('{"type":"overloaded_error","message":"Overloaded"}', UpstreamError, 529),
        ('{"type":"api_error","message":"Internal server error"}', UpstreamError, 500),
        ('{"type":"rate_limit_error","message":"Rate limited"}', UpstreamRateLimited, 429),
        ('{"type":"invalid_request_error","message":"Bad"}', UpstreamError, None),
    ],
)
async def test_error_event_mid_stream(
    upstream: Upstream,
    session: aiohttp.ClientSession,
    error: str,
    kind: type[UpstreamError],
    status: int | None,
) -> None:
    stream = _sse("end_turn").split(b"event: message_delta")[0] + (
        b"event: error\ndata: " + f'{{"type":"error","error":{error}}}'.encode() + b"\n\n"
    )
    upstream.script(Reply(chunks=[stream]))
    got: list[StreamEvent] = []
    with pytest.raises(kind) as info:
        async for event in anthropic(upstream, session).stream(ask(), model="m", timeout=5):
            got.append(event)
    assert type(info.value) is kind
    assert (info.value.upstream_status, info.value.retryable) == (status, True)
    assert info.value.message == "claude: " + msgspec.json.decode(error)["message"]
    assert got == [StreamStart(id="msg_1", model="claude", created=NOW)]


async def test_stream_without_message_stop_is_an_error(
    upstream: Upstream, session: aiohttp.ClientSession
) -> None:
    upstream.script(Reply(chunks=[_sse("end_turn").split(b"event: message_stop")[0]]))
    with pytest.raises(UpstreamError, match="the stream ended before message_stop"):
        await collect(anthropic(upstream, session).stream(ask(), model="m", timeout=5))


async def test_embeddings_are_unsupported_and_the_protocol_holds(
    upstream: Upstream, session: aiohttp.ClientSession
) -> None:
    provider = anthropic(upstream, session)
    assert isinstance(provider, Provider)
    assert provider.system == "anthropic"
    await provider.start()
    with pytest.raises(UnsupportedOperation):
        await provider.embed(EmbeddingRequest(model="m", input=["a"]), model="m", timeout=5)
    await provider.aclose()
