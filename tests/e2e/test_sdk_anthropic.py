"""The official Anthropic SDK against `lockgate serve` and a fake upstream."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest
from tests.conftest import ADMIN_KEY, Server

from lockgate.testing import FakeProvider

TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


@pytest.fixture
def client(server: Server) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=server.url, api_key=ADMIN_KEY, max_retries=0) as c:
        yield c


@pytest.mark.parametrize("model", ["claude", "fast", "azure"])
def test_messages_non_streaming(client: anthropic.Anthropic, model: str) -> None:
    raw = client.messages.with_raw_response.create(
        model=model,
        max_tokens=64,
        system="be brief",
        messages=[{"role": "user", "content": "hello anthropic"}],
    )
    message = raw.parse()
    assert raw.headers["x-request-id"]
    assert message.type == "message" and message.role == "assistant"
    assert message.model == model
    assert message.content[0].type == "text" and "hello anthropic" in message.content[0].text
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


@pytest.mark.parametrize("model", ["claude", "fast"])
def test_messages_streaming_event_order(client: anthropic.Anthropic, model: str) -> None:
    with client.messages.stream(
        model=model, max_tokens=64, messages=[{"role": "user", "content": "stream anthropic"}]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start"
    assert kinds[-1] == "message_stop"
    assert "content_block_start" in kinds and "content_block_stop" in kinds and "message_delta" in kinds
    assert "stream anthropic" in final.content[0].text  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


@pytest.mark.parametrize("model", ["claude", "fast"])
@pytest.mark.parametrize("stream", [False, True])
def test_tool_use(client: anthropic.Anthropic, model: str, stream: bool) -> None:
    kwargs = dict(model=model, max_tokens=64, tools=TOOLS,
                  messages=[{"role": "user", "content": "please call_tool now"}])
    if stream:
        with client.messages.stream(**kwargs) as s:  # type: ignore[arg-type]
            message = s.get_final_message()
    else:
        message = client.messages.create(**kwargs)  # type: ignore[arg-type]
    assert message.stop_reason == "tool_use"
    tool = next(b for b in message.content if b.type == "tool_use")
    assert tool.name == "get_weather" and isinstance(tool.input, dict)  # type: ignore[union-attr]


def test_stop_sequences_reach_openai_upstream(client: anthropic.Anthropic, fake: FakeProvider) -> None:
    client.messages.create(
        model="fast", max_tokens=10, stop_sequences=["END"], messages=[{"role": "user", "content": "x"}]
    )
    body = fake.requests[-1].json
    assert body["stop"] == ["END"] and body["max_tokens"] == 10


def test_wrong_key_is_401_in_anthropic_format(server: Server) -> None:
    with anthropic.Anthropic(base_url=server.url, api_key="wrong", max_retries=0) as bad, \
            pytest.raises(anthropic.AuthenticationError) as info:
        bad.messages.create(model="claude", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    body = info.value.body
    assert isinstance(body, dict) and body["type"] == "error"  # type: ignore[index]
    assert body["error"]["type"] == "authentication_error"  # type: ignore[index]


def test_missing_max_tokens_is_400(server: Server) -> None:
    import httpx

    r = httpx.post(server.url + "/v1/messages", headers={"x-api-key": ADMIN_KEY},
                   json={"model": "claude", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in r.json()["error"]["message"]
