"""OpenAI and Azure OpenAI adapters: golden request bodies, and recorded answers parsed
whole, non-streamed and streamed, over real HTTP."""

from __future__ import annotations

import base64
import struct
from typing import Any

import aiohttp
import msgspec
import pytest
from upstream_server import NOW, Reply, Upstream, assemble, chunked, collect

from lockgate.config.schema import AzureOpenAIProviderConfig, OpenAIProviderConfig
from lockgate.core.types import (
    ChatRequest,
    ChatResponse,
    Choice,
    EmbeddingRequest,
    EmbeddingResponse,
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
from lockgate.providers.azure_openai import AzureOpenAIProvider
from lockgate.providers.base import Provider
from lockgate.providers.openai import OpenAIProvider, chat_payload

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}


def openai(upstream: Upstream, session: aiohttp.ClientSession) -> OpenAIProvider:
    config = OpenAIProviderConfig(
        type="openai", base_url=upstream.url + "/v1/", headers={"OpenAI-Organization": "org-1"}
    )
    return OpenAIProvider(
        "oai", config, session=session, api_key="sk-test-123456", clock=lambda: NOW
    )


def azure(upstream: Upstream, session: aiohttp.ClientSession) -> AzureOpenAIProvider:
    config = AzureOpenAIProviderConfig(type="azure_openai", base_url=upstream.url)
    return AzureOpenAIProvider(
        "az", config, session=session, api_key="azure-key-123456", clock=lambda: NOW
    )


def ask(text: str = "hi", **kw: Any) -> ChatRequest:
    return ChatRequest(
        model="gw-model", messages=[Message(role="user", content=[TextPart(text=text)])], **kw
    )


# --- request ---------------------------------------------------------------------------

FULL_REQUEST = ChatRequest(
    model="gw-model",
    system="You are terse.",
    messages=[
        Message(role="system", content=[TextPart(text="Use metric units.")]),
        Message(
            role="user",
            name="ana",
            content=[
                TextPart(text="Weather in Paris and Oslo?"),
                ImagePart(url="https://example.com/map.png", detail="low"),
            ],
        ),
        Message(
            role="assistant",
            tool_calls=[
                ToolCall(id="call_1", name="get_weather", arguments='{"city":"Paris"}'),
                ToolCall(id="call_2", name="get_weather", arguments='{"city":"Oslo"}'),
            ],
        ),
        Message(
            role="user",
            content=[
                ToolResultPart(tool_call_id="call_1", content="18C"),
                ToolResultPart(tool_call_id="call_2", content="9C", is_error=True),
                TextPart(text="Which is warmer?"),
            ],
        ),
        Message(role="assistant", content=[TextPart(text="Paris.")]),
        Message(role="tool", tool_call_id="call_3", content=[TextPart(text="late result")]),
    ],
    max_tokens=256,
    temperature=0.2,
    top_p=0.9,
    top_k=40,
    stop=["\n\n"],
    n=2,
    seed=7,
    user="u-1",
    tools=[
        ToolSpec(name="get_weather", description="Current weather", parameters=WEATHER, strict=True)
    ],
    tool_choice=ToolChoice(mode="tool", name="get_weather", parallel=False),
    response_format=ResponseFormat(
        type="json_schema", name="answer", schema={"type": "object"}, strict=True
    ),
    presence_penalty=0.1,
    frequency_penalty=0.2,
    metadata={"team": "x"},
)

FULL_PAYLOAD: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "system", "content": "Use metric units."},
        {
            "role": "user",
            "name": "ana",
            "content": [
                {"type": "text", "text": "Weather in Paris and Oslo?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://example.com/map.png", "detail": "low"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "9C"},
        {"role": "user", "content": "Which is warmer?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "tool", "tool_call_id": "call_3", "content": "late result"},
    ],
    "max_tokens": 256,
    "temperature": 0.2,
    "top_p": 0.9,
    "presence_penalty": 0.1,
    "frequency_penalty": 0.2,
    "seed": 7,
    "user": "u-1",
    "stop": ["\n\n"],
    "n": 2,
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather",
                "parameters": WEATHER,
                "strict": True,
            },
        }
    ],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "parallel_tool_calls": False,
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
    },
}


@pytest.mark.parametrize("stream", [False, True])
def test_full_request_payload(stream: bool) -> None:
    expected = dict(FULL_PAYLOAD)
    if stream:
        expected |= {"stream": True, "stream_options": {"include_usage": True}}
    assert chat_payload(FULL_REQUEST, "gpt-4o-mini", stream=stream) == expected


SMALL_REQUESTS: list[tuple[ChatRequest, dict[str, Any]]] = [
    (ask(), {}),
    (ask(tool_choice=ToolChoice(mode="none")), {"tool_choice": "none"}),
    (ask(tool_choice=ToolChoice(mode="auto")), {}),  # no tools: nothing to choose
    (
        ask(response_format=ResponseFormat(type="json_object")),
        {"response_format": {"type": "json_object"}},
    ),
    (ask(response_format=ResponseFormat(type="text")), {}),
    (
        ask(tools=[ToolSpec(name="t")], tool_choice=ToolChoice(mode="required", parallel=True)),
        {
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "t", "parameters": {"type": "object", "properties": {}}},
                }
            ],
            "tool_choice": "required",
            "parallel_tool_calls": True,
        },
    ),
]


@pytest.mark.parametrize(("request_", "extra"), SMALL_REQUESTS)
def test_small_request_payloads(request_: ChatRequest, extra: dict[str, Any]) -> None:
    expected = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}
    assert chat_payload(request_, "m", stream=False) == expected


@pytest.mark.parametrize("stream", [False, True])
async def test_request_on_the_wire(
    upstream: Upstream, session: aiohttp.ClientSession, stream: bool
) -> None:
    upstream.script(Reply(body=TEXT_JSON) if not stream else Reply(chunks=[TEXT_SSE]))
    provider = openai(upstream, session)
    if stream:
        await collect(provider.stream(FULL_REQUEST, model="gpt-4o-mini", timeout=5))
    else:
        await provider.chat(FULL_REQUEST, model="gpt-4o-mini", timeout=5)
    [sent] = upstream.requests
    assert (sent.method, sent.path_qs) == ("POST", "/v1/chat/completions")
    assert msgspec.json.decode(sent.body) == chat_payload(
        FULL_REQUEST, "gpt-4o-mini", stream=stream
    )
    assert sent.headers["Authorization"] == "Bearer sk-test-123456"
    assert sent.headers["OpenAI-Organization"] == "org-1"
    assert sent.headers["Content-Type"] == "application/json"


# --- recorded answers ------------------------------------------------------------------

TEXT_JSON = """{
  "id": "chatcmpl-AyPNinnUqUDYo9SAdA52NobMflmj2",
  "object": "chat.completion",
  "created": 1738960610,
  "model": "gpt-4o-mini-2024-07-18",
  "choices": [
    {
      "index": 0,
      "message": {"role": "assistant", "content": "Paris is warmer: 18\u00b0C against 9\u00b0C in Oslo.", "refusal": null, "annotations": []},
      "logprobs": null,
      "finish_reason": "stop"
    }
  ],
  "usage": {
    "prompt_tokens": 2048, "completion_tokens": 17, "total_tokens": 2065,
    "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
  },
  "service_tier": "default",
  "system_fingerprint": "fp_72ed7ab54c"
}""".encode()

_CHUNK = '"id":"chatcmpl-AyPNinnUqUDYo9SAdA52NobMflmj2","object":"chat.completion.chunk","created":1738960610,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_72ed7ab54c"'
TEXT_SSE = f"""data: {{{_CHUNK},"choices":[{{"index":0,"delta":{{"role":"assistant","content":"","refusal":null}},"logprobs":null,"finish_reason":null}}],"usage":null}}

data: {{{_CHUNK},"choices":[{{"index":0,"delta":{{"content":"Paris is warmer"}},"logprobs":null,"finish_reason":null}}],"usage":null}}

data: {{{_CHUNK},"choices":[{{"index":0,"delta":{{"content":": 18°C against"}},"logprobs":null,"finish_reason":null}}],"usage":null}}

data: {{{_CHUNK},"choices":[{{"index":0,"delta":{{"content":" 9°C in Oslo."}},"logprobs":null,"finish_reason":null}}],"usage":null}}

data: {{{_CHUNK},"choices":[{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"stop"}}],"usage":null}}

data: {{{_CHUNK},"choices":[],"usage":{{"prompt_tokens":2048,"completion_tokens":17,"total_tokens":2065,"prompt_tokens_details":{{"cached_tokens":1920,"audio_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}}}}

data: [DONE]

""".encode()

TEXT_USAGE = Usage(input_tokens=2048, output_tokens=17, cached_input_tokens=1920)
TEXT_RESPONSE = ChatResponse(
    id="chatcmpl-AyPNinnUqUDYo9SAdA52NobMflmj2",
    model="gpt-4o-mini-2024-07-18",
    created=1738960610,
    choices=[Choice(text="Paris is warmer: 18°C against 9°C in Oslo.", finish_reason="stop")],
    usage=TEXT_USAGE,
)
TEXT_EVENTS: list[StreamEvent] = [
    StreamStart(
        id="chatcmpl-AyPNinnUqUDYo9SAdA52NobMflmj2",
        model="gpt-4o-mini-2024-07-18",
        created=1738960610,
    ),
    StreamTextDelta(text="Paris is warmer"),
    StreamTextDelta(text=": 18°C against"),
    StreamTextDelta(text=" 9°C in Oslo."),
    StreamFinish(finish_reason="stop"),
    StreamUsage(usage=TEXT_USAGE),
]

TOOLS_JSON = b"""{
  "id": "chatcmpl-B1qXQ3Xc9pLQjYwdb3KrLjSgq8Mc1",
  "object": "chat.completion",
  "created": 1739873500,
  "model": "gpt-4o-2024-08-06",
  "choices": [
    {
      "index": 0,
      "message": {
        "role": "assistant",
        "content": null,
        "tool_calls": [
          {"id": "call_Dn2RJJSxzDm49vlVTehseJ0k", "type": "function", "function": {"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}},
          {"id": "call_mZHnGkx5HcnsuRy8OrUmyn5L", "type": "function", "function": {"name": "get_weather", "arguments": "{\\"city\\": \\"Oslo\\"}"}}
        ],
        "refusal": null,
        "annotations": []
      },
      "logprobs": null,
      "finish_reason": "tool_calls"
    }
  ],
  "usage": {
    "prompt_tokens": 82, "completion_tokens": 48, "total_tokens": 130,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
  },
  "service_tier": "default",
  "system_fingerprint": "fp_eb9dce56a8"
}"""

_TCHUNK = '"id":"chatcmpl-B1qXQ3Xc9pLQjYwdb3KrLjSgq8Mc1","object":"chat.completion.chunk","created":1739873500,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_eb9dce56a8"'


def _tool_delta(call: str) -> str:
    return f'data: {{{_TCHUNK},"choices":[{{"index":0,"delta":{{"tool_calls":[{call}]}},"logprobs":null,"finish_reason":null}}],"usage":null}}\n\n'


TOOLS_SSE = (
    f'data: {{{_TCHUNK},"choices":[{{"index":0,"delta":{{"role":"assistant","content":null,"tool_calls":[{{"index":0,"id":"call_Dn2RJJSxzDm49vlVTehseJ0k","type":"function","function":{{"name":"get_weather","arguments":""}}}}],"refusal":null}},"logprobs":null,"finish_reason":null}}],"usage":null}}\n\n'
    + _tool_delta('{"index":0,"function":{"arguments":"{\\"ci"}}')
    + _tool_delta('{"index":0,"function":{"arguments":"ty\\": \\"Par"}}')
    + _tool_delta('{"index":0,"function":{"arguments":"is\\"}"}}')
    + _tool_delta(
        '{"index":1,"id":"call_mZHnGkx5HcnsuRy8OrUmyn5L","type":"function","function":{"name":"get_weather","arguments":""}}'
    )
    + _tool_delta('{"index":1,"function":{"arguments":"{\\"city\\": "}}')
    + _tool_delta('{"index":1,"function":{"arguments":"\\"Oslo\\"}"}}')
    + f'data: {{{_TCHUNK},"choices":[{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"tool_calls"}}],"usage":null}}\n\n'
    + f'data: {{{_TCHUNK},"choices":[],"usage":{{"prompt_tokens":82,"completion_tokens":48,"total_tokens":130,"prompt_tokens_details":{{"cached_tokens":0,"audio_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}}}}\n\n'
    + "data: [DONE]\n\n"
).encode()

TOOLS_USAGE = Usage(input_tokens=82, output_tokens=48)
TOOLS_RESPONSE = ChatResponse(
    id="chatcmpl-B1qXQ3Xc9pLQjYwdb3KrLjSgq8Mc1",
    model="gpt-4o-2024-08-06",
    created=1739873500,
    choices=[
        Choice(
            tool_calls=[
                ToolCall(
                    id="call_Dn2RJJSxzDm49vlVTehseJ0k",
                    name="get_weather",
                    arguments='{"city": "Paris"}',
                ),
                ToolCall(
                    id="call_mZHnGkx5HcnsuRy8OrUmyn5L",
                    name="get_weather",
                    arguments='{"city": "Oslo"}',
                ),
            ],
            finish_reason="tool_calls",
        )
    ],
    usage=TOOLS_USAGE,
)
TOOLS_EVENTS: list[StreamEvent] = [
    StreamStart(
        id="chatcmpl-B1qXQ3Xc9pLQjYwdb3KrLjSgq8Mc1", model="gpt-4o-2024-08-06", created=1739873500
    ),
    StreamToolCallStart(tool_index=0, id="call_Dn2RJJSxzDm49vlVTehseJ0k", name="get_weather"),
    StreamToolCallDelta(tool_index=0, arguments='{"ci'),
    StreamToolCallDelta(tool_index=0, arguments='ty": "Par'),
    StreamToolCallDelta(tool_index=0, arguments='is"}'),
    StreamToolCallStart(tool_index=1, id="call_mZHnGkx5HcnsuRy8OrUmyn5L", name="get_weather"),
    StreamToolCallDelta(tool_index=1, arguments='{"city": '),
    StreamToolCallDelta(tool_index=1, arguments='"Oslo"}'),
    StreamFinish(finish_reason="tool_calls"),
    StreamUsage(usage=TOOLS_USAGE),
]

# An o-series model that spent its budget thinking: reasoning tokens, cut at length.
REASONING_JSON = b"""{"id":"chatcmpl-C3kq","object":"chat.completion","created":1740000000,"model":"o3-mini-2025-01-31",
"choices":[{"index":0,"message":{"role":"assistant","content":"","refusal":null},"finish_reason":"length"}],
"usage":{"prompt_tokens":30,"completion_tokens":1000,"total_tokens":1030,
"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},
"completion_tokens_details":{"reasoning_tokens":1000,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}"""
REASONING_SSE = b"""data: {"id":"chatcmpl-C3kq","object":"chat.completion.chunk","created":1740000000,"model":"o3-mini-2025-01-31","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-C3kq","object":"chat.completion.chunk","created":1740000000,"model":"o3-mini-2025-01-31","choices":[{"index":0,"delta":{},"finish_reason":"length"}],"usage":null}

data: {"id":"chatcmpl-C3kq","object":"chat.completion.chunk","created":1740000000,"model":"o3-mini-2025-01-31","choices":[],"usage":{"prompt_tokens":30,"completion_tokens":1000,"total_tokens":1030,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":1000,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}

data: [DONE]

"""
REASONING_USAGE = Usage(input_tokens=30, output_tokens=1000, reasoning_tokens=1000)
REASONING_RESPONSE = ChatResponse(
    id="chatcmpl-C3kq",
    model="o3-mini-2025-01-31",
    created=1740000000,
    choices=[Choice(finish_reason="length")],
    usage=REASONING_USAGE,
)
REASONING_EVENTS: list[StreamEvent] = [
    StreamStart(id="chatcmpl-C3kq", model="o3-mini-2025-01-31", created=1740000000),
    StreamFinish(finish_reason="length"),
    StreamUsage(usage=REASONING_USAGE),
]

# Ollama's OpenAI-compatible API: a whole tool call in one chunk, usage in the last one.
OLLAMA_JSON = b"""{"id":"chatcmpl-438","object":"chat.completion","created":1743000000,"model":"qwen2.5:7b","system_fingerprint":"fp_ollama",
"choices":[{"index":0,"message":{"role":"assistant","content":"","tool_calls":[{"id":"call_w3o2nbfx","index":0,"type":"function","function":{"name":"get_weather","arguments":"{\\"city\\":\\"Paris\\"}"}}]},"finish_reason":"tool_calls"}],
"usage":{"prompt_tokens":151,"completion_tokens":20,"total_tokens":171}}"""
OLLAMA_SSE = b"""data: {"id":"chatcmpl-438","object":"chat.completion.chunk","created":1743000000,"model":"qwen2.5:7b","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":"","tool_calls":[{"id":"call_w3o2nbfx","index":0,"type":"function","function":{"name":"get_weather","arguments":"{\\"city\\":\\"Paris\\"}"}}]},"finish_reason":null}]}

data: {"id":"chatcmpl-438","object":"chat.completion.chunk","created":1743000000,"model":"qwen2.5:7b","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":"tool_calls"}]}

data: {"id":"chatcmpl-438","object":"chat.completion.chunk","created":1743000000,"model":"qwen2.5:7b","system_fingerprint":"fp_ollama","choices":[],"usage":{"prompt_tokens":151,"completion_tokens":20,"total_tokens":171}}

data: [DONE]

"""
OLLAMA_USAGE = Usage(input_tokens=151, output_tokens=20)
OLLAMA_RESPONSE = ChatResponse(
    id="chatcmpl-438",
    model="qwen2.5:7b",
    created=1743000000,
    choices=[
        Choice(
            tool_calls=[
                ToolCall(id="call_w3o2nbfx", name="get_weather", arguments='{"city":"Paris"}')
            ],
            finish_reason="tool_calls",
        )
    ],
    usage=OLLAMA_USAGE,
)
OLLAMA_EVENTS: list[StreamEvent] = [
    StreamStart(id="chatcmpl-438", model="qwen2.5:7b", created=1743000000),
    StreamToolCallStart(tool_index=0, id="call_w3o2nbfx", name="get_weather"),
    StreamToolCallDelta(tool_index=0, arguments='{"city":"Paris"}'),
    StreamFinish(finish_reason="tool_calls"),
    StreamUsage(usage=OLLAMA_USAGE),
]

SCENARIOS = {
    "text": (TEXT_JSON, TEXT_SSE, TEXT_RESPONSE, TEXT_EVENTS),
    "parallel-tools": (TOOLS_JSON, TOOLS_SSE, TOOLS_RESPONSE, TOOLS_EVENTS),
    "reasoning-length": (REASONING_JSON, REASONING_SSE, REASONING_RESPONSE, REASONING_EVENTS),
    "ollama-tool": (OLLAMA_JSON, OLLAMA_SSE, OLLAMA_RESPONSE, OLLAMA_EVENTS),
}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_recorded_answers(
    upstream: Upstream, session: aiohttp.ClientSession, scenario: str, stream: bool
) -> None:
    body, sse, response, events = SCENARIOS[scenario]
    provider = openai(upstream, session)
    if not stream:
        upstream.script(Reply(body=body, headers={"Content-Type": "application/json"}))
        assert await provider.chat(ask(), model="m", timeout=5) == response
    else:
        upstream.script(Reply(chunks=chunked(sse, 37)))
        got = await collect(provider.stream(ask(), model="m", timeout=5))
        assert got == events
        assert assemble(got) == response


# Azure: a leading prompt-filter chunk with no id, and filter results in every choice.
AZURE_JSON = b"""{"choices":[{"content_filter_results":{"hate":{"filtered":false,"severity":"safe"},"self_harm":{"filtered":false,"severity":"safe"}},
"finish_reason":"stop","index":0,"logprobs":null,"message":{"content":"Hi there.","refusal":null,"role":"assistant"}}],
"created":1741000000,"id":"chatcmpl-AzU1","model":"gpt-4o-2024-11-20","object":"chat.completion",
"prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}],
"system_fingerprint":"fp_b705f0c291","usage":{"completion_tokens":3,"completion_tokens_details":{"accepted_prediction_tokens":0,"audio_tokens":0,"reasoning_tokens":0,"rejected_prediction_tokens":0},"prompt_tokens":9,"prompt_tokens_details":{"audio_tokens":0,"cached_tokens":0},"total_tokens":12}}"""
AZURE_SSE = b"""data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}]}

data: {"choices":[{"content_filter_results":{},"delta":{"content":"","refusal":null,"role":"assistant"},"finish_reason":null,"index":0,"logprobs":null}],"created":1741000000,"id":"chatcmpl-AzU1","model":"gpt-4o-2024-11-20","object":"chat.completion.chunk","system_fingerprint":"fp_b705f0c291","usage":null}

data: {"choices":[{"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}},"delta":{"content":"Hi there."},"finish_reason":null,"index":0,"logprobs":null}],"created":1741000000,"id":"chatcmpl-AzU1","model":"gpt-4o-2024-11-20","object":"chat.completion.chunk","system_fingerprint":"fp_b705f0c291","usage":null}

data: {"choices":[{"content_filter_results":{},"delta":{},"finish_reason":"stop","index":0,"logprobs":null}],"created":1741000000,"id":"chatcmpl-AzU1","model":"gpt-4o-2024-11-20","object":"chat.completion.chunk","system_fingerprint":"fp_b705f0c291","usage":null}

data: {"choices":[],"created":1741000000,"id":"chatcmpl-AzU1","model":"gpt-4o-2024-11-20","object":"chat.completion.chunk","system_fingerprint":"fp_b705f0c291","usage":{"completion_tokens":3,"completion_tokens_details":{"accepted_prediction_tokens":0,"audio_tokens":0,"reasoning_tokens":0,"rejected_prediction_tokens":0},"prompt_tokens":9,"prompt_tokens_details":{"audio_tokens":0,"cached_tokens":0},"total_tokens":12}}

data: [DONE]

"""
AZURE_USAGE = Usage(input_tokens=9, output_tokens=3)
AZURE_RESPONSE = ChatResponse(
    id="chatcmpl-AzU1",
    model="gpt-4o-2024-11-20",
    created=1741000000,
    choices=[Choice(text="Hi there.")],
    usage=AZURE_USAGE,
)


@pytest.mark.parametrize("stream", [False, True])
async def test_azure(upstream: Upstream, session: aiohttp.ClientSession, stream: bool) -> None:
    provider = azure(upstream, session)
    if not stream:
        upstream.script(Reply(body=AZURE_JSON))
        assert await provider.chat(ask(), model="my deployment", timeout=5) == AZURE_RESPONSE
    else:
        upstream.script(Reply(chunks=[AZURE_SSE]))
        got = await collect(provider.stream(ask(), model="my deployment", timeout=5))
        assert got == [
            StreamStart(id="chatcmpl-AzU1", model="gpt-4o-2024-11-20", created=1741000000),
            StreamTextDelta(text="Hi there."),
            StreamFinish(finish_reason="stop"),
            StreamUsage(usage=AZURE_USAGE),
        ]
    [sent] = upstream.requests
    assert (
        sent.path_qs
        == "/openai/deployments/my%20deployment/chat/completions?api-version=2024-10-21"
    )
    assert sent.headers["api-key"] == "azure-key-123456"
    assert "Authorization" not in sent.headers
    assert msgspec.json.decode(sent.body) == chat_payload(ask(), "my deployment", stream=stream)
    assert provider.system == "azure.ai.openai"


# --- stream edge cases -----------------------------------------------------------------


def _chunk(choices: str, extra: str = "") -> bytes:
    return f'data: {{"id":"c1","created":5,"model":"m","choices":[{choices}]{extra}}}\n\n'.encode()


async def test_stream_repeated_tool_ids_start_once_and_missing_created_uses_clock(
    upstream: Upstream, session: aiohttp.ClientSession
) -> None:
    # Some servers repeat the id and name on every fragment, and give no `created`.
    call = '{{"index":0,"id":"call_9","function":{{"name":"f","arguments":"{arg}"}}}}'
    chunks = [
        b'data: {"id":"c1","model":"m","choices":[{"index":0,"delta":{"tool_calls":['
        + call.format(arg="{").encode()
        + b"]}}]}\n\n",
        b'data: {"id":"c1","model":"m","choices":[{"index":0,"delta":{"tool_calls":['
        + call.format(arg="}").encode()
        + b"]}}]}\n\n",
        b'data: {"id":"c1","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"function_call"}]}\n\n',
    ]  # and no [DONE]: the end of the body ends the stream
    upstream.script(Reply(chunks=chunks))
    got = await collect(openai(upstream, session).stream(ask(), model="m", timeout=5))
    assert got == [
        StreamStart(id="c1", model="m", created=NOW),
        StreamToolCallStart(tool_index=0, id="call_9", name="f"),
        StreamToolCallDelta(tool_index=0, arguments="{"),
        StreamToolCallDelta(tool_index=0, arguments="}"),
        StreamFinish(finish_reason="tool_calls"),
    ]


async def test_stream_two_choices(upstream: Upstream, session: aiohttp.ClientSession) -> None:
    upstream.script(
        Reply(
            chunks=[
                _chunk('{"index":0,"delta":{"content":"a"}},{"index":1,"delta":{"content":"b"}}'),
                _chunk('{"index":1,"delta":{},"finish_reason":"stop"}'),
                _chunk('{"index":0,"delta":{},"finish_reason":"content_filter"}'),
                b"data: [DONE]\n\n",
            ]
        )
    )
    got = await collect(openai(upstream, session).stream(ask(n=2), model="m", timeout=5))
    assert got == [
        StreamStart(id="c1", model="m", created=5),
        StreamTextDelta(text="a"),
        StreamTextDelta(text="b", index=1),
        StreamFinish(finish_reason="stop", index=1),
        StreamFinish(finish_reason="content_filter"),
    ]


async def test_stream_error_object_mid_stream(
    upstream: Upstream, session: aiohttp.ClientSession
) -> None:
    upstream.script(
        Reply(
            chunks=[
                _chunk('{"index":0,"delta":{"content":"Hel"}}'),
                b'data: {"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}\n\n',
            ]
        )
    )
    got: list[StreamEvent] = []
    with pytest.raises(UpstreamError) as info:
        async for event in openai(upstream, session).stream(ask(), model="m", timeout=5):
            got.append(event)
    assert type(info.value) is UpstreamError
    assert (
        info.value.message
        == "oai: The server had an error while processing your request. Sorry about that!"
    )
    assert got == [StreamStart(id="c1", model="m", created=5), StreamTextDelta(text="Hel")]


async def test_stream_cut_before_finish_is_an_error(
    upstream: Upstream, session: aiohttp.ClientSession
) -> None:
    upstream.script(Reply(chunks=[_chunk('{"index":0,"delta":{"content":"Hel"}}')]))
    with pytest.raises(UpstreamError, match="the stream ended before it finished"):
        await collect(openai(upstream, session).stream(ask(), model="m", timeout=5))


async def test_stream_done_without_finish_reason_still_finishes(
    upstream: Upstream, session: aiohttp.ClientSession
) -> None:
    upstream.script(
        Reply(chunks=[_chunk('{"index":0,"delta":{"content":"Hi"}}'), b"data: [DONE]\n\n"])
    )
    got = await collect(openai(upstream, session).stream(ask(), model="m", timeout=5))
    assert got == [
        StreamStart(id="c1", model="m", created=5),
        StreamTextDelta(text="Hi"),
        StreamFinish(finish_reason="stop"),
    ]


async def test_stream_with_nothing_but_done_is_an_error(
    upstream: Upstream, session: aiohttp.ClientSession
) -> None:
    upstream.script(Reply(chunks=[b": keep-alive\n\n", b"data: [DONE]\n\n"]))
    with pytest.raises(UpstreamError, match="the stream ended before it finished"):
        await collect(openai(upstream, session).stream(ask(), model="m", timeout=5))


async def test_stream_malformed_chunk(upstream: Upstream, session: aiohttp.ClientSession) -> None:
    upstream.script(Reply(chunks=[b"data: {not json\n\n"]))
    with pytest.raises(UpstreamError, match=r"^oai: malformed response"):
        await collect(openai(upstream, session).stream(ask(), model="m", timeout=5))


# --- embeddings ------------------------------------------------------------------------


def _b64(*values: float) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


@pytest.mark.parametrize("encoded", [False, True])
async def test_embeddings(
    upstream: Upstream, session: aiohttp.ClientSession, encoded: bool
) -> None:
    first: Any = _b64(0.5, -1.0) if encoded else [0.5, -1.0]
    second: Any = _b64(0.25, 2.0) if encoded else [0.25, 2.0]
    body = {
        "object": "list",
        "data": [  # out of order on purpose
            {"object": "embedding", "index": 1, "embedding": second},
            {"object": "embedding", "index": 0, "embedding": first},
        ],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    }
    upstream.script(Reply(body=msgspec.json.encode(body)))
    request = EmbeddingRequest(
        model="gw", input=["a", "b"], dimensions=2, user="u", encoding_format="base64"
    )
    got = await openai(upstream, session).embed(request, model="text-embedding-3-small", timeout=5)
    assert got == EmbeddingResponse(
        model="text-embedding-3-small", data=[[0.5, -1.0], [0.25, 2.0]], usage=Usage(input_tokens=8)
    )
    [sent] = upstream.requests
    assert sent.path_qs == "/v1/embeddings"
    assert msgspec.json.decode(sent.body) == {
        "model": "text-embedding-3-small",
        "input": ["a", "b"],
        "encoding_format": "float",
        "dimensions": 2,
        "user": "u",
    }


async def test_azure_embeddings_url(upstream: Upstream, session: aiohttp.ClientSession) -> None:
    upstream.script(Reply(body=b'{"data":[{"index":0,"embedding":[1.0]}],"model":"ada"}'))
    got = await azure(upstream, session).embed(
        EmbeddingRequest(model="gw", input=[[1, 2]]), model="emb", timeout=5
    )
    assert got == EmbeddingResponse(model="ada", data=[[1.0]])
    assert (
        upstream.requests[0].path_qs == "/openai/deployments/emb/embeddings?api-version=2024-10-21"
    )


# --- the protocol ----------------------------------------------------------------------


async def test_providers_satisfy_the_protocol(
    upstream: Upstream, session: aiohttp.ClientSession
) -> None:
    for provider in (openai(upstream, session), azure(upstream, session)):
        assert isinstance(provider, Provider)
        await provider.start()
        await provider.aclose()
    no_key = OpenAIProvider(
        "n",
        OpenAIProviderConfig(type="openai", base_url=upstream.url),
        session=session,
        api_key=None,
    )
    upstream.script(Reply(body=TEXT_JSON))
    await no_key.chat(ask(), model="m", timeout=5)
    assert "Authorization" not in upstream.requests[0].headers
    assert upstream.requests[0].path_qs == "/chat/completions"
