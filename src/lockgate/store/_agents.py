"""Agents (the registry) and shadow agents (names seen in traffic, not registered)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import NamedTuple, get_args

from sqlalchemy import and_, bindparam, case, or_, select, update
from sqlalchemy.exc import IntegrityError

from lockgate.access.models import Agent, AgentStatus, Limits, RiskTier, ShadowAgent
from lockgate.core.ids import uuid7
from lockgate.errors import Conflict, InvalidRequest
from lockgate.store import _validate as check
from lockgate.store._base import NO_LIMITS, StoreBase
from lockgate.store._records import agent_from, limits_values, shadow_from
from lockgate.store.tables import agents, api_keys, grants, shadow_agents, teams
from lockgate.store.types import UTCDateTime

__all__ = ["AgentsMixin", "ShadowSighting"]


class ShadowSighting(NamedTuple):
    """`requests` requests named the unregistered agent `name`, the last at `seen_at`."""

    name: str
    seen_at: datetime
    requests: int
    key_prefix: str | None = None


class AgentsMixin(StoreBase):
    async def register_agent(
        self,
        name: str,
        *,
        owner: str,
        purpose: str,
        risk_tier: RiskTier,
        team_id: str | None = None,
        allowed_models: Iterable[str] = (),
        allowed_tools: Iterable[str] = (),
        limits: Limits = NO_LIMITS,
    ) -> Agent:
        if risk_tier not in get_args(RiskTier):
            raise InvalidRequest(
                f"risk_tier must be one of {', '.join(get_args(RiskTier))}.", param="risk_tier"
            )
        agent = Agent(
            id=uuid7(),
            name=check.text(name, "name"),
            owner=check.text(owner, "owner"),
            purpose=check.text(purpose, "purpose", max_len=check.MAX_TEXT),
            risk_tier=risk_tier,
            status="active",
            created_at=self._now(),
            team_id=team_id,
            allowed_models=check.names(allowed_models, "allowed_models"),
            allowed_tools=check.names(allowed_tools, "allowed_tools"),
            limits=check.limits(limits),
        )
        async with self._write() as conn:
            await self._exists(conn, teams, team_id, kind="team")
            try:
                await conn.execute(
                    agents.insert().values(
                        id=agent.id,
                        name=agent.name,
                        owner=agent.owner,
                        purpose=agent.purpose,
                        risk_tier=agent.risk_tier,
                        status=agent.status,
                        created_at=agent.created_at,
                        team_id=agent.team_id,
                        allowed_models=agent.allowed_models,
                        allowed_tools=agent.allowed_tools,
                        **limits_values(agent.limits),
                    )
                )
            except IntegrityError:
                raise Conflict(f"An agent named {agent.name!r} already exists.") from None
            await self._bump(conn)
        return agent

    async def get_agent(self, id_or_name: str) -> Agent:
        async with self._read() as conn:
            return agent_from(await self._find(conn, agents, id_or_name, kind="agent", alt="name"))

    async def list_agents(self, *, team_id: str | None = None) -> list[Agent]:
        query = select(agents).order_by(agents.c.name)
        if team_id is not None:
            query = query.where(agents.c.team_id == team_id)
        async with self._read() as conn:
            return [agent_from(r) for r in await conn.execute(query)]

    async def set_agent_status(self, agent_id: str, status: AgentStatus) -> Agent:
        """Suspend, reactivate or decommission an agent. Decommissioning is final and
        revokes the agent's keys and grants in the same transaction."""
        if status not in get_args(AgentStatus):
            raise InvalidRequest(
                f"status must be one of {', '.join(get_args(AgentStatus))}.", param="status"
            )
        async with self._write() as conn:
            current = agent_from(await self._find(conn, agents, agent_id, kind="agent"))
            if current.status == status:
                return current
            if current.status == "decommissioned":
                raise Conflict(f"Agent {current.name!r} is decommissioned; register a new agent.")
            await conn.execute(update(agents).where(agents.c.id == agent_id).values(status=status))
            if status == "decommissioned":
                now = self._now()
                for table in (api_keys, grants):
                    await conn.execute(
                        update(table)
                        .where(table.c.agent_id == agent_id, table.c.revoked_at.is_(None))
                        .values(revoked_at=now)
                    )
            await self._bump(conn)
            return agent_from(await self._find(conn, agents, agent_id, kind="agent"))

    async def touch_agents_last_seen(self, seen: Mapping[str, datetime]) -> None:
        """Record when agents were last seen (ids unknown to the store are ignored).
        Times only move forward. Not a snapshot change: the version stays."""
        params = [
            {"b_id": agent_id, "b_at": check.aware(at, "last_seen_at")} for agent_id, at in seen.items()
        ]
        if not params:
            return
        at = bindparam("b_at", type_=UTCDateTime())
        stmt = (
            update(agents)
            .where(
                agents.c.id == bindparam("b_id"),
                or_(agents.c.last_seen_at.is_(None), agents.c.last_seen_at < at),
            )
            .values(last_seen_at=at)
        )
        async with self._write(control=False) as conn:
            await conn.execute(stmt, params)

    async def record_shadow_agents(self, sightings: Iterable[tuple[str, datetime, int, str | None]]) -> None:
        """Add sightings of unregistered agent names (see `ShadowSighting`): counts add
        up, the first sighting is kept, the last moves forward with its key prefix."""
        merged: dict[str, ShadowAgent] = {}
        for raw in sightings:
            s = ShadowSighting(*raw)
            name = check.text(s.name, "name")
            at = check.aware(s.seen_at, "seen_at")
            n = check.count(s.requests, "requests") or 0
            old = merged.get(name)
            if old is None:
                merged[name] = ShadowAgent(name, at, at, n, s.key_prefix)
            else:
                newer = at >= old.last_seen
                merged[name] = ShadowAgent(
                    name,
                    min(old.first_seen, at),
                    max(old.last_seen, at),
                    old.count + n,
                    (s.key_prefix or old.last_key_prefix) if newer else old.last_key_prefix,
                )
        if not merged:
            return
        ins = self._upsert(shadow_agents)
        new, t = ins.excluded, shadow_agents.c
        stmt = ins.on_conflict_do_update(
            index_elements=[t.name],
            set_={
                "first_seen": case((new.first_seen < t.first_seen, new.first_seen), else_=t.first_seen),
                "last_seen": case((new.last_seen > t.last_seen, new.last_seen), else_=t.last_seen),
                "requests": t.requests + new.requests,
                "last_key_prefix": case(
                    (
                        and_(new.last_seen >= t.last_seen, new.last_key_prefix.is_not(None)),
                        new.last_key_prefix,
                    ),
                    else_=t.last_key_prefix,
                ),
            },
        )
        rows = [
            {
                "name": a.name,
                "first_seen": a.first_seen,
                "last_seen": a.last_seen,
                "requests": a.count,
                "last_key_prefix": a.last_key_prefix,
            }
            for a in merged.values()
        ]
        async with self._write(control=False) as conn:
            await conn.execute(stmt, rows)

    async def list_shadow_agents(self) -> list[ShadowAgent]:
        """Most recently seen first."""
        query = select(shadow_agents).order_by(shadow_agents.c.last_seen.desc(), shadow_agents.c.name)
        async with self._read() as conn:
            return [shadow_from(r) for r in await conn.execute(query)]
