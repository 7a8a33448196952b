"""A fast fake OpenAI-compatible upstream for the benchmark (stdlib, uvloop when present).

`POST /v1/chat/completions` answers a fixed small `chat.completion` with usage; with
`"stream": true` in the body it answers a short SSE stream (role chunk, three content
chunks, a usage chunk, `[DONE]`) in HTTP/1.1 chunked encoding, the way OpenAI does.
If the request body contains `[delay=N]` (N milliseconds, at most 1000), the stream's
chunks after the first are spaced N ms apart: the time-to-first-token probe uses it so
that a gateway that buffers a stream shows up as a late first token.

`GET /healthz` answers 200; anything else 404. Keep-alive, one process, one event loop:
it exists to never be the bottleneck, so it parses as little as it can.

    python bench/upstream.py --port 18080
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
from typing import cast

_STREAM = re.compile(rb'"stream"\s*:\s*true')
_DELAY = re.compile(rb"\[delay=(\d{1,4})\]")
_HEADER_END = b"\r\n\r\n"
_MAX_HEADER = 64 * 1024

_COMPLETION = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello from the bench upstream."},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
    "system_fingerprint": "fp_bench",
}


def _chunk(delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def _sse_events() -> list[bytes]:
    events: list[dict[str, object]] = [_chunk({"role": "assistant", "content": ""})]
    events += [_chunk({"content": word}) for word in ("Hello", " from the", " bench upstream.")]
    events.append(_chunk({}, "stop"))
    usage = _chunk({})
    usage["choices"] = []
    usage["usage"] = _COMPLETION["usage"]
    events.append(usage)
    out = [b"data: " + json.dumps(e, separators=(",", ":")).encode() + b"\n\n" for e in events]
    out.append(b"data: [DONE]\n\n")
    return out


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _responses() -> tuple[bytes, bytes, list[bytes], bytes, bytes]:
    body = json.dumps(_COMPLETION, separators=(",", ":")).encode()
    json_response = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(body), body)
    )
    stream_head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
        b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    chunks = [_http_chunk(e) for e in _sse_events()]
    stream_whole = stream_head + b"".join(chunks) + b"0\r\n\r\n"
    ok = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"
    missing = (
        b"HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 9\r\n\r\nnot found"
    )
    return json_response, stream_whole, [stream_head, *chunks, b"0\r\n\r\n"], ok, missing


_JSON, _STREAM_WHOLE, _STREAM_PARTS, _OK, _NOT_FOUND = _responses()


class Upstream(asyncio.Protocol):
    """One connection: buffer bytes, answer each complete request in order."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False  # a delayed stream is being written: later requests wait
        self.writer: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._drain()

    def _drain(self) -> None:
        transport = self.transport
        while transport is not None and not transport.is_closing():
            request = self._next_request()
            if request is None:
                return
            head, body = request
            if head.startswith(b"POST /v1/chat/completions"):
                if _STREAM.search(body) is None:
                    transport.write(_JSON)
                    continue
                delay = _DELAY.search(body)
                if delay is None:
                    transport.write(_STREAM_WHOLE)
                    continue
                self.busy = True
                seconds = min(int(delay.group(1)), 1000) / 1000
                self.writer = asyncio.ensure_future(self._slow_stream(seconds))
                return
            transport.write(_OK if head.startswith(b"GET /healthz") else _NOT_FOUND)

    def _next_request(self) -> tuple[bytes, bytes] | None:
        end = self.buf.find(_HEADER_END)
        if end < 0:
            if len(self.buf) > _MAX_HEADER and self.transport is not None:
                self.transport.close()
            return None
        head = bytes(self.buf[:end])
        lower = head.lower()
        start = end + 4
        if b"transfer-encoding: chunked" in lower:
            return self._next_chunked(head, start)
        length = 0
        at = lower.find(b"content-length:")
        if at >= 0:
            stop = lower.find(b"\r\n", at)
            length = int(lower[at + 15 : stop if stop >= 0 else None])
        if len(self.buf) < start + length:
            return None
        body = bytes(self.buf[start : start + length])
        del self.buf[: start + length]
        return head, body

    def _next_chunked(self, head: bytes, pos: int) -> tuple[bytes, bytes] | None:
        parts: list[bytes] = []
        while True:
            line_end = self.buf.find(b"\r\n", pos)
            if line_end < 0:
                return None
            size = int(bytes(self.buf[pos:line_end]).split(b";")[0], 16)
            if size == 0:
                trailer_end = self.buf.find(b"\r\n", line_end + 2)
                if trailer_end < 0:
                    return None
                del self.buf[: trailer_end + 2]
                return head, b"".join(parts)
            if len(self.buf) < line_end + 2 + size + 2:
                return None
            parts.append(bytes(self.buf[line_end + 2 : line_end + 2 + size]))
            pos = line_end + 2 + size + 2

    async def _slow_stream(self, delay: float) -> None:
        transport = self.transport
        assert transport is not None
        head, first, *rest = _STREAM_PARTS
        transport.write(head + first)
        for part in rest:
            await asyncio.sleep(delay)
            if transport.is_closing():
                return
            transport.write(part)
        self.busy = False
        self._drain()


async def _serve(host: str, port: int, loop_name: str) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Upstream, host, port, backlog=1024, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sockname = server.sockets[0].getsockname()
    sys.stdout.write(f"upstream listening on http://{sockname[0]}:{sockname[1]} loop={loop_name}\n")
    sys.stdout.flush()
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18080)
    args = parser.parse_args()
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        asyncio.run(_serve(args.host, args.port, "asyncio"))
    else:
        uvloop.run(_serve(args.host, args.port, "uvloop"))


if __name__ == "__main__":
    main()
