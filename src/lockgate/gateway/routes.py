"""The gateway's HTTP routes: the OpenAI and Anthropic dialects over one pipeline.

A handler reads the body, translates it with its dialect module, runs the pipeline
and translates the answer back. It holds no logic of its own.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from lockgate.core.context import Dialect, RequestContext
from lockgate.core.pipeline import Pipeline
from lockgate.core.types import ChatRequest, StreamEvent
from lockgate.errors import LockgateError
from lockgate.gateway import anthropic_wire, openai_wire
from lockgate.gateway.edge import credential_of, error_response, read_body, request_id_of

__all__ = ["GatewayRoutes"]

_log = logging.getLogger("lockgate.gateway")
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


class _Encoder(Protocol):
    def encode(self, event: StreamEvent) -> bytes: ...
    def error(self, err: LockgateError) -> bytes: ...


class Services(Protocol):
    """What the routes need from the running app."""

    pipeline: Pipeline
    max_body_bytes: int
    started: int

    async def authenticate(self, ctx: RequestContext) -> None: ...

    async def record_refusal(self, ctx: RequestContext) -> None: ...


class GatewayRoutes:
    # (path, handler method, HTTP method); bound by `lockgate.app` at start-up.
    TABLE: tuple[tuple[str, str, str], ...] = (
        ("/v1/chat/completions", "chat_completions", "POST"),
        ("/chat/completions", "chat_completions", "POST"),
        ("/v1/embeddings", "embeddings", "POST"),
        ("/embeddings", "embeddings", "POST"),
        ("/v1/messages", "messages", "POST"),
        ("/v1/models", "models", "GET"),
        ("/models", "models", "GET"),
        ("/v1/models/{model:path}", "model", "GET"),
    )

    def __init__(self, services: Services) -> None:
        self._s = services

    # --- OpenAI -------------------------------------------------------------------

    async def chat_completions(self, request: Request) -> Response:
        rid = request_id_of(request)
        ctx = _context(request, rid, "openai", "chat")
        try:
            chat = await self._decode(request, ctx, openai_wire.decode_chat_request)
            if chat.stream:
                events = await self._s.pipeline.open_stream(ctx)
                encoder = openai_wire.ChatStreamEncoder(chat.model, chat.include_usage)
                return _sse(self._frames(encoder, events, encoder.done), rid, ctx.attrs.get("response_headers"))
            response = await self._s.pipeline.chat(ctx)
            body = openai_wire.encode_chat_response(response, model=chat.model)
            return _json(body, rid, ctx.attrs.get("response_headers"))
        except LockgateError as err:
            return error_response(err, "openai", rid)

    async def embeddings(self, request: Request) -> Response:
        rid = request_id_of(request)
        ctx = _context(request, rid, "openai", "embeddings")
        try:
            body = await read_body(request, self._s.max_body_bytes)
            try:
                emb = openai_wire.decode_embedding_request(body)
            except LockgateError as err:
                await self._refuse_unauthenticated(ctx, err)
                raise
            ctx.embedding = emb
            ctx.model = emb.model
            response = await self._s.pipeline.embed(ctx)
            out = openai_wire.encode_embedding_response(
                response, model=emb.model, encoding_format=emb.encoding_format
            )
            return _json(out, rid)
        except LockgateError as err:
            return error_response(err, "openai", rid)

    async def models(self, request: Request) -> Response:
        rid = request_id_of(request)
        dialect: Dialect = "anthropic" if "anthropic-version" in request.headers else "openai"
        ctx = _context(request, rid, dialect, "models")
        try:
            await self._s.authenticate(ctx)
        except LockgateError as err:
            return error_response(err, dialect, rid)
        names = list(self._s.pipeline.router.models)
        if dialect == "anthropic":
            return _json(anthropic_wire.encode_models_list(names, self._s.started), rid)
        return _json(openai_wire.encode_models_list(names, self._s.started), rid)

    async def model(self, request: Request) -> Response:
        rid = request_id_of(request)
        ctx = _context(request, rid, "openai", "models")
        try:
            await self._s.authenticate(ctx)
            name = request.path_params["model"]
            self._s.pipeline.router.entry(name)
        except LockgateError as err:
            return error_response(err, "openai", rid)
        return _json(openai_wire.encode_model(name, self._s.started), rid)

    # --- Anthropic ----------------------------------------------------------------

    async def messages(self, request: Request) -> Response:
        rid = request_id_of(request)
        ctx = _context(request, rid, "anthropic", "chat")
        try:
            chat = await self._decode(request, ctx, anthropic_wire.decode_messages_request)
            if chat.stream:
                events = await self._s.pipeline.open_stream(ctx)
                encoder = anthropic_wire.MessageStreamEncoder(chat.model)
                return _sse(self._frames(encoder, events, encoder.finish), rid, ctx.attrs.get("response_headers"))
            response = await self._s.pipeline.chat(ctx)
            body = anthropic_wire.encode_message_response(response, model=chat.model)
            return _json(body, rid, ctx.attrs.get("response_headers"))
        except LockgateError as err:
            return error_response(err, "anthropic", rid)

    # --- shared ---------------------------------------------------------------------

    async def _decode(
        self, request: Request, ctx: RequestContext, decode: Callable[[bytes], ChatRequest]
    ) -> ChatRequest:
        body = await read_body(request, self._s.max_body_bytes)
        try:
            chat = decode(body)
        except LockgateError as err:
            await self._refuse_unauthenticated(ctx, err)
            raise
        ctx.chat = chat
        ctx.model = chat.model
        ctx.stream = chat.stream
        return chat

    async def _refuse_unauthenticated(self, ctx: RequestContext, err: LockgateError) -> None:
        """A bad body from a caller without a valid key gets 401, as the real APIs do."""
        await self._s.authenticate(ctx)
        ctx.error = err
        await self._s.record_refusal(ctx)

    async def _frames(
        self, encoder: _Encoder, events: AsyncIterator[StreamEvent], end: Callable[[], bytes]
    ) -> AsyncIterator[bytes]:
        """Encode a stream; a failure after the first byte ends it with an error event."""
        try:
            async for event in events:
                frame = encoder.encode(event)
                if frame:
                    yield frame
        except LockgateError as err:
            yield encoder.error(err)
            return
        except Exception:  # the stream boundary: log it, end the stream with an error event
            _log.exception("stream failed")
            yield encoder.error(LockgateError("The stream failed inside the gateway."))
            return
        yield end()


_HINT_HEADERS = ("x-lockgate-agent", "x-lockgate-delegation", "x-lockgate-session", "x-lockgate-reasoning", "x-lockgate-data-subject", "x-lockgate-approval", "x-lockgate-approval-mode",)


def _context(request: Request, rid: str, dialect: Dialect, endpoint: str) -> RequestContext:
    ctx = RequestContext(request_id=rid, dialect=dialect, endpoint=endpoint, credential=credential_of(request))
    headers = request.headers
    hints = {name: value for name in _HINT_HEADERS if (value := headers.get(name))}
    if hints:
        ctx.attrs["headers"] = hints
    return ctx


def _json(body: bytes, request_id: str, extra: dict[str, str] | None = None) -> Response:
    """`extra`: headers stages set in `ctx.attrs["response_headers"]` (e.g. the prompt version)."""
    return Response(body, media_type="application/json", headers={**(extra or {}), "x-request-id": request_id})


def _sse(frames: AsyncIterator[bytes], request_id: str, extra: dict[str, str] | None = None) -> StreamingResponse:
    return StreamingResponse(
        frames, media_type="text/event-stream", headers={**(extra or {}), **_SSE_HEADERS, "x-request-id": request_id}
    )

