"""The request pipeline: an ordered list of stages around the router.

Each stage has one job. `admit` runs in order before the upstream call and may stop
the request by raising a `LockgateError`; `complete` runs in reverse order once the
request is over (answered, failed, or its stream ended or was cut), for every stage
whose `admit` ran. The list is assembled once at start-up (`lockgate config show
--pipeline` prints it).

Streams: `open_stream` returns only once the first upstream event has arrived, so a
failure before the first byte is an ordinary error (with fallbacks); the events that
follow are relayed as they come, and `complete` runs when the relay ends.

Output hooks (optional, for stages that rewrite answers, e.g. guardrails): a stage with
`filter_response(ctx, response)` gets the answer before it is returned and returns the
one to send (raising a LockgateError refuses it); one with `filter_stream(ctx, events)`
wraps the stream's events (returning `events` itself when it has nothing to do). A
filter that ends a stream sets `ctx.attrs["abort"]` to its error and raises it: the
client gets that error as the stream's last event. Stages without hooks cost nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, Protocol, cast

from lockgate.core.context import RequestContext
from lockgate.core.types import (
    ChatResponse,
    EmbeddingResponse,
    StreamEvent,
    StreamFinish,
    StreamStart,
    StreamTextDelta,
    StreamToolCallDelta,
    StreamToolCallStart,
    StreamUsage,
    Usage,
)
from lockgate.errors import LockgateError, StreamInterrupted
from lockgate.routing.router import Router

__all__ = ["Pipeline", "ResponseFilter", "Stage", "StreamFilter"]


class Stage(Protocol):
    name: str

    async def admit(self, ctx: RequestContext) -> None:
        """Before the upstream call; raise a LockgateError to refuse the request."""
        ...

    async def complete(self, ctx: RequestContext) -> None:
        """After the request is over; `ctx.error` is set when it failed. Must not raise."""
        ...


class ResponseFilter(Protocol):
    async def filter_response(self, ctx: RequestContext, response: ChatResponse) -> ChatResponse:
        """The answer to send; may set `ctx.response` to what is recorded instead."""
        ...


class StreamFilter(Protocol):
    def filter_stream(self, ctx: RequestContext, events: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
        """The events to send (`events` itself when there is nothing to do)."""
        ...


class Pipeline:
    def __init__(
        self,
        stages: list[Stage],
        router: Router,
        *,
        estimate_usage: Callable[[RequestContext], Awaitable[Usage | None]] | None = None,
    ) -> None:
        self.stages = stages
        self.router = router
        self._response_filters = [
            cast(ResponseFilter, s) for s in stages if callable(getattr(s, "filter_response", None))
        ]
        self._stream_filters = [cast(StreamFilter, s) for s in stages if callable(getattr(s, "filter_stream", None))]
        # Counts tokens locally when an upstream's stream reports no usage, so that a
        # client that asked for usage gets it (marked estimated in logs and metrics).
        self._estimate_usage = estimate_usage

    def describe(self) -> list[str]:
        return [s.name for s in self.stages] + ["route+provider"]

    async def chat(self, ctx: RequestContext) -> ChatResponse:
        admitted = await self._admit(ctx)
        try:
            response = await self.router.chat(ctx)
            ctx.response = response
            ctx.response_model = response.model
            ctx.usage = response.usage
            ctx.finish_reasons = [c.finish_reason for c in response.choices]
            for f in self._response_filters:
                response = await f.filter_response(ctx, response)
        except LockgateError as exc:
            ctx.error = exc
            await self._complete(ctx, admitted)
            raise
        await self._complete(ctx, admitted)
        _raise_fatal(ctx)
        return response

    async def embed(self, ctx: RequestContext) -> EmbeddingResponse:
        admitted = await self._admit(ctx)
        try:
            response = await self.router.embed(ctx)
        except LockgateError as exc:
            ctx.error = exc
            await self._complete(ctx, admitted)
            raise
        ctx.response_model = response.model
        ctx.usage = response.usage
        await self._complete(ctx, admitted)
        _raise_fatal(ctx)
        return response

    async def open_stream(self, ctx: RequestContext) -> AsyncIterator[StreamEvent]:
        admitted = await self._admit(ctx)
        # Stopped from outside (see `_relay`) while waiting for the first event: refused.
        ctx.attrs["stream_task"] = asyncio.current_task()
        try:
            first, events = await self.router.open_stream(ctx)
        except LockgateError as exc:
            ctx.error = exc
            await self._complete(ctx, admitted)
            raise
        except asyncio.CancelledError:
            abort: LockgateError | None = ctx.attrs.get("abort")
            task = asyncio.current_task()
            if abort is None or task is None:
                raise
            task.uncancel()
            ctx.error = abort
            await self._complete(ctx, admitted)
            raise abort from None
        finally:
            ctx.attrs.pop("stream_task", None)
        return self._relay(ctx, first, events, admitted)

    async def _relay(
        self,
        ctx: RequestContext,
        first: StreamEvent,
        events: AsyncIterator[StreamEvent],
        admitted: list[Stage],
    ) -> AsyncIterator[StreamEvent]:
        text: list[str] = []
        ctx.attrs["stream_text"] = text
        filtered = self._filtered(ctx, first, events) if self._stream_filters else None
        # A stage may end this stream from outside (a kill switch): it sets
        # ctx.attrs["abort"] to an error and cancels this task (if it runs yet).
        ctx.attrs["stream_task"] = asyncio.current_task()
        try:
            stopped: LockgateError | None = ctx.attrs.get("abort")
            if stopped is not None:  # stopped before this task ran
                raise stopped
            if filtered is None:
                _observe(ctx, first, text)
                yield first
                async for event in events:
                    _observe(ctx, event, text)
                    yield event
            else:
                async for event in filtered:
                    _observe(ctx, event, text)
                    yield event
            if ctx.usage is None and self._estimate_usage is not None:
                usage = await self._estimate_usage(ctx)
                if usage is not None:
                    ctx.usage = usage
                    yield StreamUsage(usage=usage)
        except LockgateError as exc:
            if exc is ctx.attrs.get("abort"):
                ctx.error = exc
                raise
            ctx.error = exc if isinstance(exc, StreamInterrupted) else StreamInterrupted(
                f"The upstream stream failed after it started: {exc.message}"
            )
            raise ctx.error from exc
        except asyncio.CancelledError:
            abort: LockgateError | None = ctx.attrs.get("abort")
            task = asyncio.current_task()
            if abort is None or task is None:
                raise
            task.uncancel()
            ctx.error = abort
            raise abort from None
        finally:
            # A client that goes away mid-stream cancels this task, and every later await
            # in it (anyio's cancel scopes): the upstream must still be closed and every
            # stage completed (slots freed, usage settled and recorded), in a task of its own.
            await _run_to_end(self._end_stream(ctx, events, admitted, filtered))
        _raise_fatal(ctx)  # e.g. the audit event could not be made durable: no clean end

    def _filtered(
        self, ctx: RequestContext, first: StreamEvent, events: AsyncIterator[StreamEvent]
    ) -> AsyncIterator[StreamEvent]:
        source = _prepend(first, events)
        for f in self._stream_filters:
            source = f.filter_stream(ctx, source)
        return source

    async def _end_stream(
        self,
        ctx: RequestContext,
        events: AsyncIterator[StreamEvent],
        admitted: list[Stage],
        filtered: AsyncIterator[StreamEvent] | None = None,
    ) -> None:
        try:
            for stream in (filtered, events):
                close = getattr(stream, "aclose", None)
                if close is not None:
                    await close()
        finally:
            await self._complete(ctx, admitted)

    async def _admit(self, ctx: RequestContext) -> list[Stage]:
        admitted: list[Stage] = []
        for stage in self.stages:
            admitted.append(stage)
            try:
                await stage.admit(ctx)
            except LockgateError as exc:
                ctx.error = exc
                await self._complete(ctx, admitted)
                raise
        return admitted

    async def _complete(self, ctx: RequestContext, admitted: list[Stage]) -> None:
        for stage in reversed(admitted):
            await stage.complete(ctx)


def _raise_fatal(ctx: RequestContext) -> None:
    """A `complete` hook may not raise, but it may veto the answer: it sets
    `ctx.attrs["fatal"]` to an error (the audit stage does, when the ledger is down)."""
    fatal: LockgateError | None = ctx.attrs.get("fatal")
    if fatal is not None:
        ctx.error = fatal
        raise fatal


_ENDING: set[asyncio.Task[None]] = set()  # strong references while they run


async def _run_to_end(work: Coroutine[Any, Any, None]) -> None:
    """Await `work` in a task of its own: cancelling the caller does not stop it."""
    task = asyncio.ensure_future(work)
    _ENDING.add(task)
    task.add_done_callback(_ENDING.discard)
    await asyncio.shield(task)


async def _prepend(first: StreamEvent, events: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
    yield first
    async for event in events:
        yield event


def _observe(ctx: RequestContext, event: StreamEvent, text: list[str]) -> None:
    if isinstance(event, StreamTextDelta):
        if ctx.first_token_at is None:
            ctx.first_token_at = _now()
        text.append(event.text)
    elif isinstance(event, StreamToolCallDelta):
        text.append(event.arguments)
    elif isinstance(event, StreamToolCallStart):
        if ctx.first_token_at is None:
            ctx.first_token_at = _now()
        text.append(event.name)
    elif isinstance(event, StreamUsage):
        ctx.usage = event.usage
    elif isinstance(event, StreamFinish):
        ctx.finish_reasons.append(event.finish_reason)
    elif isinstance(event, StreamStart):  # pyright: ignore[reportUnnecessaryIsInstance]
        ctx.response_model = event.model


_now = time.perf_counter
