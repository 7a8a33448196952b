"""Pick a route, call it, retry, fall back.

For a model: its routes in weighted-random order (routes whose breaker is open are
skipped), each tried once plus up to `retries` retries on retryable failures (429,
5xx, connection errors, timeouts; never other 4xx) with exponential backoff and
jitter that honours `Retry-After`; then the model's fallbacks, depth first, each
model at most once. Retries draw on a shared `RetryBudget`. A whole request is
bounded by `gateway.request_timeout`.

Streams are opened the same way: a route counts as answered when its first event
arrives, so a stream that fails before its first byte falls back like any request.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from lockgate.core.context import RequestContext
from lockgate.core.types import ChatResponse, EmbeddingResponse, StreamEvent
from lockgate.errors import (
    LockgateError,
    ModelNotFound,
    NoRouteAvailable,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
)
from lockgate.providers.base import Provider
from lockgate.routing.breaker import BreakerState, CircuitBreaker
from lockgate.routing.budget import RetryBudget

__all__ = ["ModelEntry", "Route", "Router", "RouterObserver"]

T = TypeVar("T")


class RouterObserver(Protocol):
    def attempt(self, route: Route, outcome: str, seconds: float) -> None: ...
    def breaker(self, route: Route, state: BreakerState) -> None: ...
    def retry(self, route: Route, allowed: bool) -> None: ...


@dataclass(slots=True, eq=False)
class Route:
    model: str  # the gateway model this route serves
    provider_name: str
    provider: Provider
    upstream_model: str
    weight: float
    breaker: CircuitBreaker

    @property
    def label(self) -> str:
        return f"{self.provider_name}/{self.upstream_model}"


@dataclass(slots=True)
class ModelEntry:
    name: str
    routes: list[Route]
    fallbacks: list[str] = field(default_factory=lambda: [])
    timeout: float = 60.0
    retries: int = 2


@dataclass(slots=True)
class RouterSettings:
    request_timeout: float = 600.0
    backoff_base: float = 0.25
    backoff_max: float = 8.0
    max_retry_after: float = 30.0


class Router:
    def __init__(
        self,
        models: dict[str, ModelEntry],
        *,
        settings: RouterSettings,
        budget: RetryBudget,
        observer: RouterObserver,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        route_blocked: Callable[[Route], LockgateError | None] | None = None,
    ) -> None:
        self.models = models
        self._settings = settings
        self._budget = budget
        self._observer = observer
        self._sleep = sleep
        self._rand = rand
        self._route_blocked = route_blocked
        for route in self.routes():
            route.breaker.on_change = _breaker_listener(observer, route)

    def entry(self, model: str) -> ModelEntry:
        try:
            return self.models[model]
        except KeyError:
            raise ModelNotFound(
                f"The model `{model}` does not exist or you do not have access to it.",
                param="model",
            ) from None

    def routes(self) -> Iterator[Route]:
        for entry in self.models.values():
            yield from entry.routes

    async def chat(self, ctx: RequestContext) -> ChatResponse:
        chat = ctx.chat
        assert chat is not None

        async def call(route: Route, timeout: float) -> ChatResponse:
            return await route.provider.chat(chat, model=route.upstream_model, timeout=timeout)

        return await self._run(ctx, call)

    async def embed(self, ctx: RequestContext) -> EmbeddingResponse:
        emb = ctx.embedding
        assert emb is not None

        async def call(route: Route, timeout: float) -> EmbeddingResponse:
            return await route.provider.embed(emb, model=route.upstream_model, timeout=timeout)

        return await self._run(ctx, call)

    async def open_stream(
        self, ctx: RequestContext
    ) -> tuple[StreamEvent, AsyncIterator[StreamEvent]]:
        """Open a stream and wait for its first event; later failures are the caller's."""
        chat = ctx.chat
        assert chat is not None

        async def call(route: Route, timeout: float) -> tuple[StreamEvent, AsyncIterator[StreamEvent]]:
            events = aiter(route.provider.stream(chat, model=route.upstream_model, timeout=timeout))
            try:
                first = await anext(events)
            except StopAsyncIteration:
                raise UpstreamError(f"{route.provider_name}: the stream ended before any event") from None
            except BaseException:
                await _aclose(events)
                raise
            return first, events

        return await self._run(ctx, call)

    async def _run(self, ctx: RequestContext, call: Callable[[Route, float], Awaitable[T]]) -> T:
        deadline = time.monotonic() + self._settings.request_timeout
        last: UpstreamError | None = None
        blocked: LockgateError | None = None
        tried = 0
        for entry in self._chain(ctx.model):
            for route in self._order(entry):
                if self._route_blocked is not None and (stop := self._route_blocked(route)) is not None:
                    blocked = stop
                    continue
                if not route.breaker.allow():
                    continue
                tried += 1
                result, error = await self._try_route(ctx, entry, route, call, deadline)
                if error is None:
                    return result  # type: ignore[return-value]
                last = error
                if time.monotonic() >= deadline:
                    raise UpstreamTimeout("The request timed out (gateway.request_timeout).")
        if last is None and blocked is not None:
            raise blocked
        if last is None:
            raise NoRouteAvailable(
                f"No route is available for model `{ctx.model}`: every route's circuit breaker is open"
                if tried == 0
                else f"No route is available for model `{ctx.model}`."
            )
        raise last

    async def _try_route(
        self,
        ctx: RequestContext,
        entry: ModelEntry,
        route: Route,
        call: Callable[[Route, float], Awaitable[T]],
        deadline: float,
    ) -> tuple[T | None, UpstreamError | None]:
        retry = 0
        self._budget.record_attempt()
        while True:
            ctx.attempts += 1
            remaining = deadline - time.monotonic()
            started = time.perf_counter()
            try:
                result = await call(route, min(entry.timeout, max(remaining, 0.001)))
            except UpstreamError as exc:
                self._observer.attempt(route, exc.code, time.perf_counter() - started)
                self._note_failure(route, exc)
                if isinstance(exc, UpstreamRejected):
                    raise
                delay = self._retry_delay(entry, route, retry, exc, deadline)
                if delay is None:
                    return None, exc
                await self._sleep(delay)
                retry += 1
                continue
            except BaseException:
                route.breaker.release()
                raise
            self._observer.attempt(route, "ok", time.perf_counter() - started)
            route.breaker.success()
            ctx.provider = route.provider_name
            ctx.provider_system = route.provider.system
            ctx.route_model = route.upstream_model
            return result, None

    def _note_failure(self, route: Route, exc: UpstreamError) -> None:
        if isinstance(exc, UpstreamRejected):
            route.breaker.success()  # the upstream answered; the request was wrong
        else:
            route.breaker.failure()

    def _retry_delay(
        self, entry: ModelEntry, route: Route, retry: int, exc: LockgateError, deadline: float
    ) -> float | None:
        if retry >= entry.retries:
            return None
        settings = self._settings
        if exc.retry_after is not None:
            if exc.retry_after > settings.max_retry_after:
                return None
            delay = exc.retry_after
        else:
            backoff = min(settings.backoff_max, settings.backoff_base * (2**retry))
            delay = backoff * (0.5 + 0.5 * self._rand())
        if time.monotonic() + delay >= deadline:
            return None
        allowed = self._budget.try_retry()
        self._observer.retry(route, allowed)
        return delay if allowed else None

    def _chain(self, model: str) -> Iterator[ModelEntry]:
        """The model, then its fallbacks depth first, each at most once."""
        seen: set[str] = set()
        stack = [model]
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            entry = self.entry(name) if name == model else self.models.get(name)
            if entry is None:
                continue
            yield entry
            stack.extend(reversed(entry.fallbacks))

    def _order(self, entry: ModelEntry) -> list[Route]:
        routes = entry.routes
        if len(routes) == 1:
            return routes
        # Weighted sampling without replacement (Efraimidis-Spirakis).
        keyed = [(self._rand() ** (1.0 / r.weight), i) for i, r in enumerate(routes)]
        keyed.sort(reverse=True)
        return [routes[i] for _, i in keyed]


def _breaker_listener(observer: RouterObserver, route: Route) -> Callable[[BreakerState], None]:
    def listen(state: BreakerState) -> None:
        observer.breaker(route, state)

    return listen


async def _aclose(events: AsyncIterator[StreamEvent]) -> None:
    close = getattr(events, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()
