"""The eval runner's HTTP client for a running gateway (httpx, OpenAI chat wire format).

Items and judge calls go through the gateway like any client's requests, so they are
authenticated, limited, priced, traced and audited, and a prompt version is rendered by
the same code that serves it. 429, 5xx and connection errors are retried with backoff
(a `retry-after` is honoured up to 10 s); other errors are raised as they are: a 401 as
AuthenticationFailed, a 404 as NotFound, no connection as UpstreamUnavailable.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, cast

import httpx

from lockgate.errors import (
    AuthenticationFailed,
    ClientError,
    LockgateError,
    NotFound,
    UpstreamError,
    UpstreamUnavailable,
)

__all__ = ["Answer", "GatewayClient"]

_RETRY_STATUS = {429, 500, 502, 503, 504, 529}
_MAX_RETRY_AFTER = 10.0


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    input_tokens: int | None
    output_tokens: int | None
    latency_ms: float
    headers: dict[str, str] = field(default_factory=lambda: {})


class GatewayClient:
    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout: float = 120.0,
        retries: int = 2,
        backoff: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        base = base_url.rstrip("/").removesuffix("/v1")
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=base, headers=headers, timeout=httpx.Timeout(timeout, connect=10.0), transport=transport,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        )
        self._retries = retries
        self._backoff = backoff

    async def aclose(self) -> None:
        await self._http.aclose()

    async def complete(self, body: dict[str, Any]) -> Answer:
        """POST /v1/chat/completions; the first choice's text."""
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                reply = await self._http.post("/v1/chat/completions", json=body)
            except httpx.HTTPError as exc:
                if attempt >= self._retries:
                    raise UpstreamUnavailable(
                        f"The gateway at {self._http.base_url} did not answer: {type(exc).__name__}: {exc}"
                    ) from None
                await asyncio.sleep(self._backoff * 2**attempt)
                attempt += 1
                continue
            latency = (time.monotonic() - started) * 1000
            if reply.status_code in _RETRY_STATUS and attempt < self._retries:
                await asyncio.sleep(self._delay(reply, attempt))
                attempt += 1
                continue
            if reply.status_code >= 400:
                raise _error(reply)
            return _answer(reply, latency)

    async def chat(self, model: str, messages: list[dict[str, Any]], **params: Any) -> str:
        """A completion's text (the judge's call)."""
        body = {"model": model, "messages": messages, **{k: v for k, v in params.items() if v is not None}}
        return (await self.complete(body)).text

    def _delay(self, reply: httpx.Response, attempt: int) -> float:
        header = reply.headers.get("retry-after")
        try:
            return min(float(header), _MAX_RETRY_AFTER) if header else self._backoff * 2**attempt
        except ValueError:
            return self._backoff * 2**attempt


def _answer(reply: httpx.Response, latency_ms: float) -> Answer:
    try:
        body: Any = reply.json()
        choice = cast("dict[str, Any]", body["choices"][0])
        content: Any = cast("dict[str, Any]", choice.get("message") or {}).get("content")
        usage = cast("dict[str, Any]", body.get("usage") or {})
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise UpstreamError(f"The gateway's answer is not a chat completion: {reply.text[:200]}") from None
    headers = {k: v for k, v in reply.headers.items() if k.startswith("x-lockgate-")}
    return Answer(
        text=content if isinstance(content, str) else "",
        input_tokens=usage.get("prompt_tokens"),
        output_tokens=usage.get("completion_tokens"),
        latency_ms=latency_ms,
        headers=headers,
    )


def _error(reply: httpx.Response) -> LockgateError:
    try:
        message = str(reply.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = reply.text[:300] or reply.reason_phrase
    kinds: dict[int, type[LockgateError]] = {401: AuthenticationFailed, 404: NotFound}
    kind = kinds.get(reply.status_code, ClientError if reply.status_code < 500 else UpstreamError)
    err = kind(message)
    err.status = reply.status_code
    return err
