"""The upstream hot path's HTTP/1.1 client (`lockgate.mcp.http1`) against a scripted TCP
server: what it sends, how it reads JSON, event streams and the rest, and when it
reuses a connection."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from lockgate.mcp.http1 import Http1Pool, ReplyTooLarge, ServerDisconnected


@dataclass
class _Then:
    """One scripted answer: bytes to write, then keep the connection, close it, or hang."""

    data: bytes
    after: str = "keep"  # keep | close | hang


@dataclass
class _Server:
    script: list[_Then]
    port: int = 0
    requests: list[bytes] = field(default_factory=lambda: [])
    connections: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                self.requests.append(head + await reader.readexactly(length))
                then = self.script.pop(0)
                writer.write(then.data)
                await writer.drain()
                if then.after == "close":
                    break
                if then.after == "hang":
                    await self.done.wait()
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def _serve(
    *script: _Then, path: str = "/mcp", limit: int | None = None
) -> AsyncIterator[tuple[_Server, Http1Pool]]:
    server = _Server(list(script))
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = server.port = listener.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}{path}"
    pool = Http1Pool(url) if limit is None else Http1Pool(url, max_reply_bytes=limit)
    try:
        yield server, pool
    finally:
        server.done.set()
        await pool.aclose()
        listener.close()
        await listener.wait_closed()


def _reply(body: bytes, *, kind: str = "application/json", status: str = "200 OK", extra: str = "",
           framing: str | None = None) -> bytes:
    framing = f"Content-Length: {len(body)}\r\n" if framing is None else framing
    return f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\n{extra}{framing}\r\n".encode() + body


def _chunks(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts)


def _chunked(*parts: bytes) -> bytes:
    return _chunks(*parts) + b"0\r\n\r\n"


RESULT: dict[str, Any] = {"jsonrpc": "2.0", "id": 7, "result": {"content": []}}
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json",
           "Authorization": "Bearer up-secret", "Mcp-Name": "lookup"}


async def test_a_json_reply_is_read_whole_and_its_connection_reused() -> None:
    body = json.dumps(RESULT).encode()
    async with _serve(_Then(_reply(body)), _Then(_reply(body))) as (server, pool):
        first = await pool.post(HEADERS, b'{"a":1}', sse_id=7)
        second = await pool.post(HEADERS, b'{"b":2}', sse_id=8)
    assert (first.status, first.content_type, first.body) == (200, "application/json", body)
    assert second.body == body
    assert server.connections == 1
    head, _, sent = server.requests[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /mcp HTTP/1.1"
    assert set(lines[1:]) == {
        f"Host: 127.0.0.1:{pool._port}", "Accept-Encoding: gzip, deflate",  # pyright: ignore[reportPrivateUsage]
        next(line for line in lines if line.startswith("User-Agent: lockgate/")),
        "accept: application/json, text/event-stream", "content-type: application/json",
        "Authorization: Bearer up-secret", "Mcp-Name: lookup", "Content-Length: 7",
    }
    assert sent == b'{"a":1}'


async def test_chunked_and_compressed_replies_are_decoded() -> None:
    body = json.dumps(RESULT).encode()
    packed = gzip.compress(body)
    deflated = zlib.compress(body)
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw_deflated = raw.compress(body) + raw.flush()
    chunked = "Transfer-Encoding: chunked\r\n"
    async with _serve(
        _Then(_reply(_chunked(packed[:10], packed[10:]), extra="Content-Encoding: gzip\r\n", framing=chunked)),
        _Then(_reply(deflated, extra="Content-Encoding: deflate\r\n")),
        _Then(_reply(raw_deflated, extra="Content-Encoding: deflate\r\n")),
    ) as (server, pool):
        for _ in range(3):
            assert (await pool.post(HEADERS, b"{}", sse_id=7)).body == body
    assert server.connections == 1


async def test_a_body_without_length_ends_with_the_connection() -> None:
    body = json.dumps(RESULT).encode()
    async with _serve(_Then(_reply(body, framing=""), "close"), _Then(_reply(body))) as (server, pool):
        assert (await pool.post(HEADERS, b"{}", sse_id=7)).body == body
        assert (await pool.post(HEADERS, b"{}", sse_id=8)).body == body
    assert server.connections == 2


async def test_an_event_stream_is_read_until_the_answer_to_the_request() -> None:
    note: dict[str, Any] = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {}}
    other: dict[str, Any] = {"jsonrpc": "2.0", "id": 6, "result": {}}
    events = (f"event: message\r\ndata: {json.dumps(note)}\r\n\r\n: comment\n\n"
              f"data: {json.dumps(other)}\n\ndata: {json.dumps(RESULT)}\n\n").encode()
    sse = "text/event-stream"
    chunked = "Transfer-Encoding: chunked\r\n"
    # The stream stays open after the answer: the reply does not wait for its end.
    async with _serve(_Then(_reply(_chunks(events[:30], events[30:]), kind=sse, framing=chunked), "hang"),
                      _Then(_reply(b"data: {}\n\n", kind=sse))) as (server, pool):
        reply = await asyncio.wait_for(pool.post(HEADERS, b"{}", sse_id=7), 5)
        assert (reply.status, reply.content_type, reply.message) == (200, sse, RESULT)
        ended = await pool.post(HEADERS, b"{}", sse_id=8)  # the stream ends with no answer
        assert (ended.status, ended.message) == (200, None)
    assert server.connections == 2  # the open stream's connection was not reused


@pytest.mark.parametrize(("status", "kind"), [("401 Unauthorized", "text/plain"), ("500 Oops", "text/event-stream"),
                                              ("302 Found", "text/html")])
async def test_other_replies_give_their_status_without_a_body(status: str, kind: str) -> None:
    async with _serve(_Then(_reply(b"nope", kind=kind, status=status)), _Then(_reply(b"{}"))) as (_, pool):
        reply = await pool.post(HEADERS, b"{}", sse_id=7)
        assert (reply.status, reply.content_type, reply.body, reply.message) == (int(status[:3]), kind, None, None)
        assert (await pool.post(HEADERS, b"{}", sse_id=8)).body == b"{}"


async def test_an_interim_response_is_skipped() -> None:
    async with _serve(_Then(b"HTTP/1.1 100 Continue\r\n\r\n" + _reply(b"{}"))) as (_, pool):
        assert (await pool.post(HEADERS, b"{}", sse_id=7)).body == b"{}"


async def test_a_connection_closed_before_the_reply_is_an_error_and_the_next_post_reconnects() -> None:
    async with _serve(_Then(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n", "close"),
                      _Then(_reply(b"{}"), "close"), _Then(_reply(b"{}"))) as (server, pool):
        with pytest.raises(ServerDisconnected):
            await pool.post(HEADERS, b"{}", sse_id=7)
        assert (await pool.post(HEADERS, b"{}", sse_id=8)).body == b"{}"
        await asyncio.sleep(0.05)  # the server closed that connection meanwhile: not reused
        assert (await pool.post(HEADERS, b"{}", sse_id=9)).body == b"{}"
    assert server.connections == 3


async def test_malformed_http_and_unknown_encodings_fail_the_post() -> None:
    async with _serve(_Then(b"NOT HTTP AT ALL\r\n\r\n"),
                      _Then(_reply(b"{}", extra="Content-Encoding: br\r\n"))) as (_, pool):
        with pytest.raises(Exception):  # noqa: B017 - httptools' parser error
            await pool.post(HEADERS, b"{}", sse_id=7)
        with pytest.raises(ValueError, match="Content-Encoding"):
            await pool.post(HEADERS, b"{}", sse_id=8)


async def test_a_cancelled_post_closes_its_connection() -> None:
    async with _serve(_Then(b"", "hang"), _Then(_reply(b"{}"))) as (server, pool):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await pool.post(HEADERS, b"{}", sse_id=7)
        assert (await pool.post(HEADERS, b"{}", sse_id=8)).body == b"{}"
    assert server.connections == 2


async def test_a_header_with_a_line_break_is_refused_before_anything_is_sent() -> None:
    async with _serve() as (server, pool):
        with pytest.raises(ValueError, match="CR or LF"):
            await pool.post({"X-Evil": "a\r\nX-Injected: 1"}, b"{}", sse_id=7)
    assert server.connections == 0


def test_urls() -> None:
    assert Http1Pool.supports("https://crm.example/mcp")
    assert not Http1Pool.supports("ws://crm.example/mcp")
    assert not Http1Pool.supports("not a url")
    pool: Any = Http1Pool("http://user:p%40ss@Crm.Example:8080/a%20b/mcp?x=1")
    head = pool._head({"k": "v"}, 2).decode()
    assert head.startswith("POST /a%20b/mcp?x=1 HTTP/1.1\r\n")
    assert "Host: crm.example:8080\r\n" in head
    assert "Authorization: Basic dXNlcjpwQHNz\r\n" in head  # user:p@ss
    assert "Host: crm.example\r\n" in Http1Pool("https://crm.example:443/")._head({}, 0).decode()  # pyright: ignore[reportPrivateUsage]


async def test_a_reply_over_the_limit_fails_the_post_and_drops_its_connection() -> None:
    big = b'{"pad":"' + b"x" * 5000 + b'"}'
    bomb = gzip.compress(b"[" + b"0," * 50_000 + b"0]")  # small on the wire, 100 kB decoded
    note = b"event: message\ndata: %s\n\n"
    events = b"".join(note % json.dumps({"jsonrpc": "2.0", "method": "note", "params": {"i": i}}).encode()
                      for i in range(200))  # 14 kB of small events: none alone is over the limit
    answer = b"data: %s\n\n" % json.dumps(RESULT).encode()
    async with _serve(_Then(_reply(big)), _Then(_reply(bomb, extra="Content-Encoding: gzip\r\n")),
                      _Then(_reply(events + answer, kind="text/event-stream")),
                      _Then(_reply(b"data: " + b"y" * 5000 + b"\n\n", kind="text/event-stream")),
                      _Then(_reply(b"{}")), limit=4096) as (server, pool):
        with pytest.raises(ReplyTooLarge):
            await pool.post(HEADERS, b"{}", sse_id=7)
        with pytest.raises(ReplyTooLarge):
            await pool.post(HEADERS, b"{}", sse_id=7)
        assert (await pool.post(HEADERS, b"{}", sse_id=7)).message == RESULT
        with pytest.raises(ReplyTooLarge):
            await pool.post(HEADERS, b"{}", sse_id=7)
        assert (await pool.post(HEADERS, b"{}", sse_id=7)).body == b"{}"
    assert server.connections == 4  # each refused reply dropped its connection


async def test_the_upstream_turns_an_oversized_reply_into_an_upstream_error() -> None:
    """What a tool caller gets (-32002 `upstream_error`); the upstream is not marked broken."""
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from mcp_types.version import MODERN_PROTOCOL_VERSIONS

    from lockgate.errors import UpstreamError
    from lockgate.mcp.models import McpServerRecord
    from lockgate.mcp.upstream import Upstream, UpstreamSettings

    async def no_tools(_: Upstream) -> None:
        return None

    big = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": "z" * 9000}]}})
    async with _serve(_Then(_reply(big.encode()))) as (server, pool):
        await pool.aclose()
        url = f"http://127.0.0.1:{server.port}/mcp"
        record = McpServerRecord(id="s1", name="crm", transport="http", url=url, command=None, args=(), headers={},
                                 description="", source="admin", status="approved", created_at=datetime.now(UTC))
        upstream = Upstream(UpstreamSettings(record=record, headers={}, env={}, cwd=None, call_timeout=5,
                                             connect_timeout=5, max_reply_bytes=4096), on_tools=no_tools)
        session = SimpleNamespace(protocol_version=next(iter(MODERN_PROTOCOL_VERSIONS)), _stamp=lambda data, opts: None)
        with pytest.raises(UpstreamError, match=r"over 4096 bytes \(mcp.max_reply_bytes\)"):
            await upstream._post_call(SimpleNamespace(session=session), "lookup", {})  # pyright: ignore[reportPrivateUsage, reportArgumentType]
        assert upstream.error is None
        await upstream._pool.aclose()  # pyright: ignore[reportPrivateUsage, reportOptionalMemberAccess]
