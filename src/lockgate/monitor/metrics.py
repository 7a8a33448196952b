"""Prometheus metrics, in a registry owned by the app (no process-global registry).

Names and labels are documented in `docs/observability.md`.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST as _CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from lockgate.core.context import RequestContext
from lockgate.routing.breaker import BreakerState
from lockgate.routing.router import Route

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = _CONTENT_TYPE

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "lockgate_requests",
            "Gateway requests by outcome.",
            ["endpoint", "model", "provider", "route", "status"],
            registry=r,
        )
        self.errors = Counter(
            "lockgate_request_errors",
            "Gateway requests that ended in an error, by error code.",
            ["endpoint", "model", "provider", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "lockgate_request_duration_seconds",
            "Time from request received to last byte produced.",
            ["endpoint", "model", "provider", "stream"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "lockgate_time_to_first_token_seconds",
            "Time from request received to the first content token of a stream.",
            ["model", "provider"],
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "lockgate_tokens",
            "Tokens by type (input, output, cached_input, reasoning); estimated when the provider gave none.",
            ["model", "provider", "type"],
            registry=r,
        )
        self.cost = Counter(
            "lockgate_cost_usd",
            "Cost in US dollars from the configured or built-in prices.",
            ["model", "provider"],
            registry=r,
        )
        self.attempts = Counter(
            "lockgate_upstream_attempts",
            "Calls to upstream routes by outcome (ok or an error code).",
            ["model", "provider", "route", "outcome"],
            registry=r,
        )
        self.attempt_latency = Histogram(
            "lockgate_upstream_attempt_duration_seconds",
            "Duration of one upstream attempt (to the first event for streams).",
            ["model", "provider", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "lockgate_retries",
            "Retries wanted by the router; allowed=false when the retry budget refused one.",
            ["model", "provider", "route", "allowed"],
            registry=r,
        )
        self.breaker_state = Gauge(
            "lockgate_circuit_breaker_state",
            "Circuit breaker per route: 0 closed, 1 half-open, 2 open.",
            ["model", "provider", "route"],
            registry=r,
        )
        self.in_flight = Gauge(
            "lockgate_requests_in_flight", "Requests being processed.", ["endpoint"], registry=r
        )
        self.limiter_up = Gauge(
            "lockgate_limiter_up",
            "1 while the limits store answers (always 1 without Redis), 0 while it is unreachable.",
            registry=r,
        )
        self.guardrail_verdicts = Counter(
            "lockgate_guardrail_verdicts",
            "Guardrail verdicts: a scanner's finding at or above its threshold, by the action taken and where.",
            ["scanner", "action", "where"],
            registry=r,
        )
        self.control_plane_up = Gauge(
            "lockgate_control_plane_up",
            "1 while the control-plane database answers, 0 while the gateway serves its cached state.",
            registry=r,
        )
        self.audit_store_up = Gauge(
            "lockgate_audit_store_up",
            "1 while the ledger's store process runs (always 1 without one), 0 while it is being restarted.",
            registry=r,
        )

    def guardrail_verdict(self, scanner: str, action: str, where: str) -> None:
        self.guardrail_verdicts.labels(scanner, action, where).inc()

    # --- router observer ----------------------------------------------------------

    def attempt(self, route: Route, outcome: str, seconds: float) -> None:
        labels = (route.model, route.provider_name, route.upstream_model)
        self.attempts.labels(*labels, outcome).inc()
        self.attempt_latency.labels(*labels).observe(seconds)

    def breaker(self, route: Route, state: BreakerState) -> None:
        self.breaker_state.labels(route.model, route.provider_name, route.upstream_model).set(int(state))

    def retry(self, route: Route, allowed: bool) -> None:
        self.retries.labels(
            route.model, route.provider_name, route.upstream_model, "true" if allowed else "false"
        ).inc()

    def register_route(self, route: Route) -> None:
        self.breaker(route, route.breaker.state)

    # --- per request ----------------------------------------------------------------

    def record(self, ctx: RequestContext, status: int) -> None:
        provider = ctx.provider or ""
        model = ctx.model
        self.requests.labels(ctx.endpoint, model, provider, ctx.route_model or "", str(status)).inc()
        self.latency.labels(ctx.endpoint, model, provider, "true" if ctx.stream else "false").observe(
            ctx.elapsed()
        )
        if ctx.error is not None:
            self.errors.labels(ctx.endpoint, model, provider, ctx.error.code).inc()
        if ctx.first_token_at is not None:
            self.ttft.labels(model, provider).observe(ctx.first_token_at - ctx.started)
        usage = ctx.usage
        if usage is not None:
            if usage.input_tokens:
                self.tokens.labels(model, provider, "input").inc(usage.input_tokens)
            if usage.output_tokens:
                self.tokens.labels(model, provider, "output").inc(usage.output_tokens)
            if usage.cached_input_tokens:
                self.tokens.labels(model, provider, "cached_input").inc(usage.cached_input_tokens)
            if usage.reasoning_tokens:
                self.tokens.labels(model, provider, "reasoning").inc(usage.reasoning_tokens)
        if ctx.cost:
            self.cost.labels(model, provider).inc(ctx.cost)

    def render(self) -> bytes:
        return generate_latest(self.registry)
