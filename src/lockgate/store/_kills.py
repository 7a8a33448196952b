"""Kill switches: refuse traffic at once, per scope and target, until lifted."""

from __future__ import annotations

from typing import get_args

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from lockgate.access.models import KillScope, KillSwitch
from lockgate.core.ids import uuid7
from lockgate.errors import Conflict, InvalidRequest, NotFound
from lockgate.store import _validate as check
from lockgate.store._base import StoreBase
from lockgate.store._records import kill_from
from lockgate.store.tables import kill_switches

__all__ = ["KillsMixin"]

GLOBAL_TARGET = "*"


def _scope_and_target(scope: KillScope, target: str) -> tuple[KillScope, str]:
    if scope not in get_args(KillScope):
        raise InvalidRequest(f"scope must be one of {', '.join(get_args(KillScope))}.", param="scope")
    target = check.text(target, "target")
    if scope == "global" and target != GLOBAL_TARGET:
        raise InvalidRequest("The global kill switch has the target '*'.", param="target")
    return scope, target


class KillsMixin(StoreBase):
    async def set_kill(self, scope: KillScope, target: str, *, reason: str, actor: str) -> KillSwitch:
        """Throw a switch. If one is already on for this scope and target, it is
        returned unchanged (at most one is active per scope and target)."""
        scope, target = _scope_and_target(scope, target)
        kill = KillSwitch(
            id=uuid7(),
            scope=scope,
            target=target,
            reason=check.text(reason, "reason", max_len=check.MAX_TEXT),
            actor=check.text(actor, "actor"),
            created_at=self._now(),
        )
        t = kill_switches.c
        async with self._write() as conn:
            active = (
                await conn.execute(
                    select(kill_switches).where(
                        t.scope == scope, t.target == target, t.lifted_at.is_(None)
                    )
                )
            ).first()
            if active is not None:
                return kill_from(active)
            try:
                await conn.execute(
                    kill_switches.insert().values(
                        id=kill.id,
                        scope=kill.scope,
                        target=kill.target,
                        reason=kill.reason,
                        actor=kill.actor,
                        created_at=kill.created_at,
                    )
                )
            except IntegrityError:
                raise Conflict(f"A {scope} kill switch for {target!r} is already on.") from None
            await self._bump(conn)
        return kill

    async def lift_kill(self, kill: str | tuple[KillScope, str], *, actor: str) -> KillSwitch:
        """Lift a switch, named by its id or by (scope, target) while it is on.
        Lifting a lifted switch (by id) returns it unchanged."""
        actor = check.text(actor, "actor")
        t = kill_switches.c
        async with self._write() as conn:
            if isinstance(kill, str):
                row = await self._find(conn, kill_switches, kill, kind="kill switch")
            else:
                scope, target = _scope_and_target(*kill)
                row = (
                    await conn.execute(
                        select(kill_switches).where(
                            t.scope == scope, t.target == target, t.lifted_at.is_(None)
                        )
                    )
                ).first()
                if row is None:
                    raise NotFound(f"No active {scope} kill switch for {target!r}.")
            if row.lifted_at is not None:
                return kill_from(row)
            await conn.execute(
                update(kill_switches)
                .where(t.id == row.id)
                .values(lifted_at=self._now(), lifted_by=actor)
            )
            await self._bump(conn)
            return kill_from(await self._find(conn, kill_switches, row.id, kind="kill switch"))

    async def list_kills(self, *, active_only: bool = True) -> list[KillSwitch]:
        """Oldest first."""
        query = select(kill_switches).order_by(kill_switches.c.id)
        if active_only:
            query = query.where(kill_switches.c.lifted_at.is_(None))
        async with self._read() as conn:
            return [kill_from(r) for r in await conn.execute(query)]
