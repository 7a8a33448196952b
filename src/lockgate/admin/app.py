"""The admin REST API under /admin (FastAPI: its OpenAPI document is at /admin/openapi.json).

Bearer: the admin key. One exception: an agent may ask for a grant for itself with its
own key (`POST /admin/grants`). Errors are `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import hmac
import logging
import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any, NamedTuple

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from lockgate.access.policy_test import run_policy_test
from lockgate.access.services import AccessService
from lockgate.access.state import AccessState, hash_secret
from lockgate.admin.audit import include_audit_routes
from lockgate.admin.evals import include_eval_routes
from lockgate.admin.mcp import include_mcp_routes
from lockgate.admin.prompts import include_prompt_routes
from lockgate.admin.schemas import (
    AgentIn,
    GrantIn,
    KeyIn,
    KillIn,
    PolicyTestIn,
    StatusIn,
    TeamIn,
    UserIn,
    out,
)
from lockgate.core.ids import uuid7
from lockgate.errors import (
    ApprovalPending,
    AuthenticationFailed,
    InvalidRequest,
    LockgateError,
    NotFound,
    PermissionDenied,
)
from lockgate.gateway import openai_wire
from lockgate.gateway.edge import credential_of, error_response

__all__ = ["create_admin_app"]

_log = logging.getLogger("lockgate.admin")


def _error(err: LockgateError) -> Response:
    if isinstance(err, ApprovalPending):  # held for a human: 202 and the approval to poll
        return error_response(err, "openai", uuid7())
    headers = {"retry-after": str(math.ceil(err.retry_after))} if err.retry_after is not None else None
    return Response(openai_wire.error_body(err), status_code=err.status, media_type="application/json", headers=headers)


class _Ctx(NamedTuple):
    svc: Callable[[], AccessService]
    require_admin: Callable[..., str]
    admin_key: str | None
    state: Callable[[], AccessState]
    policy: Callable[[], Any]


def create_admin_app(
    services: Callable[[], AccessService],
    *,
    admin_key: str | None,
    state: Callable[[], AccessState],
    policy: Callable[[], Any],
    mcp: Callable[[], Any] | None = None,
    gateway: Callable[[], Any] | None = None,
) -> FastAPI:
    app = FastAPI(title="lockgate admin API", version="1", docs_url="/docs", redoc_url=None)

    @app.exception_handler(LockgateError)
    async def _lockgate_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LockgateError)
        return _error(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems: list[str] = []
        param = None
        for e in exc.errors():
            loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
            param = param or loc or None
            msg = "unknown field" if e.get("type") == "extra_forbidden" else e.get("msg", "invalid")
            problems.append(f"{loc or 'body'}: {msg}")
        return _error(InvalidRequest("Invalid request: " + "; ".join(problems), param=param))

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        err = NotFound(f"Unknown path: {request.url.path}") if exc.status_code == 404 else LockgateError(str(exc.detail))
        if exc.status_code not in (404,):
            err.status = exc.status_code
        return _error(err)

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception) -> Response:
        # The boundary: log it, answer in the API's error shape, never leak the details.
        _log.exception("admin API failed", extra={"path": request.url.path})
        return _error(LockgateError("The admin API failed to process the request."))

    def require_admin(request: Request) -> str:
        credential = credential_of(request)
        if admin_key is None:
            raise PermissionDenied("The admin API is disabled: set [gateway] admin_key.")
        if not credential:
            raise AuthenticationFailed("Missing credentials: send the admin key as 'Authorization: Bearer KEY'.")
        if not hmac.compare_digest(credential.encode(), admin_key.encode()):
            raise AuthenticationFailed("Incorrect admin key.")
        return "admin"


    ctx = _Ctx(services, require_admin, admin_key, state, policy)
    _teams_routes(app, ctx)
    _agents_routes(app, ctx)
    _keys_routes(app, ctx)
    _grants_routes(app, ctx)
    _kill_switches_routes(app, ctx)
    _policy_routes(app, ctx)
    include_mcp_routes(app, require_admin, mcp)
    if gateway is not None:
        include_audit_routes(app, require_admin, gateway)
        include_prompt_routes(app, require_admin, lambda: gateway().prompts)
        include_eval_routes(app, require_admin, gateway)
    return app


def _teams_routes(app: FastAPI, ctx: _Ctx) -> None:
    svc, require_admin = ctx.svc, ctx.require_admin

    @app.post("/teams", status_code=201)
    async def create_team(body: TeamIn, _: str = Depends(require_admin)) -> dict[str, Any]:
        return out(await svc().create_team(body.name, limits=body.limits.to_limits(), allowed_models=body.allowed_models))

    @app.get("/teams")
    async def list_teams(_: str = Depends(require_admin)) -> list[dict[str, Any]]:
        return [out(t) for t in await svc().store.list_teams()]

    @app.get("/teams/{team}")
    async def get_team(team: str, _: str = Depends(require_admin)) -> dict[str, Any]:
        return out(await svc().store.get_team(team))

    @app.post("/users", status_code=201)
    async def create_user(body: UserIn, _: str = Depends(require_admin)) -> dict[str, Any]:
        return out(await svc().create_user(body.name, team=body.team, limits=body.limits.to_limits()))

    @app.get("/users")
    async def list_users(_: str = Depends(require_admin)) -> list[dict[str, Any]]:
        return [out(u) for u in await svc().store.list_users()]


def _agents_routes(app: FastAPI, ctx: _Ctx) -> None:
    svc, require_admin = ctx.svc, ctx.require_admin

    @app.post("/agents", status_code=201)
    async def register_agent(body: AgentIn, _: str = Depends(require_admin)) -> dict[str, Any]:
        agent = await svc().register_agent(
            body.name, owner=body.owner, purpose=body.purpose, risk_tier=body.risk_tier, team=body.team,
            allowed_models=body.allowed_models, allowed_tools=body.allowed_tools, limits=body.limits.to_limits(),
        )
        return out(agent)

    @app.get("/agents")
    async def list_agents(_: str = Depends(require_admin)) -> list[dict[str, Any]]:
        return [
            {**out(a.agent), "requests": a.requests, "tokens": a.tokens, "spend_usd": a.spend_usd,
             "last_active_day": a.last_day.isoformat() if a.last_day else None}
            for a in await svc().inventory()
        ]

    @app.get("/agents/shadow")
    async def shadow_agents(_: str = Depends(require_admin)) -> list[dict[str, Any]]:
        return [out(s) for s in await svc().store.list_shadow_agents()]

    @app.get("/agents/drift")
    async def drift(_: str = Depends(require_admin), days: int = 30) -> list[dict[str, Any]]:
        if not 1 <= days <= 3660:
            raise InvalidRequest("days must be between 1 and 3660.", param="days")
        return [
            {"agent": r.agent, "flagged": r.flagged, "granted_beyond_baseline": list(r.granted_beyond_baseline),
             "unused": list(r.unused), "used": list(r.used)}
            for r in await svc().drift(days=days)
        ]

    @app.get("/agents/{agent}")
    async def get_agent(agent: str, _: str = Depends(require_admin)) -> dict[str, Any]:
        return out(await svc().store.get_agent(agent))

    @app.post("/agents/{agent}/status")
    async def set_status(agent: str, body: StatusIn, _: str = Depends(require_admin)) -> dict[str, Any]:
        return out(await svc().set_agent_status(agent, body.status))


def _keys_routes(app: FastAPI, ctx: _Ctx) -> None:
    svc, require_admin = ctx.svc, ctx.require_admin

    @app.post("/keys", status_code=201)
    async def create_key(body: KeyIn, _: str = Depends(require_admin)) -> dict[str, Any]:
        key, secret = await svc().create_key(
            body.name, team=body.team, user=body.user, agent=body.agent, allowed_models=body.allowed_models,
            expires_in=timedelta(days=body.expires_in_days) if body.expires_in_days else None,
            limits=body.limits.to_limits(),
        )
        return {**out(key), "key": secret}

    @app.get("/keys")
    async def list_keys(_: str = Depends(require_admin)) -> list[dict[str, Any]]:
        return [out(k) for k in await svc().store.list_keys()]

    @app.get("/keys/{key}")
    async def get_key(key: str, _: str = Depends(require_admin)) -> dict[str, Any]:
        return out(await svc().store.get_key(key))

    @app.delete("/keys/{key}")
    async def revoke_key(key: str, _: str = Depends(require_admin)) -> dict[str, Any]:
        return out(await svc().revoke_key(key))


def _grants_routes(app: FastAPI, ctx: _Ctx) -> None:
    svc, require_admin = ctx.svc, ctx.require_admin

    @app.post("/grants", status_code=201)
    async def request_grant(body: GrantIn, request: Request) -> dict[str, Any]:
        requested_by = _grant_requester(request, body.agent, ctx.admin_key, ctx.state())
        grant, token = await svc().request_grant(
            body.agent, models=body.models, tools=body.tools, max_spend_usd=body.max_spend_usd,
            max_requests=body.max_requests, purpose=body.purpose, minutes=body.minutes, requested_by=requested_by,
            approval_id=body.approval_id,
        )
        return {**out(grant), "token": token}

    @app.get("/grants")
    async def list_grants(_: str = Depends(require_admin), agent: str | None = None, active: bool = False) -> list[dict[str, Any]]:
        agent_id = (await svc().store.get_agent(agent)).id if agent else None
        return [out(g) for g in await svc().store.list_grants(agent_id=agent_id, active_only=active)]

    @app.delete("/grants/{grant}")
    async def revoke_grant(grant: str, _: str = Depends(require_admin)) -> dict[str, Any]:
        return out(await svc().revoke_grant(grant))


def _kill_switches_routes(app: FastAPI, ctx: _Ctx) -> None:
    svc, require_admin = ctx.svc, ctx.require_admin

    @app.post("/kill", status_code=201)
    async def set_kill(body: KillIn, actor: str = Depends(require_admin)) -> dict[str, Any]:
        return out(await svc().set_kill(body.scope, body.target, reason=body.reason, actor=actor))

    @app.get("/kill")
    async def list_kills(_: str = Depends(require_admin), all: bool = False) -> list[dict[str, Any]]:
        return [out(k) for k in await svc().store.list_kills(active_only=not all)]

    @app.delete("/kill/{switch}")
    async def lift_kill(switch: str, actor: str = Depends(require_admin)) -> dict[str, Any]:
        return out(await svc().lift_kill(switch, actor=actor))


def _policy_routes(app: FastAPI, ctx: _Ctx) -> None:
    svc, require_admin = ctx.svc, ctx.require_admin

    @app.post("/policy/test")
    async def policy_test(body: PolicyTestIn, _: str = Depends(require_admin)) -> dict[str, Any]:
        return await run_policy_test(
            ctx.policy(), svc().store, principal=body.principal, agent=body.agent, action=body.action,
            resource=body.resource, context=body.context,
        )


def _grant_requester(request: Request, agent: str, admin_key: str | None, state: AccessState) -> str:
    credential = credential_of(request)
    if not credential:
        raise AuthenticationFailed("Missing credentials: the admin key, or the agent's own key.")
    if admin_key is not None and hmac.compare_digest(credential.encode(), admin_key.encode()):
        return "admin"
    key = state.keys_by_hash.get(hash_secret(credential))
    if key is None or key.agent_id is None:
        raise AuthenticationFailed("Only the admin key or a key bound to the agent may request its grants.")
    bound = state.agents_by_id.get(key.agent_id)
    if bound is None or agent not in (bound.id, bound.name):
        raise PermissionDenied("A key may only request grants for the agent it is bound to.")
    return key.prefix

