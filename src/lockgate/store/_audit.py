"""Audit ledger storage: appending sealed batches under one cross-process order,
reading ranges for search, proofs, checkpoints and verification.

One chain for every gateway: a batch is appended inside a write transaction that
first takes the ledger lock (an advisory transaction lock on PostgreSQL; on SQLite
`BEGIN IMMEDIATE` already makes writers take turns), reads the tail (last seq and
chain hash), seals each event after it, and inserts them all. The caller's `seal`
turns a pending event into its row; it runs under the lock, so it must be quick.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, select, text

from lockgate.store._base import StoreBase
from lockgate.store.tables_audit import (
    audit_checkpoints,
    audit_events,
    audit_payloads,
    audit_subject_keys,
)

__all__ = ["GENESIS", "AuditMixin", "SealedEvent", "append_sync"]

GENESIS = "0" * 64  # the chain hash before the first event
_PG_LEDGER_LOCK = 0x6C6764676C656467  # pg_advisory_xact_lock key of the ledger


class SealedEvent:
    """One event ready to insert: its row and, when it carries any, its payload row."""

    __slots__ = ("chain", "payload", "row")

    def __init__(self, row: dict[str, Any], chain: str, payload: dict[str, Any] | None) -> None:
        self.row = row
        self.chain = chain
        self.payload = payload


def append_sync(conn: Connection, postgres: bool, count: int, seal: Callable[[int, int, str], SealedEvent]) -> list[int]:
    """`AuditMixin.append_audit` on a synchronous connection, in the caller's transaction.

    The ledger's writer thread uses this: one thread hop per group commit instead of one
    per statement, which is most of the commit's latency on a loaded machine."""
    if postgres:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LEDGER_LOCK})
    tail = conn.execute(
        select(audit_events.c.seq, audit_events.c.chain).order_by(audit_events.c.seq.desc()).limit(1)
    ).first()
    seq, chain = (int(tail.seq), str(tail.chain)) if tail else (0, GENESIS)
    rows: list[dict[str, Any]] = []
    payloads: list[dict[str, Any]] = []
    seqs: list[int] = []
    for i in range(count):
        seq += 1
        sealed = seal(i, seq, chain)
        chain = sealed.chain
        rows.append(sealed.row)
        seqs.append(seq)
        if sealed.payload is not None:
            payloads.append(sealed.payload)
    conn.execute(insert(audit_events), rows)
    if payloads:
        conn.execute(insert(audit_payloads), payloads)
    return seqs


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
                rows.append(sealed.row)
                seqs.append(seq)
                if sealed.payload is not None:
                    payloads.append(sealed.payload)
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

    async def count_audit(self) -> int:
        async with self._read() as conn:
            return int(await conn.scalar(select(func.count()).select_from(audit_events)) or 0)

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

    async def payload_seqs(self, seqs: Sequence[int]) -> dict[int, dict[str, Any]]:
        async with self._read() as conn:
            rows = await conn.execute(select(audit_payloads).where(audit_payloads.c.seq.in_(list(seqs))))
            return {int(r.seq): dict(r._mapping) for r in rows}  # pyright: ignore[reportPrivateUsage]
