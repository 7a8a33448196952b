"""The one small protocol every upstream adapter implements.

An adapter translates the internal request (`lockgate.core.types`) to its
upstream's wire format, calls it over the shared HTTP session, and translates the
answer back. Shared code never branches on a provider's name: the router only
sees `Provider`.

Adapters raise `lockgate.errors.UpstreamError` subclasses and nothing else:
`UpstreamRateLimited` (429, with `retry_after`), `UpstreamError` (5xx),
`UpstreamTimeout`, `UpstreamUnavailable` (connection), `UpstreamRejected`
(other 4xx, never retried). The router decides about retries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from lockgate.core.types import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    StreamEvent,
)

__all__ = ["Provider"]


@runtime_checkable
class Provider(Protocol):
    """An upstream model API. One instance per configured provider, built in the lifespan.

    Constructed as `Adapter(name, config, session=aiohttp.ClientSession, api_key=str | None)`
    where `config` is the provider's model from `lockgate.config.schema`.
    """

    name: str  # the configured name, e.g. "local" or "claude"
    system: str  # the OpenTelemetry `gen_ai.provider.name`, e.g. "openai", "anthropic"

    async def chat(self, request: ChatRequest, *, model: str, timeout: float) -> ChatResponse:
        """One non-streaming completion. `model` is the upstream's model name."""
        ...

    def stream(self, request: ChatRequest, *, model: str, timeout: float) -> AsyncIterator[StreamEvent]:
        """A streaming completion. `timeout` bounds the wait for the first event and
        for each later one (an idle timeout), not the whole stream."""
        ...

    async def embed(self, request: EmbeddingRequest, *, model: str, timeout: float) -> EmbeddingResponse:
        """Embeddings; adapters whose upstream has none raise `UnsupportedOperation`."""
        ...

    async def start(self) -> None:
        """Called once in the lifespan before the first request (a managed local model
        starts its server here). Most adapters do nothing."""
        ...

    async def aclose(self) -> None:
        """Release what the adapter owns (not the shared HTTP session)."""
        ...
