"""What every part of the store shares: the engine, the clock, transactions, lookups."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Table, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from lockgate.access.models import Limits
from lockgate.errors import NotFound
from lockgate.store._engine import WRITE_OPTION, Backend
from lockgate.store.tables import state_version

__all__ = ["NO_LIMITS", "Clock", "StoreBase", "utc_now"]

Clock = Callable[[], datetime]
NO_LIMITS = Limits()  # frozen: safe as a default


def utc_now() -> datetime:
    return datetime.now(UTC)


class StoreBase:
    """The engine and the transaction rules; the entity mixins build on it.

    SQLite has one writer: writes in this process queue on an asyncio lock (and take
    `BEGIN IMMEDIATE` against other processes). On PostgreSQL, control-plane writes
    lock the `state_version` row first, so they are serialised across processes too.
    """

    def __init__(self, engine: AsyncEngine, backend: Backend, *, clock: Clock, memory: bool) -> None:
        self._engine = engine
        self._backend: Backend = backend
        self._clock = clock
        self._write_lock = asyncio.Lock() if backend == "sqlite" else None
        # An in-memory SQLite database is one shared connection: one user at a time.
        self._read_lock = self._write_lock if memory else None

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the store's clock must return aware datetimes")
        return now.astimezone(UTC)

    @asynccontextmanager
    async def _read(self) -> AsyncGenerator[AsyncConnection]:
        """A read-only transaction: one consistent view of the database."""
        if self._read_lock is not None:
            await self._read_lock.acquire()
        try:
            async with self._engine.connect() as conn:
                if self._backend == "postgresql":
                    await conn.execution_options(isolation_level="REPEATABLE READ")
                async with conn.begin():
                    yield conn
        finally:
            if self._read_lock is not None:
                self._read_lock.release()

    @asynccontextmanager
    async def _write(self, *, control: bool = True) -> AsyncGenerator[AsyncConnection]:
        """A write transaction. `control`: it may change what the snapshot holds, so
        it is serialised with every other control-plane write (and should `_bump`)."""
        if self._write_lock is not None:
            await self._write_lock.acquire()
        try:
            async with self._engine.connect() as conn:
                await conn.execution_options(**{WRITE_OPTION: True})
                async with conn.begin():
                    if control and self._backend == "postgresql":
                        await conn.execute(select(state_version.c.version).with_for_update())
                    yield conn
        finally:
            if self._write_lock is not None:
                self._write_lock.release()

    def _upsert(self, table: Table) -> sqlite.Insert | postgresql.Insert:
        """An INSERT that can take `.on_conflict_do_update(...)` on either backend."""
        return sqlite.insert(table) if self._backend == "sqlite" else postgresql.insert(table)

    @staticmethod
    async def _bump(conn: AsyncConnection) -> None:
        """Tell every gateway its snapshot is stale (in the caller's transaction)."""
        await conn.execute(
            update(state_version)
            .where(state_version.c.id == 1)
            .values(version=state_version.c.version + 1)
        )

    @staticmethod
    async def _find(
        conn: AsyncConnection,
        table: Table,
        key: str,
        *,
        kind: str,
        alt: str | None = None,
    ) -> Row[Any]:
        """The row whose id (or `alt` column, e.g. the name) is `key`; NotFound if none.
        An id match wins over an `alt` match."""
        where: ColumnElement[bool] = table.c.id == key
        if alt is not None:
            where = or_(where, table.c[alt] == key)
        rows = (await conn.execute(select(table).where(where))).all()
        if not rows:
            raise NotFound(f"No {kind} with id{f' or {alt}' if alt else ''} {key!r}.")
        return next((r for r in rows if r.id == key), rows[0])

    @staticmethod
    async def _exists(conn: AsyncConnection, table: Table, key: str | None, *, kind: str) -> None:
        """NotFound unless `key` is None or the id of a row of `table`."""
        if key is None:
            return
        found = await conn.scalar(select(table.c.id).where(table.c.id == key))
        if found is None:
            raise NotFound(f"No {kind} with id {key!r}.")
