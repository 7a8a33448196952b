"""A scripted upstream over real HTTP on 127.0.0.1 (the fixtures are in conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from lockgate.core.types import (
    ChatResponse,
    Choice,
    StreamEvent,
    StreamStart,
    StreamTextDelta,
    StreamToolCallDelta,
    StreamToolCallStart,
    StreamUsage,
    ToolCall,
    Usage,
)

NOW = 1_700_000_000


@dataclass
class Reply:
    """One scripted answer: a whole body, or `chunks` written one by one (a stream)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {})
    chunks: list[bytes] | None = None
    delay: float = 0.0  # before the status line
    chunk_delay: float = 0.0  # after each chunk


@dataclass
class Recorded:
    method: str
    path_qs: str
    headers: dict[str, str]
    body: bytes


class Upstream:
    """Answers each request with the next of `replies` (the last one repeats)."""

    def __init__(self) -> None:
        self.replies: list[Reply] = [Reply()]
        self.requests: list[Recorded] = []
        self.url = ""
        self.release = asyncio.Event()  # set at teardown: cuts every delay short

    def script(self, *replies: Reply) -> None:
        self.replies = list(replies)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Recorded(request.method, request.path_qs, dict(request.headers), body))
        reply = self.replies[min(len(self.requests), len(self.replies)) - 1]
        await self._wait(reply.delay)
        if reply.chunks is None:
            return web.Response(status=reply.status, body=reply.body, headers=reply.headers)
        resp = web.StreamResponse(
            status=reply.status, headers={"Content-Type": "text/event-stream", **reply.headers}
        )
        await resp.prepare(request)
        try:
            for chunk in reply.chunks:
                await resp.write(chunk)
                await self._wait(reply.chunk_delay)
            await resp.write_eof()
        except ConnectionError:
            pass  # the client gave up (a timeout test)
        return resp

    async def _wait(self, seconds: float) -> None:
        if seconds:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), seconds)


async def collect(events: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    return [e async for e in events]


def chunked(data: bytes, size: int) -> list[bytes]:
    """`data` cut into pieces of `size` bytes, so lines (and UTF-8) split across reads."""
    return [data[i : i + size] for i in range(0, len(data), size)]


def assemble(events: list[StreamEvent]) -> ChatResponse:
    """The answer a client would build from a stream, to compare with the non-streamed one."""
    start = events[0]
    assert isinstance(start, StreamStart)
    choices: dict[int, Choice] = {}
    usage = Usage()
    stop_sequence: str | None = None
    for e in events[1:]:
        if isinstance(e, StreamUsage):
            usage = e.usage
            continue
        assert not isinstance(e, StreamStart)
        choice = choices.setdefault(e.index, Choice(index=e.index))
        if isinstance(e, StreamTextDelta):
            choice.text += e.text
        elif isinstance(e, StreamToolCallStart):
            assert e.tool_index == len(choice.tool_calls)
            choice.tool_calls.append(ToolCall(id=e.id, name=e.name, arguments=""))
        elif isinstance(e, StreamToolCallDelta):
            choice.tool_calls[e.tool_index].arguments += e.arguments
        else:
            choice.finish_reason = e.finish_reason
            stop_sequence = e.stop_sequence
    return ChatResponse(
        id=start.id,
        model=start.model,
        created=start.created,
        choices=[choices[i] for i in sorted(choices)],
        usage=usage,
        stop_sequence=stop_sequence,
    )
