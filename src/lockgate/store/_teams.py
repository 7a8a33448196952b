"""Teams and users."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from lockgate.access.models import Limits, Team, User
from lockgate.core.ids import uuid7
from lockgate.errors import Conflict
from lockgate.store import _validate as check
from lockgate.store._base import NO_LIMITS, StoreBase
from lockgate.store._records import limits_values, team_from, user_from
from lockgate.store.tables import agents, api_keys, teams, users

__all__ = ["TeamsMixin"]


class TeamsMixin(StoreBase):
    async def create_team(
        self, name: str, *, limits: Limits = NO_LIMITS, allowed_models: Iterable[str] = ()
    ) -> Team:
        team = Team(
            id=uuid7(),
            name=check.text(name, "name"),
            created_at=self._now(),
            limits=check.limits(limits),
            allowed_models=check.names(allowed_models, "allowed_models"),
        )
        async with self._write() as conn:
            try:
                await conn.execute(
                    teams.insert().values(
                        id=team.id,
                        name=team.name,
                        created_at=team.created_at,
                        allowed_models=team.allowed_models,
                        **limits_values(team.limits),
                    )
                )
            except IntegrityError:
                raise Conflict(f"A team named {team.name!r} already exists.") from None
            await self._bump(conn)
        return team

    async def get_team(self, id_or_name: str) -> Team:
        async with self._read() as conn:
            return team_from(await self._find(conn, teams, id_or_name, kind="team", alt="name"))

    async def list_teams(self) -> list[Team]:
        async with self._read() as conn:
            rows = await conn.execute(select(teams).order_by(teams.c.name))
            return [team_from(r) for r in rows]

    async def update_team(
        self,
        team_id: str,
        *,
        name: str | None = None,
        limits: Limits | None = None,
        allowed_models: Iterable[str] | None = None,
    ) -> Team:
        """Change the given fields (None: keep); `Limits()` clears every limit and
        `allowed_models=()` allows any model."""
        values: dict[str, Any] = {}
        if name is not None:
            values["name"] = check.text(name, "name")
        if limits is not None:
            values.update(limits_values(check.limits(limits)))
        if allowed_models is not None:
            values["allowed_models"] = check.names(allowed_models, "allowed_models")
        async with self._write() as conn:
            await self._find(conn, teams, team_id, kind="team")
            if values:
                try:
                    await conn.execute(update(teams).where(teams.c.id == team_id).values(**values))
                except IntegrityError:
                    raise Conflict(f"A team named {values['name']!r} already exists.") from None
                await self._bump(conn)
            return team_from(await self._find(conn, teams, team_id, kind="team"))

    async def delete_team(self, team_id: str) -> None:
        """Delete a team that nothing references; Conflict names what still does."""
        async with self._write() as conn:
            team = await self._find(conn, teams, team_id, kind="team")
            in_use: list[str] = []
            for table, what in ((users, "user"), (agents, "agent"), (api_keys, "key")):
                n = await conn.scalar(
                    select(func.count()).select_from(table).where(table.c.team_id == team_id)
                )
                if n:
                    in_use.append(f"{n} {what}{'s' if n != 1 else ''}")
            if in_use:
                raise Conflict(
                    f"Team {team.name!r} is still referenced by {', '.join(in_use)}; "
                    "move or delete them first."
                )
            await conn.execute(teams.delete().where(teams.c.id == team_id))
            await self._bump(conn)

    async def create_user(
        self, name: str, *, team_id: str | None = None, limits: Limits = NO_LIMITS
    ) -> User:
        user = User(
            id=uuid7(),
            name=check.text(name, "name"),
            created_at=self._now(),
            team_id=team_id,
            limits=check.limits(limits),
        )
        async with self._write() as conn:
            await self._exists(conn, teams, team_id, kind="team")
            try:
                await conn.execute(
                    users.insert().values(
                        id=user.id,
                        name=user.name,
                        created_at=user.created_at,
                        team_id=user.team_id,
                        **limits_values(user.limits),
                    )
                )
            except IntegrityError:
                raise Conflict(f"A user named {user.name!r} already exists.") from None
            await self._bump(conn)
        return user

    async def get_user(self, id_or_name: str) -> User:
        async with self._read() as conn:
            return user_from(await self._find(conn, users, id_or_name, kind="user", alt="name"))

    async def list_users(self, *, team_id: str | None = None) -> list[User]:
        query = select(users).order_by(users.c.name)
        if team_id is not None:
            query = query.where(users.c.team_id == team_id)
        async with self._read() as conn:
            return [user_from(r) for r in await conn.execute(query)]
