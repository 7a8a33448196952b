"""The shared HTTP plumbing: failures mapped to errors over a real local server, for
both adapters, non-streamed and streamed; the SSE reader; Retry-After parsing."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from email.utils import formatdate

import aiohttp
import pytest
from upstream_server import NOW, Reply, Upstream, collect

from lockgate.config.schema import AnthropicProviderConfig, OpenAIProviderConfig
from lockgate.core.types import (
    ChatRequest,
    ChatResponse,
    Message,
    StreamEvent,
    StreamStart,
    StreamTextDelta,
    TextPart,
)
from lockgate.errors import (
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from lockgate.providers._http import error_message, retry_after, sse_events
from lockgate.providers.anthropic import AnthropicProvider
from lockgate.providers.openai import OpenAIProvider

KEY = "sk-secret-key-0123456789"
REQUEST = ChatRequest(model="gw", messages=[Message(role="user", content=[TextPart(text="hi")])])

Call = Callable[[str, float], Awaitable[object]]


def make_call(kind: str, stream: bool, session: aiohttp.ClientSession) -> Call:
    """One chat call against `url` through the `kind` adapter, streamed or not."""

    async def call(url: str, seconds: float) -> object:
        if kind == "openai":
            config = OpenAIProviderConfig(type="openai", base_url=url + "/v1")
            provider: OpenAIProvider | AnthropicProvider = OpenAIProvider(
                "up", config, session=session, api_key=KEY, clock=lambda: NOW
            )
        else:
            provider = AnthropicProvider(
                "up",
                AnthropicProviderConfig(type="anthropic", base_url=url),
                session=session,
                api_key=KEY,
                clock=lambda: NOW,
            )
        if stream:
            return await collect(provider.stream(REQUEST, model="m", timeout=seconds))
        return await provider.chat(REQUEST, model="m", timeout=seconds)

    return call


KINDS = pytest.mark.parametrize("kind", ["openai", "anthropic"])
STREAM = pytest.mark.parametrize("stream", [False, True])


@KINDS
@STREAM
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after-ms": "1500", "Retry-After": "2"}, 1.5),
        ({}, None),
    ],
)
async def test_429_is_rate_limited_with_retry_after(
    upstream: Upstream,
    session: aiohttp.ClientSession,
    kind: str,
    stream: bool,
    headers: dict[str, str],
    expected: float | None,
) -> None:
    body = b'{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}'
    upstream.script(Reply(status=429, body=body, headers=headers))
    with pytest.raises(UpstreamRateLimited) as info:
        await make_call(kind, stream, session)(upstream.url, 5)
    err = info.value
    assert (err.message, err.upstream_status, err.retry_after, err.retryable) == (
        "up: Number of request tokens has exceeded your per-minute rate limit",
        429,
        expected,
        True,
    )


async def test_429_retry_after_as_http_date(
    upstream: Upstream, session: aiohttp.ClientSession
) -> None:
    upstream.script(
        Reply(status=429, headers={"Retry-After": formatdate(time.time() + 30, usegmt=True)})
    )
    with pytest.raises(UpstreamRateLimited) as info:
        await make_call("openai", False, session)(upstream.url, 5)
    assert info.value.retry_after is not None
    assert 28 <= info.value.retry_after <= 30


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3.5"}, 3.5),
        ({"retry-after": "-2"}, 0.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "soon", "retry-after": "4"}, 4.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:30 GMT"}, 30.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:27:00 GMT"}, 0.0),
        ({"retry-after": "whenever"}, None),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert retry_after(headers, now=now) == expected


@KINDS
@STREAM
@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (
            500,
            b'{"error":{"message":"The server had an error processing your request.","type":"server_error"}}',
            "up: The server had an error processing your request.",
        ),
        (503, b"<html>Service Unavailable</html>", "up: HTTP 503"),
        (
            529,
            b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
            "up: Overloaded",
        ),
    ],
)
async def test_5xx_is_a_retryable_upstream_error(
    upstream: Upstream,
    session: aiohttp.ClientSession,
    kind: str,
    stream: bool,
    status: int,
    body: bytes,
    message: str,
) -> None:
    upstream.script(Reply(status=status, body=body, headers={"Retry-After": "1"}))
    with pytest.raises(UpstreamError) as info:
        await make_call(kind, stream, session)(upstream.url, 5)
    err = info.value
    assert type(err) is UpstreamError
    assert (err.message, err.upstream_status, err.retry_after, err.retryable, err.status) == (
        message,
        status,
        1.0,
        True,
        502,
    )


@KINDS
@STREAM
@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (
            400,
            b'{"error":{"message":"Invalid \'messages[0].content\': string too long.","type":"invalid_request_error","param":"messages[0].content","code":"string_above_max_length"}}',
            "up: Invalid 'messages[0].content': string too long.",
        ),
        (
            400,
            b'{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: 100000 > 8192, which is the maximum allowed"}}',
            "up: max_tokens: 100000 > 8192, which is the maximum allowed",
        ),
        (
            404,
            b'{"error":"model \\"llama9\\" not found, try pulling it first"}',
            'up: model "llama9" not found, try pulling it first',
        ),
        (
            422,
            b'{"object":"error","message":"This model\'s maximum context length is 4096 tokens.","type":"BadRequestError","code":400}',
            "up: This model's maximum context length is 4096 tokens.",
        ),
        (413, b"request entity too large", "up: HTTP 413"),
        (
            401,
            b'{"error":{"message":"Incorrect API key provided: sk-secre************6789.","type":"invalid_request_error","code":"invalid_api_key"}}',
            "up: the upstream refused the gateway's credentials (HTTP 401)",
        ),
        (
            403,
            b'{"type":"error","error":{"type":"permission_error","message":"Your API key does not have permission"}}',
            "up: the upstream refused the gateway's credentials (HTTP 403)",
        ),
    ],
)
async def test_other_4xx_is_rejected(
    upstream: Upstream,
    session: aiohttp.ClientSession,
    kind: str,
    stream: bool,
    status: int,
    body: bytes,
    message: str,
) -> None:
    upstream.script(Reply(status=status, body=body))
    with pytest.raises(UpstreamRejected) as info:
        await make_call(kind, stream, session)(upstream.url, 5)
    err = info.value
    # An upstream refusing the gateway's own credentials is a 502 to the client, not a 401.
    client_status = 502 if status in (401, 403) else status
    assert (err.message, err.upstream_status, err.status, err.retryable) == (
        message,
        status,
        client_status,
        False,
    )


def test_error_message_is_cut_and_scrubbed() -> None:
    long = b'{"error":{"message":"' + b"x" * 2000 + b'"}}'
    assert error_message(long) == "x" * 497 + "..."
    echoed = b'{"error":{"message":"bad key sk-proj-abcdefghijkl1234 in request"}}'
    assert error_message(echoed) == "bad key [redacted] in request"
    assert error_message(b"not json") is None
    assert error_message(b'{"error":{"code":1}}') is None


@KINDS
@STREAM
async def test_connection_refused_is_unavailable(
    session: aiohttp.ClientSession, closed_port: int, kind: str, stream: bool
) -> None:
    with pytest.raises(UpstreamUnavailable) as info:
        await make_call(kind, stream, session)(f"http://127.0.0.1:{closed_port}", 5)
    assert info.value.message == "up: connection failed (ClientConnectorError)"
    assert KEY not in str(info.value)
    assert isinstance(info.value.__cause__, aiohttp.ClientConnectorError)


@KINDS
@STREAM
async def test_slow_answer_times_out(
    upstream: Upstream, session: aiohttp.ClientSession, kind: str, stream: bool
) -> None:
    upstream.script(Reply(delay=5))
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout, match=r"^up: timed out waiting for the upstream$"):
        await make_call(kind, stream, session)(upstream.url, 0.2)
    assert time.monotonic() - started < 2


OPENAI_FIRST = b'data: {"id":"c1","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n'
ANTHROPIC_FIRST = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant",'
    b'"model":"claude","content":[],"stop_reason":null,"usage":{"input_tokens":3,"output_tokens":1}}}\n\n'
)


@KINDS
async def test_stream_idle_timeout_after_first_event(
    upstream: Upstream, session: aiohttp.ClientSession, kind: str
) -> None:
    first = OPENAI_FIRST if kind == "openai" else ANTHROPIC_FIRST
    upstream.script(Reply(chunks=[first, b"data: [DONE]\n\n"], chunk_delay=5))
    config = OpenAIProviderConfig(type="openai", base_url=upstream.url + "/v1")
    provider: OpenAIProvider | AnthropicProvider = (
        OpenAIProvider("up", config, session=session, api_key=KEY)
        if kind == "openai"
        else AnthropicProvider(
            "up",
            AnthropicProviderConfig(type="anthropic", base_url=upstream.url),
            session=session,
            api_key=KEY,
            clock=lambda: NOW,
        )
    )
    got: list[StreamEvent] = []
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        async for event in provider.stream(REQUEST, model="m", timeout=0.3):
            got.append(event)
    assert got == (
        [StreamStart(id="c1", model="m", created=1), StreamTextDelta(text="Hel")]
        if kind == "openai"
        else [StreamStart(id="msg_1", model="claude", created=int(NOW))]
    )
    assert 0.25 < time.monotonic() - started < 2


@KINDS
@STREAM
async def test_malformed_answer(
    upstream: Upstream, session: aiohttp.ClientSession, kind: str, stream: bool
) -> None:
    upstream.script(
        Reply(body=b"<html>proxy login</html>")
        if not stream
        else Reply(chunks=[b"data: <html>\n\n"])
    )
    with pytest.raises(UpstreamError, match=r"^up: malformed response"):
        await make_call(kind, stream, session)(upstream.url, 5)


async def test_success_returns_the_answer(
    upstream: Upstream, session: aiohttp.ClientSession
) -> None:
    upstream.script(Reply(body=b'{"id":"x","created":2,"model":"m","choices":[]}'))
    got = await make_call("openai", False, session)(upstream.url, 5)
    assert got == ChatResponse(id="x", model="m", created=2, choices=[])


# --- the SSE reader --------------------------------------------------------------------


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _events(*parts: bytes) -> list[tuple[bytes, bytes]]:
    return [e async for e in sse_events(_chunks(*parts))]


async def test_sse_reader_splits_events_across_any_chunking() -> None:
    text = (
        b": keep-alive comment\r\n\r\n"
        b'event: message_start\r\ndata: {"a":1}\r\n\r\n'
        b"id: 7\nretry: 100\ndata: first line\ndata:second line\n\n"
        b"event: ping\ndata: {}\n\n"
        b"data: caf\xc3\xa9\n\n"
        b"data: [DONE]"  # no final newline
    )
    expected = [
        (b"message_start", b'{"a":1}'),
        (b"", b"first line\nsecond line"),
        (b"ping", b"{}"),
        (b"", "café".encode()),
        (b"", b"[DONE]"),
    ]
    assert await _events(text) == expected
    for size in (1, 2, 3, 7, 64):
        assert await _events(*[text[i : i + size] for i in range(0, len(text), size)]) == expected


async def test_sse_reader_long_lines_and_empty_body() -> None:
    big = b"x" * 300_000
    assert await _events(b"data: " + big[:100_000], big[100_000:], b"\n\n") == [(b"", big)]
    assert await _events() == []
    assert await _events(b"event: lonely\n\n") == []


@KINDS
async def test_closing_a_stream_early_frees_the_connection(
    upstream: Upstream, session: aiohttp.ClientSession, kind: str
) -> None:
    first = OPENAI_FIRST if kind == "openai" else ANTHROPIC_FIRST
    upstream.script(Reply(chunks=[first, b"data: [DONE]\n\n"], chunk_delay=5))
    config = OpenAIProviderConfig(type="openai", base_url=upstream.url + "/v1")
    provider: OpenAIProvider | AnthropicProvider = (
        OpenAIProvider("up", config, session=session, api_key=KEY)
        if kind == "openai"
        else AnthropicProvider(
            "up",
            AnthropicProviderConfig(type="anthropic", base_url=upstream.url),
            session=session,
            api_key=KEY,
        )
    )
    events = provider.stream(REQUEST, model="m", timeout=5)
    assert isinstance(await anext(events), StreamStart)
    assert isinstance(events, AsyncGenerator)  # so the router can close it at once
    await events.aclose()
    assert session.connector is not None
    # No public count of connections in use; this one is what a leak would show in.
    assert not session.connector._acquired  # pyright: ignore[reportPrivateUsage]
