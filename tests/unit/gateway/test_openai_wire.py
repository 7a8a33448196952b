"""The OpenAI dialect: requests from the real openai SDK decode to the internal model, and
what lockgate encodes parses back in the SDK (strict response validation) unmodified."""

from __future__ import annotations

import base64
import json
from array import array
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletionChunk

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
    ToolSpec,
    Usage,
)
from lockgate.errors import InvalidRequest, UpstreamTimeout
from lockgate.gateway import openai_wire as wire

WEATHER_PARAMS: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}


class Gateway:
    """A mock HTTP transport standing in for lockgate: it decodes what the SDK sends
    with the wire module under test and answers with canned bytes."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.answer: Callable[[], tuple[int, bytes, str]] = lambda: (200, b"{}", "application/json")

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.bodies.append(request.content)
        status, body, kind = self.answer()
        return httpx2.Response(status, content=body, headers={"content-type": kind})

    def client(self, *, strict: bool = True) -> openai.OpenAI:
        """Strict validation checks every field's type; base64 embeddings (a string
        where the SDK types a float list, as with OpenAI itself) need it off."""
        http = httpx2.Client(transport=httpx2.MockTransport(self))
        return openai.OpenAI(
            api_key="sk-test",
            base_url="http://lockgate.test/v1",
            http_client=http,
            max_retries=0,
            _strict_response_validation=strict,
        )


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    yield Gateway()


def _response(**choice: Any) -> ChatResponse:
    return ChatResponse(
        id="chatcmpl-42",
        model="upstream-model-v1",
        created=1700000000,
        choices=[Choice(**choice)],
        usage=Usage(input_tokens=20, output_tokens=7, cached_input_tokens=4, reasoning_tokens=2),
    )


# --- decoding ---------------------------------------------------------------------------


def test_decode_sdk_request_with_tools_images_and_tool_results(gateway: Gateway) -> None:
    gateway.answer = lambda: (
        200,
        wire.encode_chat_response(_response(text="ok"), model="gpt-x"),
        "application/json",
    )
    gateway.client().chat.completions.create(
        model="gpt-x",
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "system", "content": [{"type": "text", "text": "Use tools."}]},
            {
                "role": "user",
                "name": "ann",
                "content": [
                    {"type": "text", "text": "Weather here?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"},
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
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"},
        ],
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather by city",
                    "parameters": WEATHER_PARAMS,
                    "strict": True,
                },
            },
            {"type": "function", "function": {"name": "noop"}},
        ],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
        },
        stop=["END", "STOP"],
        max_tokens=50,
        max_completion_tokens=100,
        temperature=0.2,
        top_p=0.9,
        seed=7,
        user="user-1",
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        metadata={"team": "blue"},
        n=2,
        logprobs=True,
        top_logprobs=3,
        logit_bias={"50256": -100},
        store=False,
        service_tier="auto",
        reasoning_effort="low",
        modalities=["text"],
        prediction={"type": "content", "content": "x"},
        web_search_options={},
        prompt_cache_key="k",
        safety_identifier="sid",
        verbosity="low",
    )
    assert wire.decode_chat_request(gateway.bodies[0]) == ChatRequest(
        model="gpt-x",
        messages=[
            Message(role="system", content=[TextPart(text="Be brief.")]),
            Message(role="system", content=[TextPart(text="Use tools.")]),
            Message(
                role="user",
                name="ann",
                content=[
                    TextPart(text="Weather here?"),
                    ImagePart(url="data:image/png;base64,AAAA", detail="low"),
                ],
            ),
            Message(
                role="assistant",
                tool_calls=[
                    ToolCall(id="call_1", name="get_weather", arguments='{"city":"Paris"}')
                ],
            ),
            Message(role="tool", tool_call_id="call_1", content=[TextPart(text="18C and sunny")]),
        ],
        max_tokens=100,
        temperature=0.2,
        top_p=0.9,
        stop=["END", "STOP"],
        n=2,
        seed=7,
        user="user-1",
        tools=[
            ToolSpec(
                name="get_weather",
                description="Weather by city",
                parameters=WEATHER_PARAMS,
                strict=True,
            ),
            ToolSpec(name="noop"),
        ],
        tool_choice=ToolChoice(mode="tool", name="get_weather", parallel=False),
        response_format=ResponseFormat(
            type="json_schema", name="answer", schema={"type": "object"}, strict=True
        ),
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        metadata={"team": "blue"},
    )


def test_decode_minimal_streaming_request() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True, "include_obfuscation": False},
        "stop": "END",
        "safety_identifier": "sid",
        "tool_choice": "required",
        "response_format": {"type": "json_object"},
    }
    assert wire.decode_chat_request(json.dumps(body).encode()) == ChatRequest(
        model="m",
        messages=[Message(role="user", content=[TextPart(text="hi")])],
        stop=["END"],
        user="sid",
        tool_choice=ToolChoice(mode="required"),
        response_format=ResponseFormat(type="json_object"),
        stream=True,
        include_usage=True,
    )


def test_decode_legacy_function_messages_refusals_and_allowed_tools() -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "a"}, {"type": "refusal", "refusal": "b"}],
                "function_call": {"name": "f", "arguments": "{}"},
            },
            {"role": "function", "name": "f", "content": "done"},
            {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "x"}]},
        ],
        "tools": [{"type": "function", "function": {"name": n}} for n in ("f", "g", "h")],
        "tool_choice": {
            "type": "allowed_tools",
            "allowed_tools": {
                "mode": "required",
                "tools": [{"type": "function", "function": {"name": "g"}}],
            },
        },
        "function_call": "auto",
        "parallel_tool_calls": True,
    }
    assert wire.decode_chat_request(json.dumps(body).encode()) == ChatRequest(
        model="m",
        messages=[
            Message(role="user", content=[TextPart(text="go")]),
            Message(
                role="assistant",
                content=[TextPart(text="a"), TextPart(text="b")],
                tool_calls=[ToolCall(id="f", name="f", arguments="{}")],
            ),
            Message(role="tool", tool_call_id="f", name="f", content=[TextPart(text="done")]),
            Message(role="tool", tool_call_id="c2", content=[TextPart(text="x")]),
        ],
        tools=[ToolSpec(name="g")],
        tool_choice=ToolChoice(mode="required", parallel=True),
    )


def test_parallel_tool_calls_alone_sets_auto_choice() -> None:
    body = b'{"model":"m","messages":[{"role":"user","content":"x"}],"parallel_tool_calls":false}'
    assert wire.decode_chat_request(body).tool_choice == ToolChoice(mode="none", parallel=False)


PARSE = "We could not parse the JSON body of your request."
OK = '"model":"m","messages":[{"role":"user","content":"x"}]'

BAD_CHAT: list[tuple[bytes, str, str | None]] = [
    (b"{not json", PARSE, None),
    (b"", PARSE, None),
    (b'{"model":"m","messages":[{"role":"user","content":"\xff\xfe"}]}', PARSE, None),
    (b"[]", "Invalid type for request body: expected an object, but got an array instead.", None),
    (
        b'{"messages":[{"role":"user","content":"x"}]}',
        "you must provide a model parameter",
        "model",
    ),
    (
        b'{"model":"","messages":[{"role":"user","content":"x"}]}',
        "you must provide a model parameter",
        "model",
    ),
    (b'{"model":"m"}', "Missing required parameter: 'messages'.", "messages"),
    (
        b'{"model":"m","messages":[]}',
        "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
        "messages",
    ),
    (
        b'{"model":5,"messages":[]}',
        "Invalid type for 'model': expected a string, but got an integer instead.",
        "model",
    ),
    (
        b'{"model":"m","messages":"hi"}',
        "Invalid type for 'messages': expected an array, but got a string instead.",
        "messages",
    ),
    (
        b'{"model":"m","messages":[{"role":"wizard","content":"x"}]}',
        "Invalid value: 'wizard'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'.",
        "messages[0].role",
    ),
    (
        b'{"model":"m","messages":[{"content":"x"}]}',
        "Missing required parameter: 'messages[0].role'.",
        "messages[0].role",
    ),
    (
        b'{"model":"m","messages":[{"role":"user","content":5}]}',
        "Invalid type for 'messages[0].content': expected one of a string or an array, but got an integer instead.",
        "messages[0].content",
    ),
    (
        b'{"model":"m","messages":[{"role":"tool","content":"x"}]}',
        "Missing required parameter: 'messages[0].tool_call_id'.",
        "messages[0].tool_call_id",
    ),
    (
        b'{"model":"m","messages":[{"role":"user","content":[{"type":"video"}]}]}',
        "Invalid value: 'video'. Supported values are: 'text', 'image_url', 'input_audio', 'refusal', and 'file'.",
        "messages[0].content[0].type",
    ),
    (
        b'{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"","format":"wav"}}]}]}',
        "Invalid value for 'messages[0].content[0].type': content parts of type 'input_audio' are not supported by this gateway; send 'text' or 'image_url' parts.",
        "messages[0].content[0].type",
    ),
    (
        b'{"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"f"}}]}]}',
        "Invalid value for 'messages[0].content[0].type': content parts of type 'file' are not supported by this gateway; send 'text' or 'image_url' parts.",
        "messages[0].content[0].type",
    ),
    (
        b'{"model":"m","messages":[{"role":"assistant","tool_calls":[{"type":"custom","id":"c","custom":{}}]}]}',
        "Invalid value for 'messages[0].tool_calls[0].type': custom tool calls are not supported by this gateway.",
        "messages[0].tool_calls[0].type",
    ),
    (b"{" + OK.encode() + b',"foo":1}', "Unrecognized request argument supplied: foo", "foo"),
    (b"{" + OK.encode() + b',"top_k":1}', "Unrecognized request argument supplied: top_k", "top_k"),
    (
        b"{" + OK.encode() + b',"temperature":"hot"}',
        "Invalid type for 'temperature': expected a decimal, but got a string instead.",
        "temperature",
    ),
    (
        b"{" + OK.encode() + b',"temperature":2.5}',
        "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 2.5 instead.",
        "temperature",
    ),
    (
        b"{" + OK.encode() + b',"top_p":-0.1}',
        "Invalid 'top_p': decimal below minimum value. Expected a value >= 0, but got -0.1 instead.",
        "top_p",
    ),
    (
        b"{" + OK.encode() + b',"n":0}',
        "Invalid 'n': integer below minimum value. Expected a value >= 1, but got 0 instead.",
        "n",
    ),
    (
        b"{" + OK.encode() + b',"n":129}',
        "Invalid 'n': integer above maximum value. Expected a value <= 128, but got 129 instead.",
        "n",
    ),
    (
        b"{" + OK.encode() + b',"n":1.5}',
        "Invalid type for 'n': expected an integer, but got a decimal instead.",
        "n",
    ),
    (
        b"{" + OK.encode() + b',"max_tokens":0}',
        "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got 0 instead.",
        "max_tokens",
    ),
    (
        b"{" + OK.encode() + b',"presence_penalty":3}',
        "Invalid 'presence_penalty': decimal above maximum value. Expected a value <= 2, but got 3 instead.",
        "presence_penalty",
    ),
    (
        b"{" + OK.encode() + b',"tool_choice":"maybe"}',
        "Invalid value: 'maybe'. Supported values are: 'none', 'auto', and 'required'.",
        "tool_choice",
    ),
    (
        b"{" + OK.encode() + b',"tool_choice":{"type":"custom","custom":{"name":"x"}}}',
        "Invalid value for 'tool_choice.type': custom tools are not supported by this gateway.",
        "tool_choice.type",
    ),
    (
        b"{" + OK.encode() + b',"tools":[{"type":"custom","custom":{"name":"x"}}]}',
        "Invalid value for 'tools[0].type': custom tools are not supported by this gateway; use 'function' tools.",
        "tools[0].type",
    ),
    (
        b"{" + OK.encode() + b',"tools":[{"type":"function","function":{}}]}',
        "Missing required parameter: 'tools[0].function.name'.",
        "tools[0].function.name",
    ),
    (
        b"{" + OK.encode() + b',"response_format":{"type":"yaml"}}',
        "Invalid value: 'yaml'. Supported values are: 'text', 'json_object', and 'json_schema'.",
        "response_format.type",
    ),
    (
        b"{" + OK.encode() + b',"stream_options":{"include_usage":true}}',
        "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        "stream_options",
    ),
    (
        b"{" + OK.encode() + b',"functions":[{"name":"f"}]}',
        "The deprecated 'functions' parameter is not supported by this gateway; use 'tools'.",
        "functions",
    ),
    (
        b"{" + OK.encode() + b',"modalities":["text","audio"]}',
        "Audio output is not supported by this gateway; use 'modalities': ['text'].",
        "modalities",
    ),
    (
        b"{" + OK.encode() + b',"metadata":{"a":1}}',
        "Invalid type for 'metadata.*': expected a string, but got an integer instead.",
        "metadata.*",
    ),
    (
        b"{" + OK.encode() + b',"temperature":1e400}',
        "Invalid value for 'temperature': Number out of range.",
        "temperature",
    ),
]


@pytest.mark.parametrize(("body", "message", "param"), BAD_CHAT)
def test_bad_chat_requests(body: bytes, message: str, param: str | None) -> None:
    with pytest.raises(InvalidRequest) as caught:
        wire.decode_chat_request(body)
    assert caught.value.message.startswith(message)
    assert (caught.value.param, caught.value.status) == (param, 400)


# --- responses --------------------------------------------------------------------------


def test_encode_text_response_golden() -> None:
    body = wire.encode_chat_response(
        _response(text="Hello!", finish_reason="length"), model="gpt-x"
    )
    assert json.loads(body) == {
        "id": "chatcmpl-42",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-x",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hello!",
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "length",
            }
        ],
        "usage": {
            "prompt_tokens": 20,
            "completion_tokens": 7,
            "total_tokens": 27,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 2},
        },
        "system_fingerprint": None,
    }


def test_sdk_parses_tool_call_response(gateway: Gateway) -> None:
    call = ToolCall(id="call_9", name="get_weather", arguments='{"city":"Oslo"}')
    resp = _response(tool_calls=[call], finish_reason="tool_calls")
    gateway.answer = lambda: (
        200,
        wire.encode_chat_response(resp, model="gpt-x"),
        "application/json",
    )
    completion = gateway.client().chat.completions.create(
        model="gpt-x", messages=[{"role": "user", "content": "hi"}]
    )
    message = completion.choices[0].message
    assert message.model_dump(exclude_none=True) == {
        "role": "assistant",
        "annotations": [],
        "tool_calls": [
            {
                "id": "call_9",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
            }
        ],
    }
    assert (completion.choices[0].finish_reason, completion.model) == ("tool_calls", "gpt-x")


def test_refusal_and_error_finish() -> None:
    body = wire.encode_chat_response(_response(refusal="No.", finish_reason="error"), model="m")
    choice = json.loads(body)["choices"][0]
    assert choice["message"]["content"] is None and choice["message"]["refusal"] == "No."
    assert choice["finish_reason"] == "stop"
    empty = json.loads(wire.encode_chat_response(_response(), model="m"))["choices"][0]
    assert empty["message"]["content"] == ""


# --- streaming --------------------------------------------------------------------------

TOOL_STREAM: list[StreamEvent] = [
    StreamStart(id="chatcmpl-1", model="upstream", created=1700000000),
    StreamTextDelta(text="Let me check."),
    StreamToolCallStart(tool_index=0, id="call_1", name="get_weather"),
    StreamToolCallDelta(tool_index=0, arguments='{"city":'),
    StreamToolCallDelta(tool_index=0, arguments='"Paris"}'),
    StreamToolCallStart(tool_index=1, id="call_2", name="get_time"),
    StreamToolCallDelta(tool_index=1, arguments="{}"),
    StreamFinish(finish_reason="tool_calls"),
    StreamUsage(usage=Usage(input_tokens=10, output_tokens=5, cached_input_tokens=2)),
]


def _sse(events: list[StreamEvent], include_usage: bool) -> bytes:
    encoder = wire.ChatStreamEncoder("gpt-x", include_usage)
    return b"".join(encoder.encode(e) for e in events) + encoder.done()


def test_stream_frames_golden() -> None:
    encoder = wire.ChatStreamEncoder("gpt-x", include_usage=False)
    head = '{"id":"c","object":"chat.completion.chunk","created":5,"model":"gpt-x","system_fingerprint":null,"choices":['
    tail = ',"logprobs":null,"finish_reason":%s}]}\n\n'
    frames = [
        encoder.encode(e).decode()
        for e in (
            StreamStart(id="c", model="u", created=5),
            StreamTextDelta(text='say "hi"'),
            StreamToolCallStart(tool_index=0, id="call_1", name="f"),
            StreamToolCallDelta(tool_index=0, arguments="{}"),
            StreamFinish(finish_reason="stop"),
            StreamUsage(usage=Usage(input_tokens=1)),
        )
    ]
    assert frames == [
        f'data: {head}{{"index":0,"delta":{{"role":"assistant","content":""}}' + tail % "null",
        f'data: {head}{{"index":0,"delta":{{"content":"say \\"hi\\""}}' + tail % "null",
        f'data: {head}{{"index":0,"delta":{{"tool_calls":[{{"index":0,"id":"call_1","type":"function","function":{{"name":"f","arguments":""}}}}]}}'
        + tail % "null",
        f'data: {head}{{"index":0,"delta":{{"tool_calls":[{{"index":0,"function":{{"arguments":"{{}}"}}}}]}}'
        + tail % "null",
        f'data: {head}{{"index":0,"delta":{{}}' + tail % '"stop"',
        "",
    ]
    assert encoder.done() == b"data: [DONE]\n\n"


def test_stream_chunks_validate_and_usage_chunk_is_last() -> None:
    frames = _sse(TOOL_STREAM, include_usage=True).split(b"\n\n")
    assert frames[-2:] == [b"data: [DONE]", b""]
    chunks = [
        ChatCompletionChunk.model_validate_json(f.removeprefix(b"data: ")) for f in frames[:-2]
    ]
    assert [c.choices[0].delta.role if c.choices else "usage" for c in chunks] == ["assistant"] + [
        None
    ] * 7 + ["usage"]
    assert chunks[-1].model_dump(exclude_none=True) == {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-x",
        "choices": [],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 2},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }


def test_sdk_stream_accumulates_text_and_tool_calls(gateway: Gateway) -> None:
    gateway.answer = lambda: (200, _sse(TOOL_STREAM, include_usage=True), "text/event-stream")
    with gateway.client().chat.completions.stream(
        model="gpt-x",
        messages=[{"role": "user", "content": "hi"}],
        stream_options={"include_usage": True},
    ) as stream:
        final = stream.get_final_completion()
    assert final.model_dump(exclude_none=True) == {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-x",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": "Let me check.",
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        },
                        {
                            "index": 1,
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "get_time", "arguments": "{}"},
                        },
                    ],
                },
            }
        ],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 2},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }


def test_stream_renders_every_choice_with_its_own_role_frame() -> None:
    events: list[StreamEvent] = [
        StreamStart(id="c", model="u", created=1),
        StreamTextDelta(text="a", index=0),
        StreamTextDelta(text="b", index=1),
        StreamFinish(finish_reason="stop", index=1),
        StreamFinish(finish_reason="length", index=0),
    ]
    frames = _sse(events, include_usage=False).split(b"\n\n")[:-2]
    chunks = [ChatCompletionChunk.model_validate_json(f.removeprefix(b"data: ")) for f in frames]
    got = [
        (
            c.choices[0].index,
            c.choices[0].delta.role,
            c.choices[0].delta.content,
            c.choices[0].finish_reason,
        )
        for c in chunks
    ]
    assert got == [
        (0, "assistant", "", None),
        (0, None, "a", None),
        (1, "assistant", "", None),
        (1, None, "b", None),
        (1, None, None, "stop"),
        (0, None, None, "length"),
    ]


def test_sdk_raises_on_mid_stream_error(gateway: Gateway) -> None:
    encoder = wire.ChatStreamEncoder("gpt-x", include_usage=False)
    body = encoder.encode(TOOL_STREAM[0]) + encoder.encode(TOOL_STREAM[1])
    body += encoder.error(UpstreamTimeout("The upstream timed out."))
    assert body.endswith(
        b'data: {"error":{"message":"The upstream timed out.","type":"server_error","param":null,"code":"upstream_timeout"}}\n\n'
    )
    gateway.answer = lambda: (200, body, "text/event-stream")
    stream = gateway.client().chat.completions.create(
        model="gpt-x", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    texts: list[str | None] = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            texts.append(chunk.choices[0].delta.content)
    assert texts == ["", "Let me check."]
    assert caught.value.message == "The upstream timed out."


# --- errors, models ---------------------------------------------------------------------


def test_error_body_reaches_sdk_as_bad_request(gateway: Gateway) -> None:
    err = InvalidRequest("Unrecognized request argument supplied: foo", param="foo")
    assert json.loads(wire.error_body(err)) == {
        "error": {
            "message": "Unrecognized request argument supplied: foo",
            "type": "invalid_request_error",
            "param": "foo",
            "code": "invalid_request",
        }
    }
    gateway.answer = lambda: (400, wire.error_body(err), "application/json")
    with pytest.raises(openai.BadRequestError) as caught:
        gateway.client().chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}]
        )
    assert (caught.value.param, caught.value.type, caught.value.code) == (
        "foo",
        "invalid_request_error",
        "invalid_request",
    )


def test_models_list_and_model(gateway: Gateway) -> None:
    gateway.answer = lambda: (
        200,
        wire.encode_models_list(["fast", "smart"], 1700000000),
        "application/json",
    )
    models = gateway.client().models.list()
    assert [m.model_dump(exclude_none=True) for m in models] == [
        {"id": "fast", "object": "model", "created": 1700000000, "owned_by": "lockgate"},
        {"id": "smart", "object": "model", "created": 1700000000, "owned_by": "lockgate"},
    ]
    gateway.answer = lambda: (200, wire.encode_model("fast", 1), "application/json")
    assert gateway.client().models.retrieve("fast").id == "fast"


# --- embeddings -------------------------------------------------------------------------

VECTORS = [[0.5, -1.25, 3.0], [0.0, 1.0, -0.125]]


def _embeddings(encoding_format: str) -> bytes:
    resp = EmbeddingResponse(model="up", data=VECTORS, usage=Usage(input_tokens=6))
    return wire.encode_embedding_response(
        resp, model="embed", encoding_format="base64" if encoding_format == "base64" else "float"
    )


def test_sdk_default_base64_embeddings_round_trip(gateway: Gateway) -> None:
    def answer() -> tuple[int, bytes, str]:
        request = wire.decode_embedding_request(gateway.bodies[-1])
        return 200, _embeddings(request.encoding_format), "application/json"

    gateway.answer = answer
    result = gateway.client(strict=False).embeddings.create(model="embed", input=["a", "b"])
    assert wire.decode_embedding_request(gateway.bodies[0]) == EmbeddingRequest(
        model="embed", input=["a", "b"], encoding_format="base64"
    )
    assert [d.embedding for d in result.data] == VECTORS
    assert (result.model, result.usage.prompt_tokens, result.usage.total_tokens) == ("embed", 6, 6)


def test_base64_is_little_endian_float32() -> None:
    data = json.loads(_embeddings("base64"))["data"]
    raw = base64.b64decode(data[0]["embedding"])
    assert raw == array("f", VECTORS[0]).tobytes() and raw[:4] == b"\x00\x00\x00\x3f"
    assert json.loads(_embeddings("float")) == {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(VECTORS)
        ],
        "model": "embed",
        "usage": {"prompt_tokens": 6, "total_tokens": 6},
    }


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ('"hello"', ["hello"]),
        ("[1, 2, 3]", [[1, 2, 3]]),
        ("[[1, 2], [3]]", [[1, 2], [3]]),
    ],
)
def test_embedding_inputs(given: str, expected: list[Any]) -> None:
    body = f'{{"model":"e","input":{given},"dimensions":8,"user":"u","encoding_format":"float"}}'.encode()
    assert wire.decode_embedding_request(body) == EmbeddingRequest(
        model="e", input=expected, dimensions=8, user="u"
    )


@pytest.mark.parametrize(
    ("given", "message", "param"),
    [
        ('"input":""', "Invalid 'input': empty string.", "input"),
        ('"input":[]', "Invalid 'input': empty array.", "input"),
        ('"input":["a",""]', "Invalid 'input[1]': empty string.", "input[1]"),
        ('"input":[[1],[]]', "Invalid 'input[1]': empty array.", "input[1]"),
        ('"input":["a",1]', "Invalid 'input': expected a string, an array of strings", "input"),
        (
            '"input":[1.5]',
            "Invalid type for 'input[0]': expected one of an integer, a string or an array, but got a decimal instead.",
            "input[0]",
        ),
        (
            '"input":"a","encoding_format":"int8"',
            "Invalid value: 'int8'. Supported values are: 'float' and 'base64'.",
            "encoding_format",
        ),
        (
            '"input":"a","dimensions":0',
            "Invalid 'dimensions': integer below minimum value.",
            "dimensions",
        ),
        ('"input":"a","bogus":1', "Unrecognized request argument supplied: bogus", "bogus"),
    ],
)
def test_bad_embedding_requests(given: str, message: str, param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        wire.decode_embedding_request(f'{{"model":"e",{given}}}'.encode())
    assert caught.value.message.startswith(message)
    assert caught.value.param == param
