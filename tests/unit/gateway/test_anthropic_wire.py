"""The Anthropic dialect: requests from the real anthropic SDK decode to the internal model,
and what lockgate encodes parses back in the SDK (strict response validation) unmodified."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anthropic
import httpx2
import pytest

from lockgate.core.types import (
    ChatRequest,
    ChatResponse,
    Choice,
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
from lockgate.errors import InvalidRequest, UpstreamRateLimited
from lockgate.gateway import anthropic_wire as wire

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
USAGE = Usage(input_tokens=100, output_tokens=12, cached_input_tokens=60, cache_write_tokens=15)


class Gateway:
    """A mock transport standing in for lockgate: records what the SDK sends and
    answers with canned bytes."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.answer: Callable[[], tuple[int, bytes, str]] = lambda: (200, b"{}", "application/json")

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.bodies.append(request.content)
        status, body, kind = self.answer()
        return httpx2.Response(status, content=body, headers={"content-type": kind})

    def client(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(
            api_key="sk-ant-test",
            base_url="http://lockgate.test",
            http_client=httpx2.Client(transport=httpx2.MockTransport(self)),
            max_retries=0,
            _strict_response_validation=True,
        )


@pytest.fixture
def gateway() -> Gateway:
    return Gateway()


def _response(**choice: Any) -> ChatResponse:
    return ChatResponse(
        id="abc123", model="upstream", created=1, choices=[Choice(**choice)], usage=USAGE
    )


def _json(resp: ChatResponse) -> Callable[[], tuple[int, bytes, str]]:
    return lambda: (200, wire.encode_message_response(resp, model="claude-x"), "application/json")


# --- decoding ---------------------------------------------------------------------------


def test_decode_sdk_request_with_blocks_tools_and_options(gateway: Gateway) -> None:
    gateway.answer = _json(_response(text="ok"))
    gateway.client().messages.create(
        model="claude-x",
        max_tokens=256,
        system=[
            {"type": "text", "text": "You are terse."},
            {"type": "text", "text": "Use tools.", "cache_control": {"type": "ephemeral"}},
        ],
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "Weather?",
                        "cache_control": {"type": "ephemeral", "ttl": "5m"},
                    },
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"},
                    },
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://example.com/a.jpg"},
                    },
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": "notes"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "redacted_thinking", "data": "xyz"},
                    {"type": "text", "text": "Checking."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "is_error": True,
                        "content": [
                            {"type": "text", "text": "boom"},
                            {"type": "text", "text": "again"},
                        ],
                    },
                ],
            },
            {"role": "assistant", "content": "Partial"},
        ],
        tools=[
            {
                "name": "get_weather",
                "description": "Weather",
                "input_schema": SCHEMA,
                "cache_control": {"type": "ephemeral"},
            },
            {"type": "custom", "name": "noop", "input_schema": {"type": "object"}, "strict": True},
        ],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        stop_sequences=["END"],
        metadata={"user_id": "user-7"},
        thinking={"type": "enabled", "budget_tokens": 1024},
        service_tier="auto",
        output_config={
            "effort": "low",
            "format": {"type": "json_schema", "schema": {"type": "object"}},
        },
        extra_body={"temperature": 0.5, "top_p": 0.9, "top_k": 40},
    )
    assert wire.decode_messages_request(gateway.bodies[0]) == ChatRequest(
        model="claude-x",
        system="You are terse.\n\nUse tools.",
        messages=[
            Message(
                role="user",
                content=[
                    TextPart(text="Weather?"),
                    ImagePart(url="data:image/png;base64,iVBOR"),
                    ImagePart(url="https://example.com/a.jpg"),
                    TextPart(text="notes"),
                ],
            ),
            Message(
                role="assistant",
                content=[TextPart(text="Checking.")],
                tool_calls=[
                    ToolCall(id="toolu_1", name="get_weather", arguments='{"city":"Paris"}')
                ],
            ),
            Message(
                role="user",
                content=[
                    ToolResultPart(tool_call_id="toolu_1", content="18C"),
                    ToolResultPart(tool_call_id="toolu_2", content="boom\nagain", is_error=True),
                ],
            ),
            Message(role="assistant", content=[TextPart(text="Partial")]),
        ],
        max_tokens=256,
        temperature=0.5,
        top_p=0.9,
        top_k=40,
        stop=["END"],
        user="user-7",
        tools=[
            ToolSpec(name="get_weather", description="Weather", parameters=SCHEMA),
            ToolSpec(name="noop", parameters={"type": "object"}, strict=True),
        ],
        tool_choice=ToolChoice(mode="required", parallel=False),
        response_format=ResponseFormat(type="json_schema", schema={"type": "object"}),
        include_usage=True,
    )


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, ToolChoice(mode="auto")),
        (
            {"type": "auto", "disable_parallel_tool_use": False},
            ToolChoice(mode="auto", parallel=True),
        ),
        ({"type": "tool", "name": "f"}, ToolChoice(mode="tool", name="f")),
        ({"type": "none"}, ToolChoice(mode="none")),
    ],
)
def test_tool_choices(choice: dict[str, Any], expected: ToolChoice) -> None:
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "x"}],
        "tool_choice": choice,
        "stream": True,
    }
    request = wire.decode_messages_request(json.dumps(body).encode())
    assert (request.tool_choice, request.stream, request.system) == (expected, True, None)


def test_system_string_and_system_role_messages() -> None:
    body: dict[str, Any] = {
        "model": "m",
        "max_tokens": 5,
        "system": "Be kind.",
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "S"}]},
            {"role": "user", "content": "x"},
        ],
        "context_management": {"edits": []},
        "mcp_servers": [],
        "container": "c1",
    }
    request = wire.decode_messages_request(json.dumps(body).encode())
    assert (request.system, request.messages) == (
        "Be kind.",
        [
            Message(role="system", content=[TextPart(text="S")]),
            Message(role="user", content=[TextPart(text="x")]),
        ],
    )


def _body(content: Any, role: str = "user", **extra: Any) -> bytes:
    return json.dumps(
        {"model": "m", "max_tokens": 5, "messages": [{"role": role, "content": content}], **extra}
    ).encode()


OK_MSG = [{"role": "user", "content": "x"}]
BAD: list[tuple[bytes, str, str | None]] = [
    (
        b"{not json",
        "The request body is not valid JSON: object keys must be strings (byte 1)",
        None,
    ),
    (
        b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"\xff"}]}',
        "The request body is not valid JSON: invalid UTF-8",
        None,
    ),
    (b"[]", "Input should be a valid dictionary", None),
    (
        json.dumps({"model": "m", "messages": OK_MSG}).encode(),
        "max_tokens: Field required",
        "max_tokens",
    ),
    (json.dumps({"max_tokens": 5, "messages": OK_MSG}).encode(), "model: Field required", "model"),
    (
        json.dumps({"model": "", "max_tokens": 5, "messages": OK_MSG}).encode(),
        "model: String should have at least 1 character",
        "model",
    ),
    (
        json.dumps({"model": "m", "max_tokens": 5, "messages": []}).encode(),
        "messages: at least one message is required",
        "messages",
    ),
    (
        json.dumps({"model": "m", "max_tokens": "five", "messages": OK_MSG}).encode(),
        "max_tokens: Input should be a valid integer",
        "max_tokens",
    ),
    (
        json.dumps({"model": "m", "max_tokens": 0, "messages": OK_MSG}).encode(),
        "max_tokens: Input should be greater than or equal to 1",
        "max_tokens",
    ),
    (_body("x", foo=1), "foo: Extra inputs are not permitted", "foo"),
    (
        _body("x", temperature=1.5),
        "temperature: Input should be less than or equal to 1",
        "temperature",
    ),
    (_body("x", top_p=-1), "top_p: Input should be greater than or equal to 0", "top_p"),
    (
        _body("x", stop_sequences="END"),
        "stop_sequences: Input should be a valid list",
        "stop_sequences",
    ),
    (
        _body("x", role="bot"),
        "messages.0.role: Input should be 'user', 'assistant' or 'system'",
        "messages.0.role",
    ),
    (_body(5), "messages.0.content: Input should be a valid string or list", "messages.0.content"),
    (
        _body([{"text": "hi"}]),
        "messages.0.content.0.type: Field required",
        "messages.0.content.0.type",
    ),
    (
        _body([{"type": "text"}]),
        "messages.0.content.0.text: Field required",
        "messages.0.content.0.text",
    ),
    (
        _body([{"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}]),
        "messages.0.content.0: content block type 'server_tool_use' is not supported by this gateway",
        "messages.0.content.0.type",
    ),
    (
        _body([{"type": "search_result", "source": "s", "title": "t", "content": []}]),
        "messages.0.content.0: content block type 'search_result' is not supported by this gateway",
        "messages.0.content.0.type",
    ),
    (
        _body([{"type": "image", "source": {"type": "svg", "data": ""}}]),
        "messages.0.content.0.source: source type 'svg' is not supported by this gateway",
        "messages.0.content.0.source.type",
    ),
    (
        _body([{"type": "image", "source": {"type": "file", "file_id": "f"}}]),
        "messages.0.content.0.source: file sources (Files API) are not supported by this gateway",
        "messages.0.content.0.source",
    ),
    (
        _body(
            [
                {
                    "type": "document",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": ""},
                }
            ]
        ),
        "messages.0.content.0.source: only plain-text documents are supported by this gateway",
        "messages.0.content.0.source",
    ),
    (
        _body([{"type": "tool_use", "id": "t", "name": "f", "input": {}}]),
        "messages.0.content.0: 'tool_use' blocks are not allowed in user messages",
        "messages.0.content.0",
    ),
    (
        _body([{"type": "tool_result", "tool_use_id": "t"}], role="assistant"),
        "messages.0.content.0: 'tool_result' blocks are not allowed in assistant messages",
        "messages.0.content.0",
    ),
    (
        _body(
            [
                {
                    "type": "tool_result",
                    "tool_use_id": "t",
                    "content": [{"type": "image", "source": {"type": "url", "url": "u"}}],
                }
            ]
        ),
        "messages.0.content.0.content.0: images are not supported here by this gateway, only text",
        "messages.0.content.0.content.0",
    ),
    (
        _body("x", tools=[{"type": "web_search_20250305", "name": "web_search"}]),
        "tools.0: server tools ('web_search_20250305') are not supported by this gateway",
        "tools.0.type",
    ),
    (
        _body("x", tools=[{"name": "f"}]),
        "tools.0.custom.input_schema: Field required",
        "tools.0.input_schema",
    ),
    (
        _body("x", tool_choice={"type": "maybe"}),
        "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'",
        "tool_choice.type",
    ),
    (
        _body("x", mcp_servers=[{"type": "url", "url": "https://mcp", "name": "m"}]),
        "mcp_servers: MCP servers are not supported by this gateway",
        "mcp_servers",
    ),
]


@pytest.mark.parametrize(("body", "message", "param"), BAD)
def test_bad_requests(body: bytes, message: str, param: str | None) -> None:
    with pytest.raises(InvalidRequest) as caught:
        wire.decode_messages_request(body)
    assert caught.value.message.startswith(message)
    assert (caught.value.param, caught.value.anthropic_type) == (param, "invalid_request_error")


# --- responses --------------------------------------------------------------------------


def test_encode_response_golden_and_sdk_parses(gateway: Gateway) -> None:
    calls = [
        ToolCall(id="toolu_1", name="get_weather", arguments='{"city":"Paris"}'),
        ToolCall(id="toolu_2", name="f", arguments="not json"),
    ]
    resp = _response(text="Let me check.", tool_calls=calls, finish_reason="tool_calls")
    expected: dict[str, Any] = {
        "id": "msg_abc123",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [
            {"type": "text", "text": "Let me check."},
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "get_weather",
                "input": {"city": "Paris"},
            },
            {"type": "tool_use", "id": "toolu_2", "name": "f", "input": {}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 25,
            "output_tokens": 12,
            "cache_creation_input_tokens": 15,
            "cache_read_input_tokens": 60,
        },
    }
    assert json.loads(wire.encode_message_response(resp, model="claude-x")) == expected
    gateway.answer = _json(resp)
    message = gateway.client().messages.create(
        model="claude-x", max_tokens=5, messages=[{"role": "user", "content": "x"}]
    )
    assert message.model_dump(exclude_none=True) == {
        k: v for k, v in expected.items() if v is not None
    }


@pytest.mark.parametrize(
    ("finish", "stop_sequence", "stop_reason", "sent_sequence"),
    [
        ("stop", None, "end_turn", None),
        ("stop", "END", "stop_sequence", "END"),
        ("length", "END", "max_tokens", None),
        ("content_filter", None, "refusal", None),
        ("error", None, "end_turn", None),
    ],
)
def test_stop_reasons(
    finish: str, stop_sequence: str | None, stop_reason: str, sent_sequence: str | None
) -> None:
    resp = _response(text="t", finish_reason=finish)
    resp.stop_sequence = stop_sequence
    body = json.loads(wire.encode_message_response(resp, model="m"))
    assert (body["stop_reason"], body["stop_sequence"]) == (stop_reason, sent_sequence)


def test_empty_and_refusal_content() -> None:
    empty = json.loads(
        wire.encode_message_response(
            ChatResponse(id="msg_1", model="u", created=1, choices=[]), model="m"
        )
    )
    assert (empty["id"], empty["content"], empty["usage"]["input_tokens"]) == ("msg_1", [], 0)
    refusal = json.loads(
        wire.encode_message_response(
            _response(refusal="No.", finish_reason="content_filter"), model="m"
        )
    )
    assert refusal["content"] == [{"type": "text", "text": "No."}]


# --- streaming --------------------------------------------------------------------------

STREAM: list[StreamEvent] = [
    StreamStart(id="abc", model="upstream", created=1),
    StreamTextDelta(text="Checking"),
    StreamTextDelta(text=""),
    StreamTextDelta(text="Other choice", index=1),
    StreamToolCallStart(tool_index=0, id="toolu_1", name="get_weather"),
    StreamToolCallDelta(tool_index=0, arguments='{"city":'),
    StreamToolCallDelta(tool_index=0, arguments='"Paris"}'),
    StreamToolCallStart(tool_index=1, id="toolu_2", name="noop"),
    StreamTextDelta(text="Done."),
    StreamFinish(finish_reason="tool_calls"),
    StreamUsage(usage=USAGE),
]


def _events(encoder: wire.MessageStreamEncoder, events: list[StreamEvent]) -> bytes:
    return b"".join(encoder.encode(e) for e in events) + encoder.finish()


def test_stream_event_sequence_golden() -> None:
    body = _events(wire.MessageStreamEncoder("claude-x", input_tokens_estimate=90), STREAM)
    frames = [f.split("\ndata: ") for f in body.decode().split("\n\n") if f]
    assert [(name.removeprefix("event: "), json.loads(data)) for name, data in frames] == [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_abc",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-x",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": 90,
                        "output_tokens": 0,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0,
                    },
                },
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Checking"},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {},
                },
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '{"city":'},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '"Paris"}'},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 2,
                "content_block": {"type": "tool_use", "id": "toolu_2", "name": "noop", "input": {}},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 2}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 3,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 3,
                "delta": {"type": "text_delta", "text": "Done."},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 3}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {
                    "input_tokens": 25,
                    "output_tokens": 12,
                    "cache_creation_input_tokens": 15,
                    "cache_read_input_tokens": 60,
                },
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def test_sdk_stream_accumulates_final_message(gateway: Gateway) -> None:
    gateway.answer = lambda: (
        200,
        _events(wire.MessageStreamEncoder("claude-x"), STREAM),
        "text/event-stream",
    )
    with gateway.client().messages.stream(
        model="claude-x", max_tokens=5, messages=[{"role": "user", "content": "x"}]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert final.model_dump(exclude_none=True) == {
        "id": "msg_abc",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [
            {"type": "text", "text": "Checking"},
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "get_weather",
                "input": {"city": "Paris"},
            },
            {"type": "tool_use", "id": "toolu_2", "name": "noop", "input": {}},
            {"type": "text", "text": "Done."},
        ],
        "stop_reason": "tool_use",
        "usage": {
            "input_tokens": 25,
            "output_tokens": 12,
            "cache_creation_input_tokens": 15,
            "cache_read_input_tokens": 60,
        },
    }


def test_stream_without_usage_or_finish_and_stop_sequence() -> None:
    encoder = wire.MessageStreamEncoder("m")
    body = _events(
        encoder,
        [
            StreamStart(id="msg_x", model="u", created=1),
            StreamTextDelta(text="a"),
            StreamFinish(finish_reason="stop", stop_sequence="END"),
        ],
    )
    assert body.endswith(
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"stop_sequence","stop_sequence":"END"},"usage":{"output_tokens":0}}\n\n'
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    assert encoder.finish() == b""
    bare = wire.MessageStreamEncoder("m").finish()
    names = [line for line in bare.decode().splitlines() if line.startswith("event: ")]
    assert names == ["event: message_start", "event: message_delta", "event: message_stop"]


def test_sdk_raises_on_error_event(gateway: Gateway) -> None:
    encoder = wire.MessageStreamEncoder("claude-x")
    body = encoder.encode(STREAM[0]) + encoder.encode(STREAM[1])
    error = encoder.error(UpstreamRateLimited("Slow down."))
    assert (
        error
        == b'event: error\ndata: {"type":"error","error":{"type":"rate_limit_error","message":"Slow down."}}\n\n'
    )
    gateway.answer = lambda: (200, body + error, "text/event-stream")
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        for event in gateway.client().messages.create(
            model="claude-x", max_tokens=5, messages=[{"role": "user", "content": "x"}], stream=True
        ):
            seen.append(event.type)
    assert seen == ["message_start", "content_block_start", "content_block_delta"]
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "Slow down."},
    }


# --- errors, models ---------------------------------------------------------------------


def test_error_body_reaches_sdk(gateway: Gateway) -> None:
    err = InvalidRequest("max_tokens: Field required", param="max_tokens")
    body = wire.error_body(err, request_id="req_1")
    assert json.loads(body) == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"},
        "request_id": "req_1",
    }
    assert json.loads(wire.error_body(err))["request_id"] is None
    gateway.answer = lambda: (400, body, "application/json")
    with pytest.raises(anthropic.BadRequestError) as caught:
        gateway.client().messages.create(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.body == json.loads(body)


def test_models_list_and_model(gateway: Gateway) -> None:
    gateway.answer = lambda: (
        200,
        wire.encode_models_list(["fast", "claude"], 1700000000),
        "application/json",
    )
    models = list(gateway.client().models.list())
    assert [(m.id, m.display_name, m.created_at.isoformat(), m.type) for m in models] == [
        ("fast", "fast", "2023-11-14T22:13:20+00:00", "model"),
        ("claude", "claude", "2023-11-14T22:13:20+00:00", "model"),
    ]
    gateway.answer = lambda: (200, wire.encode_model("fast", 0), "application/json")
    assert gateway.client().models.retrieve("fast").id == "fast"
    assert json.loads(wire.encode_models_list([], 0)) == {
        "data": [],
        "has_more": False,
        "first_id": None,
        "last_id": None,
    }
