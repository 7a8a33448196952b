"""The fake provider speaks the wire formats the official SDKs accept.

Every test drives `lockgate.testing.FakeProvider` over real HTTP with the `openai` and
`anthropic` SDKs (or raw httpx where an SDK would hide the detail).
"""

from __future__ import annotations

import base64
import json
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import anthropic
import httpx
import httpx2
import openai
import pytest

from lockgate import testing
from lockgate.testing import FakeProvider, RecordedRequest

KEY = "sk-fake-test"
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look something up.",
            "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}},
        },
    }
]
ANTHROPIC_TOOLS: list[Any] = [
    {"name": "lookup", "description": "Look something up.", "input_schema": {"type": "object", "properties": {}}}
]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeProvider]:
    with FakeProvider(api_key=KEY) as fake:
        yield fake


@pytest.fixture
def fake(server: FakeProvider) -> Iterator[FakeProvider]:
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def oai(fake: FakeProvider) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake.url + "/v1", api_key=KEY, max_retries=0) as client:
        yield client


@pytest.fixture
def claude(fake: FakeProvider) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=fake.url, api_key=KEY, max_retries=0) as client:
        yield client


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def test_public_api_is_pinned() -> None:
    assert testing.__all__ == ["FakeProvider", "RecordedRequest", "Reply"]


# --- OpenAI ----------------------------------------------------------------------------


def test_openai_chat_echoes_with_word_usage(oai: openai.OpenAI) -> None:
    done = oai.chat.completions.create(model="fake-model", messages=user("hello there"))

    assert done.object == "chat.completion"
    assert done.model == "fake-model"
    assert done.choices[0].message.content == "echo: hello there"
    assert done.choices[0].finish_reason == "stop"
    assert done.usage is not None
    assert (done.usage.prompt_tokens, done.usage.completion_tokens, done.usage.total_tokens) == (2, 3, 5)


def test_openai_stream_with_usage(oai: openai.OpenAI) -> None:
    chunks = list(
        oai.chat.completions.create(
            model="fake-model",
            messages=[{"role": "system", "content": "be brief"}, *user("one two three")],
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (5, 4)


def test_openai_stream_without_usage_has_none(oai: openai.OpenAI) -> None:
    chunks = list(oai.chat.completions.create(model="fake-model", messages=user("hi"), stream=True))

    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_omit_stream_usage(fake: FakeProvider, oai: openai.OpenAI) -> None:
    fake.omit_stream_usage()
    scripted = list(
        oai.chat.completions.create(
            model="fake-model", messages=user("hi"), stream=True, stream_options={"include_usage": True}
        )
    )
    fake.reset()
    directed = list(
        oai.chat.completions.create(
            model="fake-nousage", messages=user("hi"), stream=True, stream_options={"include_usage": True}
        )
    )

    assert all(c.usage is None and c.choices for c in [*scripted, *directed])


def test_openai_max_tokens_and_stop(oai: openai.OpenAI) -> None:
    cut = oai.chat.completions.create(model="fake-model", messages=user("a b c d e"), max_tokens=3)
    stopped = oai.chat.completions.create(model="fake-model", messages=user("a b STOP c"), stop=["STOP"])

    assert (cut.choices[0].message.content, cut.choices[0].finish_reason) == ("echo: a b", "length")
    assert cut.usage is not None and cut.usage.completion_tokens == 3
    assert (stopped.choices[0].message.content, stopped.choices[0].finish_reason) == ("echo: a b ", "stop")


def test_openai_n_choices(oai: openai.OpenAI) -> None:
    done = oai.chat.completions.create(model="fake-model", messages=user("hi"), n=2)

    assert [c.index for c in done.choices] == [0, 1]
    assert done.usage is not None and done.usage.completion_tokens == 4


def test_openai_tool_call(oai: openai.OpenAI) -> None:
    done = oai.chat.completions.create(model="fake-model", messages=user("please call_tool"), tools=TOOLS)

    choice = done.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert (call.function.name, json.loads(call.function.arguments)) == ("lookup", {"x": 1})


def test_openai_streamed_tool_call_arrives_in_pieces(oai: openai.OpenAI) -> None:
    chunks = list(
        oai.chat.completions.create(model="fake-model", messages=user("call_tool now"), tools=TOOLS, stream=True)
    )

    deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert len(deltas) > 2
    assert deltas[0].id is not None and deltas[0].function is not None and deltas[0].function.name == "lookup"
    arguments = "".join(d.function.arguments or "" for d in deltas if d.function is not None)
    assert json.loads(arguments) == {"x": 1}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_openai_tool_result_is_answered_with_text(oai: openai.OpenAI) -> None:
    messages: list[Any] = [
        *user("call_tool"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ]
    done = oai.chat.completions.create(model="fake-model", messages=messages, tools=TOOLS)

    assert (done.choices[0].message.content, done.choices[0].finish_reason) == ("echo: 42", "stop")


def test_openai_forced_tool_choice(oai: openai.OpenAI) -> None:
    done = oai.chat.completions.create(model="fake-model", messages=user("hi"), tools=TOOLS, tool_choice="required")

    assert done.choices[0].finish_reason == "tool_calls"


def test_embeddings_float_and_base64_agree(oai: openai.OpenAI, fake: FakeProvider) -> None:
    floats = oai.embeddings.create(model="fake-embed", input=["a b", "c"], encoding_format="float")
    default = oai.embeddings.create(model="fake-embed", input=["a b", "c"])  # the SDK asks for base64
    raw = httpx.post(
        fake.url + "/v1/embeddings",
        json={"model": "fake-embed", "input": "a b", "encoding_format": "base64", "dimensions": 4},
        headers={"authorization": f"Bearer {KEY}"},
    ).json()

    assert [d.embedding for d in floats.data] == [d.embedding for d in default.data]
    assert len(floats.data[0].embedding) == 16
    assert floats.data[0].embedding != floats.data[1].embedding
    assert abs(sum(v * v for v in floats.data[0].embedding) - 1.0) < 1e-5
    assert (floats.usage.prompt_tokens, floats.model) == (3, "fake-embed")
    assert len(struct.unpack("<4f", base64.b64decode(raw["data"][0]["embedding"]))) == 4


def test_embeddings_of_tokens(oai: openai.OpenAI) -> None:
    done = oai.embeddings.create(model="fake-embed", input=[[1, 2, 3]], encoding_format="float")

    assert done.usage.prompt_tokens == 3


def test_models(oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    assert [m.id for m in oai.models.list()] == ["fake-model", "fake-embed"]
    assert [m.id for m in claude.models.list()] == ["fake-model", "fake-embed"]


def test_azure_deployment(fake: FakeProvider) -> None:
    with openai.AzureOpenAI(azure_endpoint=fake.url, api_key=KEY, api_version="2024-10-21", max_retries=0) as az:
        done = az.chat.completions.create(model="my-deployment", messages=user("hi"))
        with pytest.raises(openai.AuthenticationError):
            az.with_options(api_key="wrong").chat.completions.create(model="d", messages=user("hi"))

    assert done.model == "my-deployment"
    assert done.choices[0].message.content == "echo: hi"
    path, headers, body = fake.requests[0]
    assert path == "/openai/deployments/my-deployment/chat/completions?api-version=2024-10-21"
    assert headers["api-key"] == KEY
    assert body["messages"] == user("hi")


def test_azure_requires_api_version(fake: FakeProvider) -> None:
    reply = httpx.post(
        fake.url + "/openai/deployments/d/chat/completions", json={"messages": user("hi")}, headers={"api-key": KEY}
    )

    assert reply.status_code == 404


# --- Anthropic -------------------------------------------------------------------------


def test_anthropic_message(claude: anthropic.Anthropic) -> None:
    done = claude.messages.create(model="fake-model", max_tokens=100, system="be kind", messages=user("hello"))

    assert (done.type, done.role, done.model) == ("message", "assistant", "fake-model")
    assert done.content[0].type == "text" and done.content[0].text == "echo: hello"
    assert (done.stop_reason, done.stop_sequence) == ("end_turn", None)
    assert (done.usage.input_tokens, done.usage.output_tokens) == (3, 2)


def test_anthropic_max_tokens_and_stop_sequence(claude: anthropic.Anthropic) -> None:
    cut = claude.messages.create(model="fake-model", max_tokens=2, messages=user("a b c"))
    stopped = claude.messages.create(model="fake-model", max_tokens=50, messages=user("a b c"), stop_sequences=["b"])

    assert (cut.stop_reason, cut.usage.output_tokens) == ("max_tokens", 2)
    assert (stopped.stop_reason, stopped.stop_sequence) == ("stop_sequence", "b")
    assert stopped.content[0].type == "text" and stopped.content[0].text == "echo: a "


def test_anthropic_stream_event_sequence(fake: FakeProvider, claude: anthropic.Anthropic) -> None:
    body = {"model": "fake-model", "max_tokens": 100, "messages": user("x y"), "stream": True}
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    with httpx.stream("POST", fake.url + "/v1/messages", json=body, headers=headers) as reply:
        lines = [line for line in reply.iter_lines() if line.startswith("event: ")]
    events = list(claude.messages.create(model="fake-model", max_tokens=100, messages=user("x y"), stream=True))

    assert reply.headers["content-type"] == "text/event-stream"
    assert [line.removeprefix("event: ") for line in lines] == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 3,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert [e.type for e in events] == [k.removeprefix("event: ") for k in lines if k != "event: ping"]


def test_anthropic_stream_helper_accumulates(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model="fake-model", max_tokens=100, messages=user("stream me")) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

    assert text == "echo: stream me"
    assert final.content[0].type == "text" and final.content[0].text == text
    assert (final.stop_reason, final.usage.input_tokens, final.usage.output_tokens) == ("end_turn", 2, 3)


def test_anthropic_tool_use(claude: anthropic.Anthropic) -> None:
    done = claude.messages.create(model="fake-model", max_tokens=100, messages=user("call_tool"), tools=ANTHROPIC_TOOLS)
    with claude.messages.stream(
        model="fake-model", max_tokens=100, messages=user("call_tool"), tools=ANTHROPIC_TOOLS
    ) as stream:
        streamed = stream.get_final_message()

    for message in (done, streamed):
        block = message.content[0]
        assert message.stop_reason == "tool_use"
        assert block.type == "tool_use" and (block.name, block.input) == ("lookup", {"x": 1})


def test_anthropic_tool_result_is_answered_with_text(claude: anthropic.Anthropic) -> None:
    messages: list[Any] = [
        *user("call_tool"),
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "lookup", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "42"}]},
    ]
    done = claude.messages.create(model="fake-model", max_tokens=50, messages=messages, tools=ANTHROPIC_TOOLS)

    assert done.stop_reason == "end_turn"
    assert done.content[0].type == "text" and done.content[0].text == "echo: 42"


def test_anthropic_requires_version_and_max_tokens(fake: FakeProvider) -> None:
    body = {"model": "fake-model", "messages": user("hi")}
    no_version = httpx.post(fake.url + "/v1/messages", json={**body, "max_tokens": 5}, headers={"x-api-key": KEY})
    no_max = httpx.post(fake.url + "/v1/messages", json=body, headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"})

    assert no_version.status_code == no_max.status_code == 400
    assert no_max.json()["type"] == "error"
    assert no_max.json()["error"]["type"] == "invalid_request_error"


def test_anthropic_count_tokens(claude: anthropic.Anthropic) -> None:
    counted = claude.messages.count_tokens(model="fake-model", messages=user("one two three"))

    assert counted.input_tokens == 3


# --- keys, failures and scripting ------------------------------------------------------


def test_wrong_key_is_refused_in_each_dialect(fake: FakeProvider) -> None:
    with (
        openai.OpenAI(base_url=fake.url + "/v1", api_key="nope", max_retries=0) as bad_oai,
        pytest.raises(openai.AuthenticationError) as oai_err,
    ):
        bad_oai.chat.completions.create(model="fake-model", messages=user("hi"))
    with (
        anthropic.Anthropic(base_url=fake.url, api_key="nope", max_retries=0) as bad_claude,
        pytest.raises(anthropic.AuthenticationError) as claude_err,
    ):
        bad_claude.messages.create(model="fake-model", max_tokens=5, messages=user("hi"))

    assert oai_err.value.code == "invalid_api_key"
    assert claude_err.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "Incorrect API key provided."},
    }


def test_no_key_needed_when_none_configured() -> None:
    with FakeProvider() as open_fake, openai.OpenAI(base_url=open_fake.url + "/v1", api_key="any") as client:
        done = client.chat.completions.create(model="fake-model", messages=user("hi"))

    assert done.choices[0].message.content == "echo: hi"


def test_fail_next_then_recover(fake: FakeProvider, oai: openai.OpenAI) -> None:
    fake.fail_next(1, status=429, retry_after=7)
    fake.fail_next(1, status=500)

    with pytest.raises(openai.RateLimitError) as limited:
        oai.chat.completions.create(model="fake-model", messages=user("hi"))
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="fake-model", messages=user("hi"))
    done = oai.chat.completions.create(model="fake-model", messages=user("hi"))

    assert limited.value.response.headers["retry-after"] == "7"
    assert limited.value.code == "rate_limit_exceeded"
    assert done.choices[0].message.content == "echo: hi"


def test_sdk_retries_through_scripted_failures(fake: FakeProvider) -> None:
    fake.fail_next(2, status=503, retry_after=0.01)
    with openai.OpenAI(base_url=fake.url + "/v1", api_key=KEY, max_retries=2) as client:
        done = client.chat.completions.create(model="fake-model", messages=user("hi"))

    assert done.choices[0].message.content == "echo: hi"
    assert len(fake.requests) == 3


def test_fail_next_with_custom_body(fake: FakeProvider, claude: anthropic.Anthropic) -> None:
    fake.fail_next(1, status=529)
    fake.fail_next(1, status=502, body="<html>bad gateway</html>")

    with pytest.raises(anthropic.APIStatusError) as overloaded:
        claude.messages.create(model="fake-model", max_tokens=5, messages=user("hi"))
    with pytest.raises(anthropic.APIStatusError) as html:
        claude.messages.create(model="fake-model", max_tokens=5, messages=user("hi"))

    assert overloaded.value.status_code == 529
    assert overloaded.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Scripted failure (529)."},
    }
    assert (html.value.status_code, html.value.response.text) == (502, "<html>bad gateway</html>")


def test_delay(fake: FakeProvider, oai: openai.OpenAI) -> None:
    fake.set_delay(0.3)
    started = time.perf_counter()
    oai.chat.completions.create(model="fake-model", messages=user("hi"))

    assert time.perf_counter() - started >= 0.3


def test_cut_stream(fake: FakeProvider, oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    fake.cut_stream_after(2)
    received: list[str] = []

    with pytest.raises((httpx2.HTTPError, openai.APIError)):
        for chunk in oai.chat.completions.create(model="fake-model", messages=user("a b c"), stream=True):
            received.append(chunk.id)
    with pytest.raises((httpx2.HTTPError, anthropic.APIError)):
        list(claude.messages.create(model="fake-model", max_tokens=9, messages=user("a b c"), stream=True))

    assert len(received) == 2


def test_fail_stream_before_first_byte(fake: FakeProvider, oai: openai.OpenAI) -> None:
    fake.fail_stream_before_first_byte()

    with pytest.raises(openai.APIConnectionError):
        oai.chat.completions.create(model="fake-model", messages=user("hi"), stream=True)
    done = oai.chat.completions.create(model="fake-model", messages=user("hi"))  # not streaming: unaffected

    assert done.choices[0].message.content == "echo: hi"


def test_reply_with_text_and_callable(fake: FakeProvider, oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    fake.reply_with("fixed answer")
    fixed = oai.chat.completions.create(model="fake-model", messages=user("hi"))
    fake.reply_with(lambda body: f"saw {len(body['messages'])} message(s)")
    computed = claude.messages.create(model="fake-model", max_tokens=50, messages=user("hi"))
    fake.reply_with("sure, call_tool")
    tool = oai.chat.completions.create(model="fake-model", messages=user("hi"), tools=TOOLS)

    assert fixed.choices[0].message.content == "fixed answer"
    assert computed.content[0].type == "text" and computed.content[0].text == "saw 1 message(s)"
    assert tool.choices[0].finish_reason == "tool_calls"


def test_requests_are_recorded_and_reset(fake: FakeProvider, oai: openai.OpenAI) -> None:
    oai.chat.completions.create(model="fake-model", messages=user("hi"), extra_headers={"X-Trace": "t1"})
    record = fake.requests[0]
    fake.reset()

    assert isinstance(record, RecordedRequest)
    assert record.path == "/v1/chat/completions"
    assert record.headers["x-trace"] == "t1"
    assert record.headers["Authorization"] == f"Bearer {KEY}"
    assert record.json == {"model": "fake-model", "messages": user("hi")}
    assert fake.requests == []


# --- directives in the model name ------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "error"),
    [
        ("fake-fail-503", openai.InternalServerError),
        ("fake-fail-429", openai.RateLimitError),
        ("fake-400", openai.BadRequestError),
        ("fake-model-404", openai.NotFoundError),
        ("fake-drop", openai.APIConnectionError),
    ],
)
def test_failure_directives(oai: openai.OpenAI, model: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        oai.chat.completions.create(model=model, messages=user("hi"))


def test_fail_times_and_retry_after_directive(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as first:
        oai.chat.completions.create(model="fake-fail-429-times-1-retry-2", messages=user("hi"))
    second = oai.chat.completions.create(model="fake-fail-429-times-1-retry-2", messages=user("hi"))

    assert first.value.response.headers["retry-after"] == "2"
    assert second.choices[0].message.content == "echo: hi"


def test_a_429_directive_says_when_to_retry(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as limited:
        oai.chat.completions.create(model="fake-fail-429", messages=user("hi"))

    assert limited.value.response.headers["retry-after"] == "1"


def test_slow_directive(oai: openai.OpenAI) -> None:
    started = time.perf_counter()
    oai.chat.completions.create(model="fake-slow-0.3", messages=user("hi"))

    assert time.perf_counter() - started >= 0.3


def test_cut_and_gap_directives(claude: anthropic.Anthropic) -> None:
    events: list[str] = []
    started = time.perf_counter()

    with pytest.raises((httpx2.HTTPError, anthropic.APIError)):
        for event in claude.messages.create(model="fake-cut-3-gap-0.05", max_tokens=9, messages=user("a b"), stream=True):
            events.append(event.type)

    assert events == ["message_start", "content_block_start"]  # and a ping, which the SDK skips
    assert time.perf_counter() - started >= 0.1


def test_tool_directive(claude: anthropic.Anthropic) -> None:
    done = claude.messages.create(model="fake-tool", max_tokens=50, messages=user("hi"), tools=ANTHROPIC_TOOLS)

    assert done.stop_reason == "tool_use"


# --- other ways to run it --------------------------------------------------------------


async def test_async_form() -> None:
    body = {"model": "m", "messages": user("hi")}
    async with (
        FakeProvider() as fake,
        aiohttp.ClientSession() as session,
        session.post(fake.url + "/v1/chat/completions", json=body) as reply,
    ):
        answer = await reply.json()

    assert answer["choices"][0]["message"]["content"] == "echo: hi"


def test_standalone_process() -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "lockgate.testing", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert child.stdout is not None
        url = child.stdout.readline().strip()
        models = httpx.get(url + "/v1/models").json()
    finally:
        child.terminate()
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()

    assert url.startswith("http://127.0.0.1:")
    assert models["data"][0]["id"] == "fake-model"
