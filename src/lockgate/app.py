"""`create_app(loaded)`: the ASGI app. Every resource opens in the lifespan and is
passed down; nothing is created at import time."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import aiohttp
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from lockgate.access.kill import KillStage
from lockgate.access.plane import AccessPlane
from lockgate.audit.ledger import Ledger
from lockgate.audit.setup import open_ledger
from lockgate.audit.stage import AuditStage
from lockgate.config.loader import LoadedConfig
from lockgate.config.schema import Config
from lockgate.core.context import RequestContext
from lockgate.core.ids import uuid7
from lockgate.core.pipeline import Pipeline
from lockgate.errors import ConfigError, LockgateError, MethodNotAllowed, NotFound
from lockgate.gateway.edge import error_response
from lockgate.gateway.openapi import openapi_document
from lockgate.gateway.routes import GatewayRoutes
from lockgate.guard.engine import GuardEngine
from lockgate.guard.stage import GuardStage
from lockgate.mcp.host import McpHost, mcp_routes, open_mcp
from lockgate.monitor.metrics import CONTENT_TYPE, Metrics
from lockgate.monitor.record import RecordStage
from lockgate.monitor.tracing import TraceStage, Tracing
from lockgate.oversight.queue import Oversight
from lockgate.oversight.routes import oversight_routes
from lockgate.oversight.setup import open_oversight
from lockgate.oversight.stage import ApprovalStage
from lockgate.prompts.plane import PromptPlane
from lockgate.providers.base import Provider
from lockgate.providers.registry import load_adapters
from lockgate.routing.breaker import CircuitBreaker
from lockgate.routing.budget import RetryBudget
from lockgate.routing.router import ModelEntry, Router, RouterSettings
from lockgate.routing.router import Route as UpstreamRoute
from lockgate.usage.pricing import PriceTable
from lockgate.usage.tokens import TokenCounter

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = ["Gateway", "create_app", "pipeline_stage_names"]

_log = logging.getLogger("lockgate")


class Gateway:
    """The running gateway's services, built in the lifespan and handed to the routes."""

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        session: aiohttp.ClientSession,
        providers: dict[str, Provider],
        tracing: Tracing,
        access: AccessPlane,
        ledger: Ledger | None = None,
        oversight: Oversight | None = None,
    ) -> None:
        config = loaded.config
        self.config = config
        self.providers = providers
        self.tracing = tracing
        self.access = access
        self.mcp: McpHost | None = None  # the lifespan's (open_mcp); its SDK service starts when MCP is used
        self.audit = ledger
        self.oversight = oversight
        self.metrics = Metrics()
        self.guard = GuardEngine(
            config.guardrails, count=self.metrics.guardrail_verdict, oversight=lambda: getattr(self, "oversight", None)
        )
        self.session = session
        self.max_body_bytes = config.gateway.max_body_bytes
        self.started = int(time.time())
        self.router = _build_router(config, providers, self.metrics, access.kill)
        self.identify = access.identify
        self.tokens = TokenCounter()
        prices = PriceTable.from_config(config)
        self.record = RecordStage(metrics=self.metrics, tokens=self.tokens, prices=prices)
        limits = access.limits_stage(prices=prices, first_route=self._first_route, meter=self.record.meter)
        access.usage.meter = self.record.meter
        # The registry behind `prompt:NAME@REF` models; started in the lifespan. The
        # quality gate is wired with `self.prompts.set_gatekeeper(...)`.
        self.prompts = PromptPlane(
            loaded, access.store, meter=self.record.meter, audit=lambda: getattr(self, "audit", None)
        )
        stages: list[Any] = [self.record]
        if ledger is not None:
            stages.append(AuditStage(ledger, meter=self.record.meter))
        stages += [TraceStage(tracing), access.usage, self.identify, self.prompts.stage, access.kill, access.authorize]
        if oversight is not None and config.approvals.rules:
            stages.append(ApprovalStage(
                oversight, config.approvals, state=access.state, prices=prices, first_route=self._first_route,
                reserve_tokens=config.access.reserve_tokens_default,
            ))
        stages.append(limits)
        if config.guardrails.configured:
            stages.append(GuardStage(self.guard))
        self.pipeline = Pipeline(
            stages,
            self.router,
            estimate_usage=self.record.estimate,
        )

    def _first_route(self, model: str) -> str | None:
        entry = self.router.models.get(model)
        return entry.routes[0].upstream_model if entry and entry.routes else None

    async def authenticate(self, ctx: RequestContext) -> None:
        await self.identify.admit(ctx)

    async def record_refusal(self, ctx: RequestContext) -> None:
        await self.record.complete(ctx)


def pipeline_stage_names(loaded: LoadedConfig) -> list[str]:
    """The stages a request passes, in order, as `lockgate config show --pipeline` prints them."""
    names = ["record"]
    if loaded.config.audit.enabled:
        names.append("audit")
    names += ["trace", "usage", "identify", "resolve", "kill switch", "authorize"]
    if loaded.config.approvals.rules:
        names.append("approvals")
    names.append("limits")
    if loaded.config.guardrails.configured:
        names.append("guardrails")
    return [*names, "route+provider"]


def _build_router(config: Config, providers: dict[str, Provider], metrics: Metrics, kill: KillStage) -> Router:
    routing = config.routing
    models: dict[str, ModelEntry] = {}
    for name, model in config.models.items():
        routes: list[UpstreamRoute] = []
        for rc in model.routes:
            route = UpstreamRoute(
                model=name,
                provider_name=rc.provider,
                provider=providers[rc.provider],
                upstream_model=rc.model,
                weight=rc.weight,
                breaker=CircuitBreaker(threshold=routing.breaker_failures, cooldown=routing.breaker_cooldown),
            )
            metrics.register_route(route)
            routes.append(route)
        models[name] = ModelEntry(
            name=name,
            routes=routes,
            fallbacks=list(model.fallbacks),
            timeout=model.timeout or routing.timeout,
            retries=routing.retries if model.retries is None else model.retries,
        )
    return Router(
        models,
        settings=RouterSettings(
            request_timeout=config.gateway.request_timeout,
            backoff_base=routing.backoff_base,
            backoff_max=routing.backoff_max,
            max_retry_after=routing.max_retry_after,
        ),
        budget=RetryBudget(ratio=routing.retry_budget, min_per_second=routing.retry_budget_min),
        observer=metrics,
        route_blocked=kill.route_blocked,
    )


def _build_providers(loaded: LoadedConfig, session: aiohttp.ClientSession) -> dict[str, Provider]:
    adapters = load_adapters()
    providers: dict[str, Provider] = {}
    for name, pc in loaded.config.providers.items():
        ep = adapters.get(pc.type)
        if ep is None:
            raise ConfigError(f"providers.{name}.type: no adapter installed for {pc.type!r}")
        try:
            cls: Any = ep.load()
        except ImportError as exc:
            hint = " (pip install 'lockgate[local]')" if pc.type == "local" else ""
            raise ConfigError(f"providers.{name}: cannot load the {pc.type!r} adapter: {exc}{hint}") from None
        api_key = loaded.secret(getattr(pc, "api_key", None))
        providers[name] = cls(name, pc, session=session, api_key=api_key)
    return providers


async def _open_gateway(
    loaded: LoadedConfig,
    env: Mapping[str, str],
    span_exporter: SpanExporter | None,
    stack: contextlib.AsyncExitStack,
) -> Gateway:
    """Open every resource in order; `stack` closes them in reverse (on failure too)."""
    tracing = Tracing.from_env(
        env,
        service_name=loaded.config.observability.service_name,
        capture_content=loaded.config.observability.capture_content,
        exporter=span_exporter,
    )
    stack.callback(tracing.shutdown)
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60)
    session = aiohttp.ClientSession(connector=connector, auto_decompress=True, trust_env=False)
    stack.push_async_callback(session.close)
    providers = _build_providers(loaded, session)
    for provider in providers.values():
        stack.push_async_callback(_quietly, provider.aclose)
        await provider.start()
    access = await AccessPlane.open(loaded)
    stack.push_async_callback(access.aclose)
    ledger = None
    if loaded.config.audit.enabled:
        ledger = open_ledger(loaded, access.store, gateway=True)
        await ledger.start()
        stack.push_async_callback(ledger.aclose)
        access.services.audit = ledger
    oversight = open_oversight(loaded, access.store, ledger, session)
    stack.push_async_callback(oversight.aclose)
    access.services.oversight = oversight
    gateway = Gateway(
        loaded, session=session, providers=providers, tracing=tracing, access=access, ledger=ledger,
        oversight=oversight,
    )
    await gateway.guard.start()
    await gateway.prompts.start(access.watcher)
    stack.push_async_callback(gateway.prompts.aclose)  # flushes outcomes: before the store closes
    gateway.mcp = mcp = await open_mcp(loaded, gateway, env)
    stack.push_async_callback(mcp.aclose)
    return gateway


async def _quietly(close: Callable[[], Awaitable[None]]) -> None:
    with contextlib.suppress(Exception):
        await close()


def create_app(
    loaded: LoadedConfig,
    *,
    env: Mapping[str, str] | None = None,
    span_exporter: SpanExporter | None = None,
) -> Starlette:
    env = env or {}
    holder: dict[str, Gateway] = {}
    routes_box: list[GatewayRoutes] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncGenerator[None]:
        async with contextlib.AsyncExitStack() as stack:
            gateway = await _open_gateway(loaded, env, span_exporter, stack)
            holder["gateway"] = gateway
            routes_box.append(GatewayRoutes(gateway))
            app.state.gateway = gateway
            yield

    def gateway_routes() -> GatewayRoutes:
        return routes_box[0]

    async def healthz(request: Request) -> Response:
        gateway = holder.get("gateway")
        if gateway is None:
            return JSONResponse({"status": "ok"})
        limits, control_plane = gateway.access.limiter.healthy, gateway.access.watcher.healthy
        audit = gateway.audit is None or gateway.audit.healthy
        return JSONResponse({
            "status": "ok" if limits and control_plane and audit else "degraded",
            "limits": "up" if limits else "down",
            "control_plane": "up" if control_plane else "down",
            "audit": "up" if audit else "down",
        })

    async def metrics(request: Request) -> Response:
        gateway = holder["gateway"]
        gateway.metrics.limiter_up.set(1 if gateway.access.limiter.healthy else 0)
        gateway.metrics.control_plane_up.set(1 if gateway.access.watcher.healthy else 0)
        gateway.metrics.audit_store_up.set(1 if gateway.audit is None or gateway.audit.healthy else 0)
        return Response(gateway.metrics.render(), media_type=CONTENT_TYPE)

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document())

    # MCP first: a tool call is latency-bound (docs/mcp.md), and every route before it
    # is a regular expression matched per request.
    routes: list[Any] = [
        *mcp_routes(holder),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    routes += _lazy_routes(gateway_routes)
    routes += oversight_routes(lambda: holder["gateway"])
    routes.append(Mount("/admin", app=_admin_app(loaded, holder)))
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
    )
    return app


def _admin_app(loaded: LoadedConfig, holder: dict[str, Gateway]) -> Any:
    from lockgate.admin.app import create_admin_app

    return create_admin_app(
        lambda: holder["gateway"].access.services,
        admin_key=loaded.secret(loaded.config.gateway.admin_key),
        state=lambda: holder["gateway"].access.state(),
        policy=lambda: holder["gateway"].access.policy,
        mcp=lambda: holder["gateway"].mcp,
        gateway=lambda: holder["gateway"],
    )


def _lazy_routes(get: Any) -> list[Route]:
    """The gateway routes, bound at request time to the lifespan's `GatewayRoutes`."""

    def bind(name: str) -> Any:
        async def endpoint(request: Request) -> Response:
            return await getattr(get(), name)(request)

        endpoint.__name__ = name
        return endpoint

    return [Route(path, bind(name), methods=[method]) for path, name, method in GatewayRoutes.TABLE]


def _dialect_of(request: Request) -> str:
    return "anthropic" if request.url.path.startswith("/v1/messages") else "openai"


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    err: LockgateError
    if exc.status_code == 404:
        err = NotFound(f"Unknown path: {request.method} {request.url.path}")
    elif exc.status_code == 405:
        err = MethodNotAllowed(f"Method {request.method} is not allowed on {request.url.path}.")
    else:
        err = LockgateError(str(exc.detail))
        err.status = exc.status_code
    rid = request.headers.get("x-request-id") or uuid7()
    return error_response(err, "anthropic" if _dialect_of(request) == "anthropic" else "openai", rid)


async def _internal_error(request: Request, exc: Exception) -> Response:
    rid = uuid7()
    _log.exception("unhandled error", extra={"request_id": rid})
    err = LockgateError("The gateway failed to process the request.")
    return error_response(err, "anthropic" if _dialect_of(request) == "anthropic" else "openai", rid)
