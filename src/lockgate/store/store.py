"""`Store`: the access-control records in SQLite or PostgreSQL, behind one async API.

    store = await Store.open("sqlite:///lockgate.db")   # migrates, then serves
    team = await store.create_team("research")
    key, secret = await store.create_key("ci", team_id=team.id)
    snapshot = await store.load_snapshot()              # what a gateway holds in memory
    ...
    await store.aclose()

The methods live in one mixin per entity (`_teams`, `_agents`, `_keys`, `_kills`,
`_usage`); this module opens the database and reads the snapshot. Unknown ids raise
NotFound, bad input InvalidRequest, clashes (a taken name, a team still in use)
Conflict. Every change a snapshot can see adds one to the state version in the same
transaction; reads and the usage/last-seen/shadow-agent batches do not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Self

from sqlalchemy import or_, select

from lockgate.access.models import Agent, ApiKey, Grant, KillSwitch, Team, User
from lockgate.store._agents import AgentsMixin
from lockgate.store._approvals import ApprovalsMixin
from lockgate.store._audit import AuditMixin
from lockgate.store._base import Clock, utc_now
from lockgate.store._engine import WRITE_OPTION, backend_of, is_memory, make_async_engine
from lockgate.store._evals import EvalsMixin
from lockgate.store._keys import KeysMixin
from lockgate.store._kills import KillsMixin
from lockgate.store._mcp import McpMixin
from lockgate.store._prompts import PromptsMixin
from lockgate.store._records import (
    agent_from,
    grant_from,
    key_from,
    kill_from,
    team_from,
    user_from,
)
from lockgate.store._teams import TeamsMixin
from lockgate.store._usage import UsageMixin
from lockgate.store.migrations import upgrade_connection
from lockgate.store.tables import (
    agents,
    api_keys,
    grants,
    kill_switches,
    state_version,
    teams,
    users,
)

__all__ = ["Snapshot", "Store"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the data plane needs to admit a request, read in one transaction.

    `keys` and `grants` are those usable at `loaded_at` (not revoked, not expired);
    they can expire while the snapshot is held, so callers still check `expires_at`.
    `kill_switches` are the switches that are on. Agents include every status."""

    version: int
    loaded_at: datetime
    teams: tuple[Team, ...]
    users: tuple[User, ...]
    agents: tuple[Agent, ...]
    keys: tuple[ApiKey, ...]
    grants: tuple[Grant, ...]
    kill_switches: tuple[KillSwitch, ...]


class Store(TeamsMixin, AgentsMixin, KeysMixin, KillsMixin, UsageMixin, McpMixin, AuditMixin, EvalsMixin,
            PromptsMixin, ApprovalsMixin):
    @classmethod
    async def open(cls, url: str, *, clock: Clock = utc_now) -> Self:
        """Connect to `url` (sqlite:///path or postgresql://...), migrate it to the
        newest schema, and return the store. Close it with `aclose()`."""
        engine = make_async_engine(url)
        try:
            async with engine.connect() as conn:
                await conn.execution_options(**{WRITE_OPTION: True})
                async with conn.begin():
                    await conn.run_sync(upgrade_connection)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine, backend_of(engine.url), clock=clock, memory=is_memory(engine.url))

    async def aclose(self) -> None:
        await self._engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def current_version(self) -> int:
        """The state version: one cheap read, to learn whether a snapshot is stale."""
        async with self._read() as conn:
            version = await conn.scalar(select(state_version.c.version).where(state_version.c.id == 1))
        return int(version or 0)

    async def load_snapshot(self) -> Snapshot:
        now = self._now()
        k, g = api_keys.c, grants.c
        async with self._read() as conn:
            version = await conn.scalar(select(state_version.c.version).where(state_version.c.id == 1))
            team_rows = await conn.execute(select(teams).order_by(teams.c.id))
            user_rows = await conn.execute(select(users).order_by(users.c.id))
            agent_rows = await conn.execute(select(agents).order_by(agents.c.id))
            key_rows = await conn.execute(
                select(api_keys)
                .where(k.revoked_at.is_(None), or_(k.expires_at.is_(None), k.expires_at > now))
                .order_by(k.id)
            )
            grant_rows = await conn.execute(
                select(grants).where(g.revoked_at.is_(None), g.expires_at > now).order_by(g.id)
            )
            kill_rows = await conn.execute(
                select(kill_switches).where(kill_switches.c.lifted_at.is_(None)).order_by(kill_switches.c.id)
            )
            return Snapshot(
                version=int(version or 0),
                loaded_at=now,
                teams=tuple(map(team_from, team_rows)),
                users=tuple(map(user_from, user_rows)),
                agents=tuple(map(agent_from, agent_rows)),
                keys=tuple(map(key_from, key_rows)),
                grants=tuple(map(grant_from, grant_rows)),
                kill_switches=tuple(map(kill_from, kill_rows)),
            )
