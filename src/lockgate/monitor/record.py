"""The record stage: usage (counted locally when the provider gave none), cost,
metrics and the access log line, once a request is over."""

from __future__ import annotations

import logging

from lockgate.core.context import RequestContext
from lockgate.core.types import Usage
from lockgate.monitor.metrics import Metrics
from lockgate.usage.pricing import PriceTable, cost
from lockgate.usage.tokens import TokenCounter

__all__ = ["RecordStage"]


class RecordStage:
    name = "record"

    def __init__(self, *, metrics: Metrics, tokens: TokenCounter, prices: PriceTable) -> None:
        self._metrics = metrics
        self._tokens = tokens
        self._prices = prices
        self._log = logging.getLogger("lockgate.access")

    async def admit(self, ctx: RequestContext) -> None:
        self._metrics.in_flight.labels(ctx.endpoint).inc()
        ctx.attrs["in_flight"] = True

    async def complete(self, ctx: RequestContext) -> None:
        if ctx.attrs.pop("in_flight", False):
            self._metrics.in_flight.labels(ctx.endpoint).dec()
        await self.meter(ctx)
        status = ctx.error.status if ctx.error is not None else 200
        self._metrics.record(ctx, status)
        self._access_log(ctx, status)

    async def meter(self, ctx: RequestContext) -> None:
        """Final usage (counted locally when the provider gave none) and cost; once."""
        if ctx.provider is None or ctx.attrs.get("metered"):
            return
        ctx.attrs["metered"] = True
        if ctx.usage is None or (ctx.usage.input_tokens == 0 and ctx.usage.output_tokens == 0):
            ctx.usage = await self.estimate(ctx)
        if ctx.usage is not None:
            ctx.cost = cost(self._prices.price_for(ctx.model, ctx.route_model), ctx.usage)

    async def estimate(self, ctx: RequestContext) -> Usage | None:
        """Usage counted locally with tiktoken from the request and the answer so far."""
        chat = ctx.chat
        if chat is None:
            return ctx.usage
        await self._tokens.ensure_loaded(ctx.route_model)
        text: list[str] | None = ctx.attrs.get("stream_text")
        if text is None and ctx.response is not None:
            text = [c.text for c in ctx.response.choices]
            text += [t.arguments for c in ctx.response.choices for t in c.tool_calls]
        model = ctx.route_model
        return Usage(
            input_tokens=self._tokens.count_chat(chat, model),
            output_tokens=self._tokens.count_output("".join(text or ()), [], model),
            estimated=True,
        )

    def _access_log(self, ctx: RequestContext, status: int) -> None:
        if not self._log.isEnabledFor(logging.INFO):
            return
        extra: dict[str, object] = {
            "request_id": ctx.request_id,
            "endpoint": ctx.endpoint,
            "dialect": ctx.dialect,
            "model": ctx.model,
            "provider": ctx.provider,
            "route": ctx.route_model,
            "status": status,
            "stream": ctx.stream,
            "duration_ms": round(ctx.elapsed() * 1000, 3),
            "attempts": ctx.attempts,
        }
        if "trace_id" in ctx.attrs:
            extra["trace_id"] = ctx.attrs["trace_id"]
        p = ctx.principal
        if p is not None:
            extra["principal"] = p.label or p.id
            if p.agent_name:
                extra["agent"] = p.agent_name
            if p.shadow_agent:
                extra["shadow_agent"] = p.shadow_agent
            if p.delegation:
                extra["delegation"] = list(p.delegation)
        decision = ctx.attrs.get("policy")
        if decision is not None:
            extra["policy"] = {"decision": decision.decision, "policies": list(decision.policies)}
        if ctx.usage is not None:
            extra["input_tokens"] = ctx.usage.input_tokens
            extra["output_tokens"] = ctx.usage.output_tokens
            extra["usage_estimated"] = ctx.usage.estimated
        if ctx.cost is not None:
            extra["cost_usd"] = round(ctx.cost, 8)
        if ctx.first_token_at is not None:
            extra["ttft_ms"] = round((ctx.first_token_at - ctx.started) * 1000, 3)
        if ctx.error is not None:
            extra["error_code"] = ctx.error.code
        self._log.info("request", extra=extra)
