"""Virtual keys and just-in-time grants: the two kinds of bearer credential.

The secret is returned once, by the create method; the store keeps its visible
prefix and its SHA-256.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from lockgate.access.models import AgentStatus, ApiKey, Grant, Limits
from lockgate.core.ids import uuid7
from lockgate.errors import Conflict, InvalidRequest
from lockgate.store import _validate as check
from lockgate.store._base import NO_LIMITS, StoreBase
from lockgate.store._records import agent_from, grant_from, key_from, limits_values
from lockgate.store._secrets import KEY_MARKER, TOKEN_MARKER, mint
from lockgate.store.tables import agents, api_keys, grants, teams, users
from lockgate.store.types import UTCDateTime

__all__ = ["KeysMixin"]


class KeysMixin(StoreBase):
    async def create_key(
        self,
        name: str,
        *,
        team_id: str | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        allowed_models: Iterable[str] = (),
        expires_at: datetime | None = None,
        limits: Limits = NO_LIMITS,
    ) -> tuple[ApiKey, str]:
        """A new key and its secret ("lg-" and 40 URL-safe characters), shown only now."""
        now = self._now()
        if expires_at is not None and check.aware(expires_at, "expires_at") <= now:
            raise InvalidRequest("expires_at must be in the future.", param="expires_at")
        secret, prefix, digest = mint(KEY_MARKER)
        key = ApiKey(
            id=uuid7(),
            name=check.text(name, "name"),
            prefix=prefix,
            key_hash=digest,
            created_at=now,
            team_id=team_id,
            user_id=user_id,
            agent_id=agent_id,
            allowed_models=check.names(allowed_models, "allowed_models"),
            expires_at=None if expires_at is None else check.aware(expires_at, "expires_at"),
            limits=check.limits(limits),
        )
        async with self._write() as conn:
            await self._exists(conn, teams, team_id, kind="team")
            await self._exists(conn, users, user_id, kind="user")
            if agent_id is not None:  # a suspended agent may get a key; a retired one not
                await self._usable_agent(conn, agent_id, refuse=("decommissioned",))
            try:
                await conn.execute(
                    api_keys.insert().values(
                        id=key.id,
                        name=key.name,
                        prefix=key.prefix,
                        key_hash=key.key_hash,
                        created_at=key.created_at,
                        team_id=key.team_id,
                        user_id=key.user_id,
                        agent_id=key.agent_id,
                        allowed_models=key.allowed_models,
                        expires_at=key.expires_at,
                        **limits_values(key.limits),
                    )
                )
            except IntegrityError:  # 2**-48 per pair: a prefix collision
                raise Conflict("The new key collided with an existing one; try again.") from None
            await self._bump(conn)
        return key, secret

    async def get_key(self, id_or_prefix: str) -> ApiKey:
        async with self._read() as conn:
            return key_from(await self._find(conn, api_keys, id_or_prefix, kind="key", alt="prefix"))

    async def list_keys(self, *, team_id: str | None = None) -> list[ApiKey]:
        """Every key, revoked and expired ones too, oldest first."""
        query = select(api_keys).order_by(api_keys.c.id)
        if team_id is not None:
            query = query.where(api_keys.c.team_id == team_id)
        async with self._read() as conn:
            return [key_from(r) for r in await conn.execute(query)]

    async def revoke_key(self, key_id: str) -> ApiKey:
        """Revoke a key at once; revoking a revoked key changes nothing."""
        async with self._write() as conn:
            key = key_from(await self._find(conn, api_keys, key_id, kind="key"))
            if key.revoked_at is not None:
                return key
            await conn.execute(
                update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=self._now())
            )
            await self._bump(conn)
            return key_from(await self._find(conn, api_keys, key_id, kind="key"))

    async def touch_keys_last_used(self, used: Mapping[str, datetime]) -> None:
        """Record when keys were last used (unknown ids are ignored). Times only move
        forward. Not a snapshot change: the version stays."""
        params = [{"b_id": k, "b_at": check.aware(at, "last_used_at")} for k, at in used.items()]
        if not params:
            return
        at = bindparam("b_at", type_=UTCDateTime())
        stmt = (
            update(api_keys)
            .where(
                api_keys.c.id == bindparam("b_id"),
                or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at < at),
            )
            .values(last_used_at=at)
        )
        async with self._write(control=False) as conn:
            await conn.execute(stmt, params)

    async def create_grant(
        self,
        agent_id: str,
        *,
        models: Iterable[str] = (),
        tools: Iterable[str] = (),
        max_spend_usd: float | None = None,
        max_requests: int | None = None,
        purpose: str,
        lifetime: timedelta,
        requested_by: str,
    ) -> tuple[Grant, str]:
        """A grant for an active agent and its token ("lgt-" and 40 URL-safe
        characters), shown only now. It expires `lifetime` from now."""
        if lifetime <= timedelta(0):
            raise InvalidRequest("lifetime must be positive.", param="lifetime")
        models_t, tools_t = check.names(models, "models"), check.names(tools, "tools")
        if not models_t and not tools_t:
            raise InvalidRequest("A grant must name at least one model or tool.", param="models")
        now = self._now()
        token, prefix, digest = mint(TOKEN_MARKER)
        grant = Grant(
            id=uuid7(),
            agent_id=agent_id,
            prefix=prefix,
            token_hash=digest,
            purpose=check.text(purpose, "purpose", max_len=check.MAX_TEXT),
            created_at=now,
            expires_at=now + lifetime,
            requested_by=check.text(requested_by, "requested_by"),
            models=models_t,
            tools=tools_t,
            max_spend_usd=check.money(max_spend_usd, "max_spend_usd"),
            max_requests=check.count(max_requests, "max_requests", maximum=check.MAX_INT),
        )
        async with self._write() as conn:
            await self._usable_agent(conn, agent_id, refuse=("suspended", "decommissioned"))
            try:
                await conn.execute(
                    grants.insert().values(
                        id=grant.id,
                        agent_id=grant.agent_id,
                        prefix=grant.prefix,
                        token_hash=grant.token_hash,
                        purpose=grant.purpose,
                        created_at=grant.created_at,
                        expires_at=grant.expires_at,
                        requested_by=grant.requested_by,
                        models=grant.models,
                        tools=grant.tools,
                        max_spend_usd=grant.max_spend_usd,
                        max_requests=grant.max_requests,
                    )
                )
            except IntegrityError:
                raise Conflict("The new grant token collided with an existing one; try again.") from None
            await self._bump(conn)
        return grant, token

    async def get_grant(self, id_or_prefix: str) -> Grant:
        async with self._read() as conn:
            return grant_from(await self._find(conn, grants, id_or_prefix, kind="grant", alt="prefix"))

    async def list_grants(self, *, agent_id: str | None = None, active_only: bool = False) -> list[Grant]:
        """Oldest first; `active_only`: neither revoked nor expired now."""
        query = select(grants).order_by(grants.c.id)
        if agent_id is not None:
            query = query.where(grants.c.agent_id == agent_id)
        if active_only:
            query = query.where(grants.c.revoked_at.is_(None), grants.c.expires_at > self._now())
        async with self._read() as conn:
            return [grant_from(r) for r in await conn.execute(query)]

    async def revoke_grant(self, grant_id: str) -> Grant:
        """Revoke a grant at once; revoking a revoked grant changes nothing."""
        async with self._write() as conn:
            grant = grant_from(await self._find(conn, grants, grant_id, kind="grant"))
            if grant.revoked_at is not None:
                return grant
            await conn.execute(
                update(grants).where(grants.c.id == grant_id).values(revoked_at=self._now())
            )
            await self._bump(conn)
            return grant_from(await self._find(conn, grants, grant_id, kind="grant"))

    async def _usable_agent(
        self, conn: AsyncConnection, agent_id: str, *, refuse: tuple[AgentStatus, ...]
    ) -> None:
        agent = agent_from(await self._find(conn, agents, agent_id, kind="agent"))
        if agent.status in refuse:
            raise Conflict(f"Agent {agent.name!r} is {agent.status}.")
