"""Approvals: the oversight queue's records. Status moves pending -> approved | denied |
expired, and approved -> consumed (used once); every move is a conditional UPDATE, so
two reviewers (or a reviewer and a timeout) cannot both win."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from lockgate.errors import NotFound
from lockgate.store._base import StoreBase
from lockgate.store.tables_audit import approvals

__all__ = ["ApprovalsMixin"]


class ApprovalsMixin(StoreBase):
    async def create_approval(self, row: dict[str, Any]) -> None:
        async with self._write(control=False) as conn:
            await conn.execute(insert(approvals), [row])

    async def get_approval(self, approval_id: str) -> dict[str, Any]:
        async with self._read() as conn:
            row = (await conn.execute(select(approvals).where(approvals.c.id == approval_id))).first()
        if row is None:
            raise NotFound(f"No approval with id {approval_id!r}.")
        return dict(row._mapping)  # pyright: ignore[reportPrivateUsage]

    async def list_approvals(self, *, status: str | None, limit: int = 200) -> list[dict[str, Any]]:
        query = select(approvals).order_by(approvals.c.created_at.desc()).limit(limit)
        if status is not None:
            query = query.where(approvals.c.status == status)
        async with self._read() as conn:
            return [dict(r._mapping) for r in await conn.execute(query)]  # pyright: ignore[reportPrivateUsage]

    async def move_approval(
        self, approval_id: str, *, from_status: str, to_status: str, now: datetime, **values: Any
    ) -> bool:
        """Move one approval from `from_status` to `to_status`; False if it was not in `from_status`."""
        stamp = {"consumed_at": now} if to_status == "consumed" else {"decided_at": now}
        async with self._write(control=False) as conn:
            result = await conn.execute(
                update(approvals)
                .where(approvals.c.id == approval_id, approvals.c.status == from_status)
                .values(status=to_status, **stamp, **values)
            )
        return bool(result.rowcount)

    async def approval_statuses(self, ids: Sequence[str]) -> dict[str, str]:
        if not ids:
            return {}
        async with self._read() as conn:
            rows = await conn.execute(select(approvals.c.id, approvals.c.status).where(approvals.c.id.in_(list(ids))))
            return {str(r.id): str(r.status) for r in rows}
