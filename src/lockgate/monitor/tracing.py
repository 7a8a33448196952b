"""OpenTelemetry traces following the GenAI semantic conventions.

A span `chat {model}` (or `embeddings {model}`) per gateway request, kind CLIENT,
with `gen_ai.*` attributes. Exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT`
is set (the standard OTel variables apply); otherwise tracing costs nothing. Message
content is recorded only with `observability.capture_content = true`.

The tracer provider is built in the lifespan and never installed as the global one,
so an embedding application's own tracing is untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from lockgate.core.context import RequestContext

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

__all__ = ["TraceStage", "Tracing"]


class Tracing:
    def __init__(self, provider: TracerProvider | None, *, capture_content: bool) -> None:
        self.provider = provider
        self.capture_content = capture_content
        self.tracer: Tracer | None = provider.get_tracer("lockgate") if provider is not None else None

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        *,
        service_name: str,
        capture_content: bool,
        exporter: SpanExporter | None = None,
    ) -> Tracing:
        """Tracing on when an exporter is given (tests) or the OTLP endpoint is set."""
        if exporter is None and not (
            env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        ):
            return cls(None, capture_content=capture_content)
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return cls(provider, capture_content=capture_content)

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()


class TraceStage:
    name = "trace"

    def __init__(self, tracing: Tracing) -> None:
        self._tracing = tracing

    async def admit(self, ctx: RequestContext) -> None:
        tracer = self._tracing.tracer
        if tracer is None:
            return
        from opentelemetry.trace import SpanKind

        operation = "chat" if ctx.endpoint == "chat" else "embeddings"
        span = tracer.start_span(
            f"{operation} {ctx.model}",
            kind=SpanKind.CLIENT,
            start_time=int(ctx.started_wall * 1e9),
            attributes=_request_attributes(ctx, operation),
        )
        ctx.attrs["span"] = span
        ctx.attrs["trace_id"] = format(span.get_span_context().trace_id, "032x")
        if self._tracing.capture_content and ctx.chat is not None:
            span.set_attribute("gen_ai.input.messages", msgspec.json.encode(ctx.chat.messages).decode())

    async def complete(self, ctx: RequestContext) -> None:
        span: Span | None = ctx.attrs.get("span")
        if span is None:
            return
        from opentelemetry.trace import Status, StatusCode

        for key, value in _response_attributes(ctx).items():
            span.set_attribute(key, value)
        if self._tracing.capture_content and ctx.response is not None:
            span.set_attribute(
                "gen_ai.output.messages",
                msgspec.json.encode([c.text for c in ctx.response.choices]).decode(),
            )
        if ctx.error is not None:
            span.set_attribute("error.type", ctx.error.code)
            span.set_status(Status(StatusCode.ERROR, ctx.error.message))
        span.end()


def _request_attributes(ctx: RequestContext, operation: str) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.request.model": ctx.model,
        "lockgate.request_id": ctx.request_id,
        "lockgate.dialect": ctx.dialect,
    }
    chat = ctx.chat
    if chat is not None:
        for key, value in (
            ("gen_ai.request.max_tokens", chat.max_tokens),
            ("gen_ai.request.temperature", chat.temperature),
            ("gen_ai.request.top_p", chat.top_p),
            ("gen_ai.request.top_k", chat.top_k),
            ("gen_ai.request.seed", chat.seed),
            ("gen_ai.request.presence_penalty", chat.presence_penalty),
            ("gen_ai.request.frequency_penalty", chat.frequency_penalty),
        ):
            if value is not None:
                attrs[key] = value
        if chat.stop:
            attrs["gen_ai.request.stop_sequences"] = chat.stop
        if chat.n != 1:
            attrs["gen_ai.request.choice.count"] = chat.n
        attrs["lockgate.stream"] = chat.stream
    return attrs


def _response_attributes(ctx: RequestContext) -> dict[str, Any]:
    attrs: dict[str, Any] = {"lockgate.attempts": ctx.attempts}
    if ctx.provider_system:
        attrs["gen_ai.provider.name"] = ctx.provider_system
    if ctx.provider:
        attrs["lockgate.provider"] = ctx.provider
    if ctx.route_model:
        attrs["lockgate.route.model"] = ctx.route_model
    if ctx.response_model:
        attrs["gen_ai.response.model"] = ctx.response_model
    if ctx.response is not None:
        attrs["gen_ai.response.id"] = ctx.response.id
    if ctx.finish_reasons:
        attrs["gen_ai.response.finish_reasons"] = list(ctx.finish_reasons)
    if ctx.usage is not None:
        attrs["gen_ai.usage.input_tokens"] = ctx.usage.input_tokens
        attrs["gen_ai.usage.output_tokens"] = ctx.usage.output_tokens
        if ctx.usage.cached_input_tokens:
            attrs["gen_ai.usage.cache_read.input_tokens"] = ctx.usage.cached_input_tokens
    if ctx.cost is not None:
        attrs["lockgate.cost_usd"] = ctx.cost
    if ctx.first_token_at is not None:
        attrs["lockgate.time_to_first_token_s"] = ctx.first_token_at - ctx.started
    return attrs
