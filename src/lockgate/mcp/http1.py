"""A lean HTTP/1.1 client for the one request on the hot path: an upstream's
`tools/call` POST (`upstream.Upstream`), on keep-alive connections pooled per server.

aiohttp spent about 150 µs of CPU per proxied call in Python (request and response
objects, multidicts, and on Python 3.11 a task of its own for the body, one more turn
of the event loop before anything is sent). Here a request is one `transport.write`
of head and body, and the reply is parsed by httptools (llhttp, the parser uvicorn
already runs `lockgate serve` on):

    pool = Http1Pool("https://crm.internal/mcp")
    reply = await pool.post(headers, body, sse_id=7)
    reply.status, reply.content_type   # then reply.body (JSON) or reply.message (SSE)
    await pool.aclose()

What it keeps of aiohttp's behaviour: the request line, `Host` and the basic auth of
the URL as yarl spells them, `Accept-Encoding: gzip, deflate` with the reply decoded,
no redirects followed, no proxy (the gateway's session has `trust_env=False`), TLS
verified against the system's CAs, idle connections kept for 60 s at most, a header
with CR or LF refused. A body is read whole when it is JSON; an event stream only until
the event answering the request; any other reply is not read at all (the caller turns
its status into an error) and its connection is not reused.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

import httptools
from yarl import URL

from lockgate._version import __version__

__all__ = ["Http1Pool", "Reply", "ReplyTooLarge", "ServerDisconnected"]

_ACCEPT_ENCODING: Final = "gzip, deflate"
_USER_AGENT: Final = f"lockgate/{__version__}"
_OURS: Final = frozenset({"content-length", "transfer-encoding"})  # the body's framing is ours
_KEEPALIVE: Final = 60.0  # seconds an idle connection may be reused (aiohttp's connector)
_MAX_IDLE: Final = 64
_MAX_HEADS: Final = 512
# Per reply: what the head said to do with the body.
_WAIT, _JSON, _SSE, _DONE = 0, 1, 2, 3


class ServerDisconnected(ConnectionError):
    """The connection closed before the reply was complete."""


@dataclass(slots=True)
class Reply:
    status: int
    content_type: str  # lower case, parameters included
    body: bytes | None = None  # a JSON reply: its whole body, decoded
    message: dict[str, Any] | None = None  # an event stream: the event answering the request


class ReplyTooLarge(Exception):
    """A reply (decoded) over the pool's `max_reply_bytes`: its connection is dropped."""


class _Connection(asyncio.Protocol):
    """One connection: one request at a time, its reply parsed as it arrives."""

    def __init__(self, max_reply_bytes: int) -> None:
        self._limit = max_reply_bytes
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = False  # the last reply ended, and the server keeps the connection
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Reply] | None = None
        self._sse_id = 0
        self._begin()

    def _begin(self) -> None:
        self._status = 0
        self._headers_done = False
        self._framed = False  # Content-Length or chunked (else: the body ends with the connection)
        self._content_type = ""
        self._encoding = ""
        self._mode = _WAIT
        self._decoder: Any = None
        self._chunks: list[bytes] = []
        self._held = 0  # decoded bytes kept: the JSON body so far, or the event being read
        self._sse_tail = b""
        self._sse_data: list[str] = []

    # --- the caller's side --------------------------------------------------------

    async def exchange(self, data: bytes, sse_id: int) -> Reply:
        transport = self.transport
        if transport is None or self.closed or transport.is_closing():
            raise ServerDisconnected("Server disconnected")
        self._waiter = waiter = asyncio.get_running_loop().create_future()
        self._sse_id = sse_id
        self.reusable = False
        transport.write(data)
        try:
            return await waiter
        finally:
            self._waiter = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _resolve(self, reply: Reply) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(reply)

    def _fail(self, exc: BaseException) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self._mode = _DONE
        self.close()

    # --- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # nothing asked: a server talking out of turn
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except Exception as exc:  # malformed HTTP, an upgrade, a callback's error
            cause = exc.__context__ if isinstance(exc, httptools.HttpParserCallbackError) else None
            self._fail(cause if isinstance(cause, Exception) else exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._headers_done and not self._framed and self._mode in (_JSON, _SSE):
            self.on_message_complete()  # the body was delimited by the close
            if waiter.done():
                return
        waiter.set_exception(ServerDisconnected("Server disconnected"))

    # --- httptools callbacks --------------------------------------------------------

    def on_message_begin(self) -> None:
        self._begin()

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.lower()
        if key == b"content-type":
            self._content_type = value.decode("latin-1").strip().lower()
        elif key == b"content-encoding":
            self._encoding = value.decode("latin-1").strip().lower()
        elif key == b"content-length" or (key == b"transfer-encoding" and b"chunked" in value.lower()):
            self._framed = True

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # 1xx: the real head follows
            return
        self._status, self._headers_done = status, True
        kind = self._content_type
        if kind.startswith("application/json"):
            self._mode = _JSON
        elif kind.startswith("text/event-stream") and status < 400:
            self._mode = _SSE
        else:
            self._mode = _DONE
            self._resolve(Reply(status, kind))
            return
        if self._encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self._encoding not in ("", "identity", "deflate"):
            self._fail(ValueError(f"unsupported Content-Encoding {self._encoding!r}"))

    def on_body(self, body: bytes) -> None:
        if self._mode not in (_JSON, _SSE):
            return
        try:
            data = self._decode(body)
            if self._mode == _JSON:
                self._held += len(data)
                if self._held > self._limit:
                    raise ReplyTooLarge(f"the reply is over {self._limit} bytes")
                self._chunks.append(data)
            else:
                self._sse(data, final=False)
        except Exception as exc:
            self._fail(exc)

    def on_message_complete(self) -> None:
        if not self._headers_done:  # the end of a 1xx
            return
        self.reusable = self._framed and self._parser.should_keep_alive()
        try:
            tail = self._decoder.flush() if self._decoder is not None else b""
            if self._mode == _JSON:
                self._resolve(Reply(self._status, self._content_type, body=b"".join([*self._chunks, tail])))
            elif self._mode == _SSE:
                self._sse(tail, final=True)
                self._resolve(Reply(self._status, self._content_type))  # no event answered
        except Exception as exc:
            self._fail(exc)
        self._mode = _DONE

    # --- the body -------------------------------------------------------------------

    def _decode(self, data: bytes) -> bytes:
        if self._decoder is None:
            if self._encoding != "deflate" or not data:
                return data
            # zlib-wrapped as the RFC says, or raw deflate as some servers send it (aiohttp too)
            self._decoder = zlib.decompressobj(zlib.MAX_WBITS if data[0] & 0x0F == 8 else -zlib.MAX_WBITS)
        return cast("bytes", self._decoder.decompress(data))

    def _sse(self, data: bytes, *, final: bool) -> None:
        """Server-sent events, line by line: the JSON-RPC reply to our id ends the wait
        (notifications and other messages are skipped)."""
        lines = (self._sse_tail + data).split(b"\n")
        self._sse_tail = b"" if final else lines.pop()
        if len(self._sse_tail) > self._limit:  # one line, still open
            raise ReplyTooLarge(f"the reply is over {self._limit} bytes")
        for raw in lines:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if line.startswith("data:"):
                self._sse_data.append(line[5:].lstrip(" "))
                self._held += len(raw)
                if self._held > self._limit:
                    raise ReplyTooLarge(f"the reply is over {self._limit} bytes")
            elif not line and self._sse_data:
                message: Any = json.loads("\n".join(self._sse_data))
                self._sse_data = []
                self._held = 0
                if isinstance(message, dict) and cast("dict[str, Any]", message).get("id") == self._sse_id:
                    self._mode = _DONE
                    self._resolve(Reply(self._status, self._content_type, message=cast("dict[str, Any]", message)))
                    return


class Http1Pool:
    """POSTs to one URL over pooled keep-alive connections (one per request in flight)."""

    def __init__(self, url: str, *, max_reply_bytes: int = 32 * 1024 * 1024) -> None:
        """`max_reply_bytes`: the most a reply may hold, decoded (a JSON body whole, or one
        event of a stream); a larger one fails its post with `ReplyTooLarge`."""
        self._max_reply = max_reply_bytes
        parsed = URL(url)
        if not self.supports(url):
            raise ValueError(f"not an http(s) URL: {url!r}")
        self._host = cast("str", parsed.raw_host)
        self._tls = parsed.scheme == "https"
        self._port: int = parsed.port or (443 if self._tls else 80)
        self._line = f"POST {parsed.raw_path_qs} HTTP/1.1\r\n"
        self._authority = cast("str", parsed.host_port_subcomponent)
        self._auth: str | None = None
        if parsed.raw_user or parsed.raw_password:
            pair = f"{parsed.user or ''}:{parsed.password or ''}".encode("latin-1")
            self._auth = "Basic " + base64.b64encode(pair).decode("ascii")
        self._idle: list[_Connection] = []
        self._heads: dict[tuple[tuple[str, str], ...], bytes] = {}
        self._closed = False

    @staticmethod
    def supports(url: str) -> bool:
        with contextlib.suppress(ValueError):
            parsed = URL(url)
            return parsed.scheme in ("http", "https") and bool(parsed.raw_host) and parsed.port is not None
        return False

    async def post(self, headers: Mapping[str, str], body: bytes, *, sse_id: int) -> Reply:
        """Send one POST and wait for its reply (bounded by the caller's timeout: a
        cancelled wait closes the connection)."""
        data = self._head(headers, len(body)) + body
        conn = self._take()
        if conn is None:
            conn = await self._connect()
        done = False
        try:
            reply = await conn.exchange(data, sse_id)
            done = True
        finally:
            if done and conn.reusable and not conn.closed and not self._closed and len(self._idle) < _MAX_IDLE:
                conn.idle_since = asyncio.get_running_loop().time()
                self._idle.append(conn)
            else:
                conn.close()
        return reply

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _head(self, headers: Mapping[str, str], length: int) -> bytes:
        """The request's head. The headers vary by tool only (`Mcp-Name`), so the text up
        to `Content-Length` is kept per set of headers (a few hundred at most)."""
        key = tuple(headers.items())
        prefix = self._heads.get(key)
        if prefix is None:
            prefix = self._prefix(headers)
            if len(self._heads) >= _MAX_HEADS:
                self._heads.clear()
            self._heads[key] = prefix
        return prefix + b"Content-Length: %d\r\n\r\n" % length

    def _prefix(self, headers: Mapping[str, str]) -> bytes:
        parts = [self._line]
        named: set[str] = set()
        for key, value in headers.items():
            if "\r" in key or "\n" in key or "\r" in value or "\n" in value:
                raise ValueError(f"HTTP header {key!r}: CR or LF in a header")
            low = key.lower()
            if low in _OURS:
                continue
            named.add(low)
            parts.append(f"{key}: {value}\r\n")
        extra: list[str] = []
        if "host" not in named:
            extra.append(f"Host: {self._authority}\r\n")
        if self._auth is not None and "authorization" not in named:
            extra.append(f"Authorization: {self._auth}\r\n")
        if "accept-encoding" not in named:
            extra.append(f"Accept-Encoding: {_ACCEPT_ENCODING}\r\n")
        if "user-agent" not in named:
            extra.append(f"User-Agent: {_USER_AGENT}\r\n")
        parts[1:1] = extra
        return "".join(parts).encode("utf-8")

    def _take(self) -> _Connection | None:
        """The most recently used live connection (expired ones are closed)."""
        now = asyncio.get_running_loop().time()
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and now - conn.idle_since < _KEEPALIVE:
                return conn
            conn.close()
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        context = await _tls_context() if self._tls else None
        _, conn = await loop.create_connection(
            lambda: _Connection(self._max_reply), self._host, self._port, ssl=context, server_hostname=self._host if context else None,
        )
        return conn


_TLS: list[ssl.SSLContext] = []


async def _tls_context() -> ssl.SSLContext:
    """aiohttp's verified default: the system's CAs, ALPN http/1.1 (made once, off the loop)."""
    if not _TLS:
        _TLS.append(await asyncio.to_thread(_make_tls_context))
    return _TLS[0]


def _make_tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context
