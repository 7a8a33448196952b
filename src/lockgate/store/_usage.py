"""Usage rollups: requests, tokens and cost per principal and UTC day; and which
permissions ("model:NAME", "tool:NAME") each agent used per day.

The recorder adds batches (`add_usage`, `add_permission_use`); budgets, reports and
drift reviews read sums (`usage_summary`, `permissions_used`). A grant's lifetime
spend is its rows summed (entity_kind "grant").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Literal, get_args

from sqlalchemy import func, select

from lockgate.errors import InvalidRequest
from lockgate.store import _validate as check
from lockgate.store._base import StoreBase
from lockgate.store.tables import permission_use, usage_rollups

__all__ = ["EntityKind", "UsageMixin", "UsageRow", "UsageSummary"]

EntityKind = Literal["team", "user", "agent", "key", "grant"]


@dataclass(frozen=True, slots=True)
class UsageRow:
    """Usage to add to one principal's day."""

    entity_kind: EntityKind
    entity_id: str
    day: date  # UTC
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class UsageSummary:
    """Sums over a principal's days; `last_day` is the latest day with usage."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    last_day: date | None = None

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def _kind(kind: str) -> EntityKind:
    for known in get_args(EntityKind):
        if kind == known:
            return known
    raise InvalidRequest(f"entity_kind must be one of {', '.join(get_args(EntityKind))}.", param="entity_kind")


def _day(day: date, field: str) -> date:
    if isinstance(day, datetime):  # a datetime is a date too: take its UTC day
        return check.aware(day, field).date()
    return day


def _checked(row: UsageRow) -> UsageRow:
    return UsageRow(
        entity_kind=_kind(row.entity_kind),
        entity_id=check.text(row.entity_id, "entity_id"),
        day=_day(row.day, "day"),
        requests=check.count(row.requests, "requests") or 0,
        input_tokens=check.count(row.input_tokens, "input_tokens") or 0,
        output_tokens=check.count(row.output_tokens, "output_tokens") or 0,
        cost_usd=check.money(row.cost_usd, "cost_usd") or 0.0,
    )


def _added(a: UsageRow, b: UsageRow) -> UsageRow:
    return replace(
        a,
        requests=a.requests + b.requests,
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        cost_usd=a.cost_usd + b.cost_usd,
    )


class UsageMixin(StoreBase):
    async def add_usage(self, rows: Iterable[UsageRow]) -> None:
        """Add each row to its (entity, day) total, creating it when new."""
        merged: dict[tuple[str, str, date], UsageRow] = {}
        for row in map(_checked, rows):
            key = (row.entity_kind, row.entity_id, row.day)
            old = merged.get(key)
            merged[key] = row if old is None else _added(old, row)
        if not merged:
            return
        ins = self._upsert(usage_rollups)
        new, t = ins.excluded, usage_rollups.c
        stmt = ins.on_conflict_do_update(
            index_elements=[t.entity_kind, t.entity_id, t.day],
            set_={
                "requests": t.requests + new.requests,
                "input_tokens": t.input_tokens + new.input_tokens,
                "output_tokens": t.output_tokens + new.output_tokens,
                "cost_usd": t.cost_usd + new.cost_usd,
            },
        )
        params = [
            {
                "entity_kind": r.entity_kind,
                "entity_id": r.entity_id,
                "day": r.day.isoformat(),
                "requests": r.requests,
                "input_tokens": r.input_tokens,
                "output_tokens": r.output_tokens,
                "cost_usd": r.cost_usd,
            }
            for r in merged.values()
        ]
        async with self._write(control=False) as conn:
            await conn.execute(stmt, params)

    async def usage_summary(
        self, entity_kind: EntityKind, entity_id: str, *, since_day: date | None = None
    ) -> UsageSummary:
        """Totals for one principal over the days from `since_day` (all days if None)."""
        t = usage_rollups.c
        query = select(
            func.coalesce(func.sum(t.requests), 0),
            func.coalesce(func.sum(t.input_tokens), 0),
            func.coalesce(func.sum(t.output_tokens), 0),
            func.coalesce(func.sum(t.cost_usd), 0.0),
            func.max(t.day),
        ).where(t.entity_kind == _kind(entity_kind), t.entity_id == entity_id)
        if since_day is not None:
            query = query.where(t.day >= _day(since_day, "since_day").isoformat())
        async with self._read() as conn:
            requests, input_tokens, output_tokens, cost, last = (await conn.execute(query)).one()
        return UsageSummary(
            requests=int(requests),
            input_tokens=int(input_tokens),
            output_tokens=int(output_tokens),
            cost_usd=float(cost),
            last_day=None if last is None else date.fromisoformat(last),
        )

    async def add_permission_use(self, uses: Iterable[tuple[str, str, date, int]]) -> None:
        """Count requests per (agent id, permission, UTC day), e.g.
        `(agent.id, "model:fast", date(2025, 3, 4), 3)`; counts add up."""
        merged: dict[tuple[str, str, str], int] = {}
        for agent_id, permission, day, n in uses:
            key = (
                check.text(agent_id, "agent_id"),
                check.text(permission, "permission"),
                _day(day, "day").isoformat(),
            )
            merged[key] = merged.get(key, 0) + (check.count(n, "requests") or 0)
        if not merged:
            return
        ins = self._upsert(permission_use)
        t = permission_use.c
        stmt = ins.on_conflict_do_update(
            index_elements=[t.agent_id, t.permission, t.day],
            set_={"requests": t.requests + ins.excluded.requests},
        )
        params = [
            {"agent_id": a, "permission": p, "day": d, "requests": n}
            for (a, p, d), n in merged.items()
        ]
        async with self._write(control=False) as conn:
            await conn.execute(stmt, params)

    async def permissions_used(self, agent_id: str, *, since_day: date | None = None) -> list[str]:
        """The permissions the agent used from `since_day` (all days if None), sorted."""
        t = permission_use.c
        query = select(t.permission).distinct().where(t.agent_id == agent_id).order_by(t.permission)
        if since_day is not None:
            query = query.where(t.day >= _day(since_day, "since_day").isoformat())
        async with self._read() as conn:
            return list((await conn.scalars(query)).all())
