"""Control-plane operations on principals, grants and kill switches.

The admin API and the CLI both call these; each change lands in the store (which
bumps the control-plane version in the same transaction) and is then announced on
Redis when configured, so every gateway process refreshes at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast, get_args

from lockgate.access.models import (
    Agent,
    ApiKey,
    Grant,
    KillScope,
    KillSwitch,
    Limits,
    RiskTier,
    Team,
    User,
)
from lockgate.config.schema import AccessConfig
from lockgate.errors import InvalidRequest, PermissionDenied

if TYPE_CHECKING:
    from lockgate.audit.recorder import AuditRecorder
    from lockgate.oversight.queue import Oversight
    from lockgate.store.store import Store

__all__ = ["AccessService", "AgentActivity", "DriftReport", "Notifier"]

NO_LIMITS = Limits()  # frozen: a safe default


class Notifier:
    """Announces control-plane changes on Redis (`lockgate:state`); a no-op without it."""

    def __init__(self, redis_url: str | None) -> None:
        self._url = redis_url

    async def publish(self) -> None:
        if not self._url:
            return
        import redis.asyncio as aioredis

        from lockgate.access.watcher import CHANNEL

        client = aioredis.from_url(self._url)
        try:
            await client.publish(CHANNEL, "changed")
        except Exception:
            pass
        finally:
            await client.aclose()


@dataclass(frozen=True, slots=True)
class AgentActivity:
    agent: Agent
    requests: int
    tokens: int
    spend_usd: float
    last_day: date | None


@dataclass(frozen=True, slots=True)
class DriftReport:
    agent: str
    granted_beyond_baseline: tuple[str, ...]  # models/tools granted that the baseline lacks
    unused: tuple[str, ...]  # baseline or granted permissions not used in the window
    used: tuple[str, ...]
    flagged: bool


class AccessService:
    def __init__(
        self,
        store: Store,
        config: AccessConfig,
        *,
        notifier: Notifier,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        known_models: Iterable[str] | None = None,
        known_providers: Iterable[str] | None = None,
    ) -> None:
        self.store = store
        self._config = config
        self._notifier = notifier
        self._clock = clock
        self._known_models = set(known_models) if known_models is not None else None
        self._known_providers = set(known_providers) if known_providers is not None else None
        self.audit: AuditRecorder | None = None  # set when the ledger is on: every change is an event
        self.oversight: Oversight | None = None  # set by the gateway: grants beyond a baseline wait for a human

    async def _changed(self, type: str, obj: str, *, actor: str = "admin", reason: str | None = None, **data: Any) -> None:
        """Tell every gateway (state version / pub-sub) and put the change in the ledger."""
        await self._notifier.publish()
        if self.audit is not None:
            await self.audit.record(
                type, actor={"kind": "operator", "principal": actor}, target={"object": obj}, reason=reason,
                data=data or None,
            )

    # --- teams and users -------------------------------------------------------------

    async def create_team(
        self, name: str, *, limits: Limits, allowed_models: Iterable[str] = ()
    ) -> Team:
        models = tuple(allowed_models)
        self._check_models(models, param="allowed_models")
        team = await self.store.create_team(name, limits=limits, allowed_models=models)
        await self._changed("admin.change", f"team:{team.name}", action="team.create")
        return team

    async def create_user(self, name: str, *, team: str | None, limits: Limits) -> User:
        team_id = (await self.store.get_team(team)).id if team else None
        user = await self.store.create_user(name, team_id=team_id, limits=limits)
        await self._changed("admin.change", f"user:{user.name}", action="user.create")
        return user

    # --- agents ----------------------------------------------------------------------

    async def register_agent(
        self,
        name: str,
        *,
        owner: str,
        purpose: str,
        risk_tier: str,
        team: str | None = None,
        allowed_models: Iterable[str] = (),
        allowed_tools: Iterable[str] = (),
        limits: Limits = NO_LIMITS,
    ) -> Agent:
        if risk_tier not in get_args(RiskTier):
            raise InvalidRequest(
                f"risk_tier must be one of {', '.join(get_args(RiskTier))}.", param="risk_tier"
            )
        models = tuple(allowed_models)
        self._check_models(models, param="allowed_models")
        team_id = (await self.store.get_team(team)).id if team else None
        agent = await self.store.register_agent(
            name,
            owner=owner,
            purpose=purpose,
            risk_tier=risk_tier,  # type: ignore[arg-type]
            team_id=team_id,
            allowed_models=models,
            allowed_tools=allowed_tools,
            limits=limits,
        )
        await self._changed("admin.change", f"agent:{agent.name}", action="agent.register", risk_tier=risk_tier)
        return agent

    async def set_agent_status(self, agent: str, status: str) -> Agent:
        if status not in ("active", "suspended", "decommissioned"):
            raise InvalidRequest(
                "status must be active, suspended or decommissioned.", param="status"
            )
        found = await self.store.get_agent(agent)
        updated = await self.store.set_agent_status(found.id, status)  # type: ignore[arg-type]
        await self._changed("admin.change", f"agent:{updated.name}", action="agent.status", status=status)
        return updated

    async def inventory(self) -> list[AgentActivity]:
        out: list[AgentActivity] = []
        for agent in await self.store.list_agents():
            s = await self.store.usage_summary("agent", agent.id)
            out.append(AgentActivity(agent, s.requests, s.tokens, s.cost_usd, s.last_day))
        return out

    # --- keys and grants -------------------------------------------------------------

    async def create_key(
        self,
        name: str,
        *,
        team: str | None = None,
        user: str | None = None,
        agent: str | None = None,
        allowed_models: Iterable[str] = (),
        expires_in: timedelta | None = None,
        limits: Limits = NO_LIMITS,
    ) -> tuple[ApiKey, str]:
        models = tuple(allowed_models)
        self._check_models(models, param="allowed_models")
        key, secret = await self.store.create_key(
            name,
            team_id=(await self.store.get_team(team)).id if team else None,
            user_id=(await self.store.get_user(user)).id if user else None,
            agent_id=(await self.store.get_agent(agent)).id if agent else None,
            allowed_models=models,
            expires_at=self._clock() + expires_in if expires_in is not None else None,
            limits=limits,
        )
        await self._changed("admin.change", f"key:{key.prefix}", action="key.create")
        return key, secret

    async def revoke_key(self, key: str) -> ApiKey:
        found = await self.store.get_key(key)
        revoked = await self.store.revoke_key(found.id)
        await self._changed("admin.change", f"key:{revoked.prefix}", action="key.revoke")
        return revoked

    async def request_grant(
        self,
        agent: str,
        *,
        models: Iterable[str] = (),
        tools: Iterable[str] = (),
        max_spend_usd: float | None = None,
        max_requests: int | None = None,
        purpose: str,
        minutes: float | None = None,
        requested_by: str,
        approval_id: str | None = None,
    ) -> tuple[Grant, str]:
        """A short-lived token for `agent`, within its registered baseline (a grant beyond
        the baseline is held for a human: 202 with an approval id; once approved, the same
        request with `approval_id` gets the grant)."""
        found = await self.store.get_agent(agent)
        if found.status != "active":
            raise PermissionDenied(
                f"Agent '{found.name}' is {found.status}; it cannot receive grants."
            )
        models_t, tools_t = tuple(models), tuple(tools)
        self._check_models(models_t)
        beyond = sorted(set(models_t) - set(found.allowed_models)) + sorted(
            f"tool:{t}" for t in set(tools_t) - set(found.allowed_tools)
        )
        if beyond:
            await self._approve_grant(
                found, beyond, approval_id=approval_id, requested_by=requested_by, purpose=purpose,
                asked={"models": sorted(models_t), "tools": sorted(tools_t), "minutes": minutes,
                       "max_spend_usd": max_spend_usd, "max_requests": max_requests},
            )
        minutes = self._config.grant_default_minutes if minutes is None else minutes
        if not minutes > 0:  # NaN too
            raise InvalidRequest("minutes must be positive.", param="minutes")
        if not minutes <= self._config.grant_max_minutes:
            raise InvalidRequest(
                f"A grant lives at most {self._config.grant_max_minutes:g} minutes (access.grant_max_minutes).",
                param="minutes",
            )
        grant, token = await self.store.create_grant(
            found.id,
            models=models_t,
            tools=tools_t,
            max_spend_usd=max_spend_usd,
            max_requests=max_requests,
            purpose=purpose,
            lifetime=timedelta(minutes=minutes),
            requested_by=requested_by,
        )
        await self._changed("grant.created", f"agent:{found.name}", actor=requested_by, reason=purpose, grant=grant.id, models=list(models_t), tools=list(tools_t))
        return grant, token

    async def _approve_grant(
        self, agent: Agent, beyond: list[str], *, approval_id: str | None, requested_by: str, purpose: str,
        asked: dict[str, Any],
    ) -> None:
        if self.oversight is None:
            raise PermissionDenied(
                f"A grant beyond agent '{agent.name}''s baseline needs approval: {', '.join(beyond)}."
            )
        import hashlib
        import json

        digest = hashlib.sha256(json.dumps({"agent": agent.id, **asked}, sort_keys=True).encode()).hexdigest()
        if approval_id is not None:
            await self.oversight.consume(approval_id, principal=None, request_hash=digest)
            return
        from lockgate.core.ids import uuid7

        await self.oversight.hold(
            kind="grant", actor=None, request_id=uuid7(),
            reason=f"grant beyond agent '{agent.name}''s baseline: {', '.join(beyond)}",
            summary={"agent": agent.name, "requested_by": requested_by, "purpose": purpose, **asked},
            evidence={"baseline_models": list(agent.allowed_models), "baseline_tools": list(agent.allowed_tools),
                      "beyond": beyond, "risk_tier": agent.risk_tier},
            wait=False, request_hash=digest,
        )

    async def revoke_grant(self, grant: str) -> Grant:
        found = await self.store.get_grant(grant)
        revoked = await self.store.revoke_grant(found.id)
        await self._changed("grant.revoked", f"grant:{revoked.id}")
        return revoked

    # --- kill switches ---------------------------------------------------------------

    async def resolve_target(self, scope: str, target: str) -> str:
        if scope not in get_args(KillScope):
            raise InvalidRequest(
                f"scope must be one of {', '.join(get_args(KillScope))}.", param="scope"
            )
        if scope == "global":
            return "*"
        if not target:
            raise InvalidRequest("target is required.", param="target")
        resolvers = {
            "team": self.store.get_team,
            "user": self.store.get_user,
            "agent": self.store.get_agent,
            "key": self.store.get_key,
        }
        resolve = resolvers.get(scope)
        if resolve is not None:
            return (await resolve(target)).id
        if scope == "model":
            self._check_models((target,), param="target")
        if scope == "provider" and self._known_providers is not None and target not in self._known_providers:
            raise InvalidRequest(f"Unknown provider: {target}.", param="target")
        return target

    async def set_kill(self, scope: str, target: str, *, reason: str, actor: str) -> KillSwitch:
        if not reason.strip():
            raise InvalidRequest("A kill switch needs a reason.", param="reason")
        resolved = await self.resolve_target(scope, target)
        switch = await self.store.set_kill(scope, resolved, reason=reason, actor=actor)  # type: ignore[arg-type]
        await self._changed("kill.set", f"{scope}:{target}", actor=actor, reason=reason, switch=switch.id)
        return switch

    async def lift_kill(self, switch: str, *, actor: str, target: str | None = None) -> KillSwitch:
        """Lift by switch id, or by scope and target."""
        if target is not None:
            scope = cast("KillScope", switch)
            lifted = await self.store.lift_kill((scope, await self.resolve_target(switch, target)), actor=actor)
        else:
            lifted = await self.store.lift_kill(switch, actor=actor)
        await self._changed("kill.lifted", f"{lifted.scope}:{lifted.target}", actor=actor, switch=lifted.id)
        return lifted

    # --- drift -----------------------------------------------------------------------

    async def drift(self, *, days: int = 30) -> list[DriftReport]:
        since = (self._clock() - timedelta(days=days)).date()
        reports: list[DriftReport] = []
        grants = await self.store.list_grants()
        for agent in await self.store.list_agents():
            if agent.status == "decommissioned":
                continue
            granted = {f"model:{m}" for g in grants if g.agent_id == agent.id for m in g.models}
            granted |= {f"tool:{t}" for g in grants if g.agent_id == agent.id for t in g.tools}
            baseline = {f"model:{m}" for m in agent.allowed_models} | {
                f"tool:{t}" for t in agent.allowed_tools
            }
            used = set(await self.store.permissions_used(agent.id, since_day=since))
            beyond = tuple(sorted(granted - baseline))
            unused = tuple(sorted((baseline | granted) - used))
            reports.append(
                DriftReport(agent.name, beyond, unused, tuple(sorted(used)), bool(beyond or unused))
            )
        return reports

    def _check_models(self, models: Iterable[str], *, param: str = "models") -> None:
        if self._known_models is None:
            return
        unknown = sorted(set(models) - self._known_models)
        if unknown:
            raise InvalidRequest(f"Unknown model(s): {', '.join(unknown)}.", param=param)
