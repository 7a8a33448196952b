"""HTTP plumbing shared by the provider adapters: one JSON POST, one SSE reader, and
the one place where an upstream's failure becomes a `lockgate.errors.UpstreamError`.

    connection refused, reset, DNS     -> UpstreamUnavailable
    timeout (total, or idle in stream) -> UpstreamTimeout
    429                                -> UpstreamRateLimited (retry_after from the headers)
    5xx, 529                           -> UpstreamError (retryable)
    other 4xx                          -> UpstreamRejected (never retried)

Error messages carry the provider's name and, at most, the upstream's own error
message (cut to 500 characters, key-like tokens redacted; for 401 and 403, which
mean the gateway's own credentials were refused, not even that). They never carry
request headers, credentials, URLs or raw bodies; the aiohttp exception is kept as
`__cause__` for the logs.

Timeouts: `post_json` bounds the whole call; `stream_sse` bounds the connection and
each wait for bytes from the upstream (aiohttp's `sock_read`), which covers the wait
for the first event and between later ones. Keep-alive comments and Anthropic's
`ping` events count as the upstream being alive.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncGenerator, AsyncIterable, Mapping
from contextlib import aclosing
from email.utils import parsedate_to_datetime
from typing import TypeVar

import aiohttp
import msgspec

from lockgate.errors import (
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)

__all__ = [
    "decode",
    "error_message",
    "post_json",
    "retry_after",
    "sse_events",
    "status_error",
    "stream_sse",
]

T = TypeVar("T")

_MAX_MESSAGE = 500
# Key-shaped tokens an upstream may echo back (OpenAI: "Incorrect API key provided: sk-...").
_KEYLIKE = re.compile(r"\b(?:sk|pk|rk|key)-[A-Za-z0-9_*.\-]{6,}")


class _ErrorDetail(msgspec.Struct):
    message: str | None = None


class _ErrorBody(msgspec.Struct):
    # OpenAI, Azure and Anthropic: {"error": {"message": ...}}; vLLM, Ollama and
    # llama.cpp sometimes: {"error": "..."} or {"message": "..."}.
    error: _ErrorDetail | str | None = None
    message: str | None = None


def error_message(body: bytes) -> str | None:
    """The upstream's own error message from a JSON error body, or None."""
    try:
        err = msgspec.json.decode(body, type=_ErrorBody)
    except msgspec.DecodeError:
        return None
    text = err.error.message if isinstance(err.error, _ErrorDetail) else err.error or err.message
    if not text:
        return None
    text = _KEYLIKE.sub("[redacted]", text)
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` (seconds or an HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def status_error(
    provider: str, status: int, headers: Mapping[str, str], body: bytes
) -> UpstreamError:
    """The error for a non-2xx upstream answer."""
    message = error_message(body)
    if status in (401, 403):
        # The gateway's own credentials were refused; the upstream's wording may quote them.
        text = f"{provider}: the upstream refused the gateway's credentials (HTTP {status})"
    else:
        text = f"{provider}: {message}" if message else f"{provider}: HTTP {status}"
    if status == 429:
        return UpstreamRateLimited(text, upstream_status=429, retry_after=retry_after(headers))
    if 400 <= status < 500:
        return UpstreamRejected(text, upstream_status=status)
    return UpstreamError(text, upstream_status=status, retry_after=retry_after(headers))


def decode(data: bytes, decoder: msgspec.json.Decoder[T], provider: str) -> T:
    """Decode an upstream answer; a malformed one is an UpstreamError."""
    try:
        return decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise UpstreamError(f"{provider}: malformed response ({exc})") from exc


def _transport_error(provider: str, exc: Exception) -> UpstreamError:
    if isinstance(exc, TimeoutError):
        return UpstreamTimeout(f"{provider}: timed out waiting for the upstream")
    if isinstance(exc, aiohttp.ClientConnectionError):
        return UpstreamUnavailable(f"{provider}: connection failed ({type(exc).__name__})")
    return UpstreamError(f"{provider}: request failed ({type(exc).__name__})")


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    provider: str,
    timeout: float,
) -> bytes:
    """POST an encoded JSON body; return the 2xx answer's body or raise an UpstreamError."""
    try:
        async with session.post(
            url,
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
            raise_for_status=False,
        ) as resp:
            data = await resp.read()
            if resp.status >= 300:
                raise status_error(provider, resp.status, resp.headers, data)
            return data
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise _transport_error(provider, exc) from exc


async def stream_sse(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    provider: str,
    timeout: float,
) -> AsyncGenerator[tuple[bytes, bytes]]:
    """POST an encoded JSON body and yield the answer's server-sent events as
    `(event name, data)`; the name is b"" when the upstream sends none.

    Close it with `contextlib.aclosing` so the connection is released at once.
    """
    client_timeout = aiohttp.ClientTimeout(
        total=None, connect=timeout, sock_connect=timeout, sock_read=timeout
    )
    try:
        async with session.post(
            url, data=body, headers=headers, timeout=client_timeout, raise_for_status=False
        ) as resp:
            if resp.status >= 300:
                raise status_error(provider, resp.status, resp.headers, await resp.read())
            async with aclosing(sse_events(resp.content.iter_any())) as events:
                async for event in events:
                    yield event
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise _transport_error(provider, exc) from exc


async def sse_events(chunks: AsyncIterable[bytes]) -> AsyncGenerator[tuple[bytes, bytes]]:
    """Server-sent events as `(event name, data)` from a body read in chunks of any
    size (lines of any length, LF or CRLF; multi-line data joined with LF)."""
    event = b""
    data: list[bytes] = []
    tail = b""
    async for chunk in chunks:
        lines = (tail + chunk if tail else chunk).split(b"\n")
        tail = lines.pop()
        for raw in lines:
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if not line:
                if data:
                    yield event, data[0] if len(data) == 1 else b"\n".join(data)
                    data = []
                event = b""
            elif line.startswith(b"data:"):
                data.append(line[6:] if line.startswith(b"data: ") else line[5:])
            elif line.startswith(b"event:"):
                event = line[6:].strip()
            # comments (":"), "id:" and "retry:" lines are of no use here
    if tail.startswith(b"data:"):
        data.append(tail[5:].strip())
    if data:
        yield event, b"\n".join(data)
