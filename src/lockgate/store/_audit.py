"""Audit ledger storage: appending sealed batches under one cross-process order,
reading ranges for search, proofs, checkpoints and verification.

One chain for every gateway: a batch is appended inside a write transaction that
first takes the ledger lock (an advisory transaction lock on PostgreSQL; on SQLite
`BEGIN IMMEDIATE` already makes writers take turns), reads the tail (last seq and
chain hash), seals each event after it, and inserts them all. The caller's `seal`
turns a pending event into its row; it runs under the lock, so it must be quick.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, delete, func, insert, select, text

from lockgate.store._base import StoreBase
from lockgate.store.tables_audit import (
    audit_checkpoints,
    audit_events,
    audit_payloads,
    audit_subject_keys,
)

__all__ = [
    "EVENT_COLUMNS", "GENESIS", "PAYLOAD_COLUMNS", "AuditMixin", "DirectWriter", "PgAppender", "SealedEvent", "SqliteAppender",
]

GENESIS = "0" * 64  # the chain hash before the first event
_PG_LEDGER_LOCK = 0x6C6764676C656467  # pg_advisory_xact_lock key of the ledger


class SealedEvent:
    """One event ready to insert: its `audit_events` row (in `EVENT_COLUMNS` order, the
    time as RFC 3339 text) and, when it carries any, its `audit_payloads` row (in
    `PAYLOAD_COLUMNS` order, the same time)."""

    __slots__ = ("chain", "payload", "row")

    def __init__(self, row: tuple[Any, ...], chain: str, payload: tuple[Any, ...] | None) -> None:
        self.row = row
        self.chain = chain
        self.payload = payload


EVENT_COLUMNS = ("seq", "id", "time", "type", "request_id", "principal", "agent", "model", "decision", "status", "body", "chain")
PAYLOAD_COLUMNS = ("seq", "subject", "scheme", "nonce", "data", "created_at")
_EVENT_TIME = EVENT_COLUMNS.index("time")


def _seal_all(
    count: int, seal: Callable[[int, int, str], SealedEvent], seq: int, chain: str, time: Callable[[str], Any]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[int]]:
    rows: list[tuple[Any, ...]] = []
    payloads: list[tuple[Any, ...]] = []
    seqs: list[int] = []
    for i in range(count):
        seq += 1
        sealed = seal(i, seq, chain)
        chain = sealed.chain
        row = sealed.row
        at = time(row[_EVENT_TIME])
        rows.append((*row[:_EVENT_TIME], at, *row[_EVENT_TIME + 1 :]))
        seqs.append(seq)
        if sealed.payload is not None:
            payloads.append((*sealed.payload[:-1], at))
    return rows, payloads, seqs


def _insert_sql(table: str, columns: tuple[str, ...], mark: str) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"


def _sqlite_time(value: str) -> str:
    """RFC 3339 UTC text ("...123456Z") as the SQLite columns hold it (same width)."""
    return value[:-1] + "+00:00"


_TAIL_SQL = "SELECT seq, chain FROM audit_events ORDER BY seq DESC LIMIT 1"


class SqliteAppender:
    """Group commits on SQLite, on the event loop, without ever waiting for a lock.

    A commit in WAL mode is CPU work on the page cache (no fsync with
    synchronous=NORMAL): a few hundred microseconds for a batch. Doing it on the loop
    avoids a thread whose every sqlite3 call hands the GIL back and forth with the
    request handlers (measured: ten times the CPU per commit under load). The one way
    it could block, waiting for another writer's lock, is closed: the connection has
    `busy_timeout = 0`, so `try_append` returns None at once when the database is
    locked, and the ledger retries after a short sleep. Plain SQL through sqlite3:
    SQLAlchemy's execution layer costs more per statement than the commit itself."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._insert_event = _insert_sql("audit_events", EVENT_COLUMNS, "?")
        self._insert_payload = _insert_sql("audit_payloads", PAYLOAD_COLUMNS, "?")
        self._conn: Any = None
        self._wal_conn: Any = None

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = self._engine.raw_connection()
            cur = self._conn.cursor()
            cur.execute("PRAGMA busy_timeout = 0")
            # No WAL checkpoint inside a commit (SQLite's default every 1000 pages: it
            # copies the log into the database and syncs it, on the loop): the ledger
            # runs `checkpoint_wal` in a thread instead.
            cur.execute("PRAGMA wal_autocheckpoint = 0")
        return self._conn

    def checkpoint_wal(self) -> None:
        """Copy the write-ahead log into the database (PASSIVE: never waits for, nor
        blocks, readers and writers). Blocking: run it in a thread; its own connection."""
        import sqlite3

        if self._wal_conn is None:
            path = self._engine.url.database
            if not path or path == ":memory:":
                return
            self._wal_conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._wal_conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def try_append(self, count: int, seal: Callable[[int, int, str], SealedEvent]) -> list[int] | None:
        """Append the batch; None (nothing written) when another writer holds the lock."""
        import sqlite3

        cur = self._connection().cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                return None
            self._abandon()
            raise
        try:
            cur.execute(_TAIL_SQL)
            tail = cur.fetchone()
            seq, chain = (int(tail[0]), str(tail[1])) if tail else (0, GENESIS)
            rows, payloads, seqs = _seal_all(count, seal, seq, chain, _sqlite_time)
            cur.executemany(self._insert_event, rows)
            if payloads:
                cur.executemany(self._insert_payload, payloads)
            cur.execute("COMMIT")
            return seqs
        except BaseException:
            with contextlib.suppress(Exception):
                cur.execute("ROLLBACK")
            self._abandon()
            raise

    def ids_since(self, since: str) -> set[str]:
        """Ids of the events stored at or after `since` (RFC 3339 UTC text)."""
        cur = self._connection().cursor()
        cur.execute("SELECT id FROM audit_events WHERE time >= ?", (_sqlite_time(since),))
        ids = {str(row[0]) for row in cur.fetchall()}
        self._connection().commit()  # end the read transaction: writers must not wait on it
        return ids

    def _abandon(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()

    def close(self) -> None:
        for conn in (self._conn, self._wal_conn):
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
        self._conn = self._wal_conn = None


class PgAppender:
    """Group commits on PostgreSQL with psycopg's async connection: on the event loop,
    no thread, plain SQL (one round trip for the lock, one for the tail, the inserts
    pipelined by `executemany`, the commit)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._insert_event = _insert_sql("audit_events", EVENT_COLUMNS, "%s")
        self._insert_payload = _insert_sql("audit_payloads", PAYLOAD_COLUMNS, "%s")
        self._conn: Any = None

    async def append(self, count: int, seal: Callable[[int, int, str], SealedEvent]) -> list[int]:
        import psycopg

        if self._conn is None:
            self._conn = await psycopg.AsyncConnection.connect(self._url)
        conn = self._conn
        try:
            async with conn.cursor() as cur:
                await cur.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_LEDGER_LOCK,))
                await cur.execute(_TAIL_SQL)
                tail = await cur.fetchone()
                seq, chain = (int(tail[0]), str(tail[1])) if tail else (0, GENESIS)
                rows, payloads, seqs = _seal_all(count, seal, seq, chain, datetime.fromisoformat)
                await cur.executemany(self._insert_event, rows)
                if payloads:
                    await cur.executemany(self._insert_payload, payloads)
            await conn.commit()
            return seqs
        except BaseException:
            self._conn = None
            with contextlib.suppress(Exception):
                await conn.close()
            raise

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()


class DirectWriter:
    """Group commits straight to the database on the event loop (see `SqliteAppender`
    and `PgAppender`); the store's SQLAlchemy path is for in-memory databases only."""

    def __init__(self, url: str) -> None:
        from lockgate.store._engine import backend_of, make_sync_engine, normalise_url

        self._sqlite: SqliteAppender | None = None
        self._pg: PgAppender | None = None
        self._engine = None
        if backend_of(normalise_url(url, is_async=False)) == "sqlite":
            self._engine = make_sync_engine(url)
            self._sqlite = SqliteAppender(self._engine)
        else:
            libpq = normalise_url(url, is_async=False).set(drivername="postgresql")
            self._pg = PgAppender(libpq.render_as_string(hide_password=False))

    async def append(self, count: int, seal: Callable[[int, int, str], SealedEvent]) -> list[int]:
        if self._pg is not None:
            return await self._pg.append(count, seal)
        assert self._sqlite is not None
        delay, waited = 0.0005, 0.0
        while True:
            seqs = self._sqlite.try_append(count, seal)
            if seqs is not None:
                return seqs
            if waited > _LOCK_WAIT:
                raise TimeoutError("the ledger's database stayed locked by another writer")
            await asyncio.sleep(delay)  # another writer holds the lock: never block the loop
            waited += delay
            delay = min(delay * 2, 0.02)

    def ids_since(self, since: str) -> set[str]:
        """SQLite only (the store process): ids of the events stored at or after `since`."""
        assert self._sqlite is not None
        return self._sqlite.ids_since(since)

    async def tidy(self) -> None:
        """Housekeeping between commits, off the loop (SQLite: checkpoint the WAL)."""
        if self._sqlite is not None:
            await asyncio.to_thread(self._sqlite.checkpoint_wal)

    async def close(self) -> None:
        if self._pg is not None:
            await self._pg.close()
        if self._sqlite is not None:
            self._sqlite.close()
        if self._engine is not None:
            self._engine.dispose()


_LOCK_WAIT = 30.0  # seconds a batch waits for another writer's SQLite lock before failing


class AuditMixin(StoreBase):
    async def append_audit(
        self,
        count: int,
        seal: Callable[[int, int, str], SealedEvent],
    ) -> list[int]:
        """Append `count` events: `seal(i, seq, prev_chain)` builds the i-th. Returns the seqs."""
        async with self._write(control=False) as conn:
            if self._backend == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LEDGER_LOCK})
            tail = (
                await conn.execute(
                    select(audit_events.c.seq, audit_events.c.chain).order_by(audit_events.c.seq.desc()).limit(1)
                )
            ).first()
            seq, chain = (int(tail.seq), str(tail.chain)) if tail else (0, GENESIS)
            rows: list[dict[str, Any]] = []
            payloads: list[dict[str, Any]] = []
            seqs: list[int] = []
            for i in range(count):
                seq += 1
                sealed = seal(i, seq, chain)
                chain = sealed.chain
                row: dict[str, Any] = dict(zip(EVENT_COLUMNS, sealed.row, strict=True))
                row["time"] = datetime.fromisoformat(row["time"])
                rows.append(row)
                seqs.append(seq)
                if sealed.payload is not None:
                    payload: dict[str, Any] = dict(zip(PAYLOAD_COLUMNS, sealed.payload, strict=True))
                    payload["created_at"] = row["time"]
                    payloads.append(payload)
            await conn.execute(insert(audit_events), rows)
            if payloads:
                await conn.execute(insert(audit_payloads), payloads)
        return seqs

    async def audit_tail(self) -> tuple[int, str]:
        async with self._read() as conn:
            tail = (
                await conn.execute(
                    select(audit_events.c.seq, audit_events.c.chain).order_by(audit_events.c.seq.desc()).limit(1)
                )
            ).first()
        return (int(tail.seq), str(tail.chain)) if tail else (0, GENESIS)

    async def audit_bodies(self, start: int, end: int, *, chunk: int = 5000) -> AsyncIterator[tuple[int, str]]:
        """(seq, body) for start <= seq <= end, in order, read in chunks."""
        async for seq, body, _ in self.audit_rows(start, end, chunk=chunk):
            yield seq, body

    async def audit_rows(self, start: int, end: int, *, chunk: int = 5000) -> AsyncIterator[tuple[int, str, str]]:
        """(seq, body, chain) for start <= seq <= end, in order, read in chunks."""
        t = audit_events.c
        low = start
        while low <= end:
            async with self._read() as conn:
                rows = (
                    await conn.execute(
                        select(t.seq, t.body, t.chain)
                        .where(and_(t.seq >= low, t.seq <= end))
                        .order_by(t.seq)
                        .limit(chunk)
                    )
                ).all()
            if not rows:
                return
            for row in rows:
                yield int(row.seq), str(row.body), str(row.chain)
            low = int(rows[-1].seq) + 1

    async def audit_ids_since(self, since: datetime) -> set[str]:
        """Ids of the events stamped at or after `since` (journal recovery: which of a
        dead writer's events are in already)."""
        t = audit_events.c
        async with self._read() as conn:
            rows = await conn.execute(select(t.id).where(t.time >= since))
            return {str(row[0]) for row in rows}

    async def first_seq_since(self, since: datetime) -> int | None:
        t = audit_events.c
        async with self._read() as conn:
            found = await conn.scalar(select(func.min(t.seq)).where(t.time >= since))
        return int(found) if found is not None else None

    async def search_audit(
        self,
        *,
        filters: dict[str, Any],
        since: datetime | None,
        until: datetime | None,
        before_seq: int | None,
        limit: int,
    ) -> list[tuple[int, str, str]]:
        """(seq, body, chain), newest first, matching every filter (keyset pagination by seq)."""
        t = audit_events.c
        query = select(t.seq, t.body, t.chain).order_by(t.seq.desc()).limit(limit)
        for column, value in filters.items():
            query = query.where(t[column] == value)
        if since is not None:
            query = query.where(t.time >= since)
        if until is not None:
            query = query.where(t.time < until)
        if before_seq is not None:
            query = query.where(t.seq < before_seq)
        async with self._read() as conn:
            return [(int(r.seq), str(r.body), str(r.chain)) for r in await conn.execute(query)]

    async def audit_event(self, seq: int) -> tuple[str, str] | None:
        t = audit_events.c
        async with self._read() as conn:
            row = (await conn.execute(select(t.body, t.chain).where(t.seq == seq))).first()
        return (str(row.body), str(row.chain)) if row else None

    async def audit_payload(self, seq: int) -> dict[str, Any] | None:
        async with self._read() as conn:
            row = (await conn.execute(select(audit_payloads).where(audit_payloads.c.seq == seq))).first()
        return dict(row._mapping) if row else None  # pyright: ignore[reportPrivateUsage]

    # --- checkpoints -------------------------------------------------------------------

    async def add_checkpoint(self, row: dict[str, Any]) -> bool:
        """Insert a checkpoint; False when one of that tree size exists already."""
        async with self._write(control=False) as conn:
            found = await conn.scalar(
                select(audit_checkpoints.c.tree_size).where(audit_checkpoints.c.tree_size == row["tree_size"])
            )
            if found is not None:
                return False
            await conn.execute(insert(audit_checkpoints), [row])
        return True

    async def checkpoints(self) -> list[dict[str, Any]]:
        async with self._read() as conn:
            rows = await conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.tree_size))
            return [dict(r._mapping) for r in rows]  # pyright: ignore[reportPrivateUsage]

    async def latest_checkpoint(self) -> dict[str, Any] | None:
        async with self._read() as conn:
            row = (
                await conn.execute(
                    select(audit_checkpoints).order_by(audit_checkpoints.c.tree_size.desc()).limit(1)
                )
            ).first()
        return dict(row._mapping) if row else None  # pyright: ignore[reportPrivateUsage]

    # --- subject keys, retention ---------------------------------------------------------

    async def subject_key(self, subject: str, make: Callable[[], bytes], now: datetime) -> bytes:
        """The subject's wrapped key, created by `make()` if it has none."""
        k = audit_subject_keys.c
        async with self._write(control=False) as conn:
            found = await conn.scalar(select(k.wrapped_key).where(k.subject == subject))
            if found is not None:
                return bytes(found)
            wrapped = make()
            await conn.execute(insert(audit_subject_keys), [{"subject": subject, "wrapped_key": wrapped, "created_at": now}])
            return wrapped

    async def find_subject_key(self, subject: str) -> bytes | None:
        k = audit_subject_keys.c
        async with self._read() as conn:
            found = await conn.scalar(select(k.wrapped_key).where(k.subject == subject))
        return bytes(found) if found is not None else None

    async def shred_subject(self, subject: str) -> bool:
        async with self._write(control=False) as conn:
            result = await conn.execute(delete(audit_subject_keys).where(audit_subject_keys.c.subject == subject))
        return bool(result.rowcount)

    async def prune_payloads(self, before: datetime) -> int:
        async with self._write(control=False) as conn:
            result = await conn.execute(delete(audit_payloads).where(audit_payloads.c.created_at < before))
        return int(result.rowcount or 0)
