"""The identify stage: the caller's credential becomes a principal.

Credentials, in order: the admin key (the operator, unless
`access.admin_key_is_gateway_key = false`), a virtual key, a just-in-time grant token.
Keys and tokens are looked up by the SHA-256 of what was presented in the in-memory
state, so no database is touched and no comparison leaks timing about a stored secret.
Without an admin key configured the gateway is open: unknown credentials are
`anonymous`.

Agents: a key or grant bound to an agent acts as that agent; `x-lockgate-agent: NAME`
names the agent for an unbound key. A name the registry does not know is a shadow
agent: refused (403 `unknown_agent`) or flagged, per `access.shadow_agents`.
Delegation: `x-lockgate-delegation: user:alice,agent:planner` lists the hops before
the caller; each agent hop must be registered.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from lockgate.access.models import Agent, ApiKey, Grant
from lockgate.access.shadow import ShadowRecorder
from lockgate.access.state import AccessState, hash_secret
from lockgate.config.schema import AccessConfig
from lockgate.core.context import Principal, RequestContext
from lockgate.errors import AuthenticationFailed, PermissionDenied

__all__ = ["AGENT_HEADER", "DELEGATION_HEADER", "IdentifyStage", "UnknownAgent"]

AGENT_HEADER = "x-lockgate-agent"
DELEGATION_HEADER = "x-lockgate-delegation"


class UnknownAgent(PermissionDenied):
    code = "unknown_agent"


class IdentifyStage:
    name = "identify"

    def __init__(
        self,
        admin_key: str | None,
        *,
        state: Callable[[], AccessState],
        config: AccessConfig | None = None,
        shadows: ShadowRecorder | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._admin_key = admin_key.encode() if admin_key else None
        self._state = state
        self._config = config or AccessConfig()
        self._shadows = shadows
        self._clock = clock
        self._admin = Principal("admin", "operator", label="admin")
        self._anonymous = Principal("anonymous", "anonymous", label="anonymous")

    async def admit(self, ctx: RequestContext) -> None:
        if ctx.principal is not None:
            return  # identified earlier at the edge
        ctx.principal = self.identify(ctx)

    async def complete(self, ctx: RequestContext) -> None:
        return None

    def identify(self, ctx: RequestContext) -> Principal:
        credential = ctx.credential
        if (
            credential
            and self._admin_key is not None
            and self._config.admin_key_is_gateway_key
            and hmac.compare_digest(credential.encode(), self._admin_key)
        ):
            return self._with_agent(ctx, self._admin, None)
        state = self._state()
        if credential:
            digest = hash_secret(credential)
            key = state.keys_by_hash.get(digest)
            if key is not None:
                return self._from_key(ctx, state, key)
            grant = state.grants_by_hash.get(digest)
            if grant is not None:
                return self._from_grant(ctx, state, grant)
        if self._admin_key is None:
            return self._with_agent(ctx, self._anonymous, None)
        if not credential:
            raise AuthenticationFailed(
                "Missing credentials: send your key as 'Authorization: Bearer KEY' or 'x-api-key: KEY'."
            )
        raise AuthenticationFailed("Incorrect API key provided.")

    def _from_key(self, ctx: RequestContext, state: AccessState, key: ApiKey) -> Principal:
        if state.is_expired(key.expires_at, self._clock()):
            raise AuthenticationFailed(f"The API key {key.prefix}... has expired.")
        user = state.users.get(key.user_id) if key.user_id else None
        team_id = key.team_id or (user.team_id if user else None)
        agent = state.agents_by_id.get(key.agent_id) if key.agent_id else None
        if agent is not None and agent.team_id and not team_id:
            team_id = agent.team_id
        principal = Principal(
            key.id,
            "key",
            label=key.prefix,
            team_id=team_id,
            user_id=key.user_id,
            agent_id=agent.id if agent else None,
            agent_name=agent.name if agent else None,
        )
        ctx.attrs["key"] = key
        return self._with_agent(ctx, principal, agent)

    def _from_grant(self, ctx: RequestContext, state: AccessState, grant: Grant) -> Principal:
        if state.is_expired(grant.expires_at, self._clock()):
            raise AuthenticationFailed(f"The grant {grant.prefix}... has expired.")
        agent = state.agents_by_id.get(grant.agent_id)
        principal = Principal(
            grant.id,
            "grant",
            label=grant.prefix,
            team_id=agent.team_id if agent else None,
            agent_id=grant.agent_id,
            agent_name=agent.name if agent else None,
        )
        ctx.attrs["grant"] = grant
        return self._with_agent(ctx, principal, agent)

    def _with_agent(
        self, ctx: RequestContext, principal: Principal, bound: Agent | None
    ) -> Principal:
        headers: dict[str, str] = ctx.attrs.get("headers") or {}
        named: str | None = headers.get(AGENT_HEADER)
        state = self._state()
        if named:
            agent = state.agents_by_name.get(named) or state.agents_by_id.get(named)
            if agent is None:
                principal = self._shadow(ctx, principal, named)
            elif bound is not None and agent.id != bound.id:
                raise PermissionDenied(
                    f"This credential is bound to agent '{bound.name}', not '{named}'."
                )
            elif bound is None:
                principal = replace(
                    principal,
                    agent_id=agent.id,
                    agent_name=agent.name,
                    team_id=principal.team_id or agent.team_id,
                )
                if principal.kind == "operator":
                    principal.label = f"admin/{agent.name}"
        elif (
            self._config.require_agent
            and principal.agent_id is None
            and principal.kind not in ("operator", "anonymous")
        ):
            principal = self._shadow(ctx, principal, f"(unbound {principal.label})")
        delegation: str | None = headers.get(DELEGATION_HEADER)
        if delegation:
            principal.delegation = self._delegation(ctx, principal, delegation, state)
        return principal

    def _delegation(
        self, ctx: RequestContext, principal: Principal, header: str, state: AccessState
    ) -> tuple[str, ...]:
        hops = tuple(h.strip() for h in header.split(",") if h.strip())
        if len(hops) > 16:
            raise PermissionDenied("x-lockgate-delegation: at most 16 hops.")
        for hop in hops:
            kind, _, name = hop.partition(":")
            if kind not in ("user", "agent") or not name:
                raise PermissionDenied(
                    f"x-lockgate-delegation: hop {hop!r} must be 'user:NAME' or 'agent:NAME'."
                )
            if kind == "agent" and name not in state.agents_by_name:
                self._shadow(ctx, principal, name)
        return hops

    def _shadow(self, ctx: RequestContext, principal: Principal, name: str) -> Principal:
        if self._shadows is not None:
            self._shadows.saw(name, principal.label, self._clock())
        if self._config.shadow_agents == "refuse":
            raise UnknownAgent(
                f"Agent '{name}' is not registered with lockgate (shadow agent). "
                "Register it with `lockgate agents register`."
            )
        return replace(principal, shadow_agent=name)
