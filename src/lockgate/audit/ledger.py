"""The ledger: `append()` and `record()` add an event and return once it is durable.

Both validate the event (against the published schema) and seal its payloads. Then:

- `record` queues it and waits for its commit, and returns its sequence number. One
  writer task takes everything queued and appends it in transactions of up to
  `max_batch` under the ledger lock (see `store/_audit.py`), then wakes every waiter.
  Under load a commit carries many events, so the cost of durability is shared.
- `append` (the gateway's hot path) on SQLite copies the event into the journal
  (`journal.py`: a memory-mapped file, as durable against a crash of the gateway as a
  commit) and returns; the store process (`storer.py`, or with `store_process` off
  the writer task) moves journaled events into the tables within `_JOURNAL_DELAY`, many
  per transaction even at one request at a time. Without a journal (PostgreSQL,
  in-memory SQLite, `[audit] journal = false`) it is `record`.

Readers in this process (`search`, `payload`, `checkpoint`, the proofs) first `flush()`,
and `record` waits for the journaled events before its own, so they see every event
appended before them; another process sees the tables, at most a few milliseconds
behind the journal.

Checkpoints: every `checkpoint_interval` seconds while events arrive, and on demand
(`checkpoint()`), a signed tree head is added. Retention: payloads older than
`retention_days` are deleted hourly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from lockgate.audit import merkle
from lockgate.audit.canonical import payload_bytes
from lockgate.audit.checkpoint import Signer, rfc3339
from lockgate.audit.crypto import PayloadCipher
from lockgate.audit.event import AuditEvent, actor_of, digest
from lockgate.audit.frames import (
    Entry,
    RecordEntry,
    SealedPayload,
    decode_entry,
    decode_frame,
    encode_frame,
)
from lockgate.audit.journal import Journal, Segment, orphans
from lockgate.audit.record import GatewayRecord
from lockgate.audit.seal import sealer
from lockgate.audit.storer_link import StoreLink
from lockgate.config.audit import AuditConfig
from lockgate.core.clock import UtcSeconds
from lockgate.core.context import Principal
from lockgate.core.ids import uuid7
from lockgate.core.waiters import release_reached
from lockgate.errors import InvalidRequest, LockgateError
from lockgate.store._audit import DirectWriter, SealedEvent

if TYPE_CHECKING:
    from lockgate.store import Store

__all__ = ["AuditUnavailable", "Ledger"]

_log = logging.getLogger("lockgate.audit")


class AuditUnavailable(LockgateError):
    """The ledger could not make an event durable, so the request is not answered."""

    status = 503
    code = "audit_unavailable"
    openai_type = "server_error"


class _Pending:
    __slots__ = ("event", "future", "payload")

    def __init__(
        self, event: AuditEvent | GatewayRecord, payload: tuple[Any, ...] | None, future: asyncio.Future[int] | None
    ) -> None:
        self.event = event  # a gateway request's record becomes its event when sealed
        self.payload = payload  # (subject, scheme, nonce, data)
        self.future = future


_RETENTION_EVERY = 3600.0  # seconds between retention passes (the first an interval after start)
_TIDY_EVERY = 1.0  # seconds between WAL checkpoints while events arrive
_JOURNAL_DELAY = 0.01  # seconds journaled events wait to share a transaction
_JOURNAL_MAX_AGE = 60.0  # seconds before a journal file with events is closed (recovery looks back this far)
_RETRY_EVERY = 0.5  # seconds between attempts to store journaled events after a failure
_FLUSH_WAIT = 10.0  # seconds a reader waits for queued events before reading anyway


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Ledger:
    def __init__(
        self,
        store: Store,
        config: AuditConfig,
        *,
        signer: Signer,
        cipher: PayloadCipher | None = None,
        clock: Callable[[], datetime] = _utc_now,
        writer_url: str | None = None,
        journal: Path | None = None,
        store_process: bool = False,
    ) -> None:
        """`writer_url`: the database again, for direct group commits (None: write
        through the store's async engine, e.g. for an in-memory SQLite database).
        `journal`: the journal directory (SQLite files only), None for none.
        `store_process`: with a journal, journaled events are moved into the tables by
        a process of their own (`storer.py`) instead of this one's writer."""
        self.store = store
        self._journal_dir = journal
        self._journal: Journal | None = None
        self._use_store_process = store_process and journal is not None and writer_url is not None
        self._writer_url = writer_url
        self._link: StoreLink | None = None
        self._retained: list[Segment] = []  # written-to journal files not all stored yet
        self._waiting = 0  # queued events whose caller waits for the commit (`record`)
        self._enqueued = 0  # events ever queued, and of those settled (stored or failed)
        self._settled = 0
        self._flushes: list[tuple[int, asyncio.Future[None]]] = []
        self._seconds = UtcSeconds()
        self._direct = DirectWriter(writer_url) if writer_url else None
        self.config = config
        self.signer = signer
        self._cipher = cipher
        self._clock = clock
        self._queue: list[_Pending] = []
        self._wake = asyncio.Event()
        self._hurry = asyncio.Event()  # a waiter or a reader: stop gathering
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._since_checkpoint = 0
        self._checkpoint_lock = asyncio.Lock()
        self.commits = 0  # group commits done (benchmarks read it)
        self.committed = 0

    async def start(self) -> None:
        if self._journal_dir is not None:
            await self.recover()
            self._journal = Journal(self._journal_dir)
            if self._use_store_process:
                await self._start_store_process(self._journal)
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._writer(), name="audit-writer"))
        if self.config.checkpoint_interval > 0:
            self._tasks.append(loop.create_task(self._checkpoints(), name="audit-checkpoints"))
        self._tasks.append(loop.create_task(self._retention(), name="audit-retention"))
        if self._direct is not None and self._link is None:  # else the store process does it
            self._tasks.append(loop.create_task(self._tidy(), name="audit-tidy"))

    @property
    def healthy(self) -> bool:
        """False while the store process is down (being restarted): journaled events wait
        in their files, nothing is lost, but the tables fall behind."""
        return self._link is None or self._link.up

    async def _start_store_process(self, journal: Journal) -> None:
        assert self._writer_url is not None
        link = StoreLink(self._writer_url, max_batch=self.config.max_batch, on_stored=self._stored_elsewhere)
        try:
            await link.start()
        except OSError as exc:
            _log.error("audit store process cannot start (%s): storing in the gateway", _type_name(exc))
            return
        link.follow(journal.current)
        journal.on_open = link.follow
        self._link = link

    def _stored_elsewhere(self, count: int) -> None:
        """The store process committed `count` journaled events."""
        self._committed(count)
        if self._journal is not None:
            self._journal.rotate(_JOURNAL_MAX_AGE)
            self._journal.take_closed()  # the link holds them until the store process is done

    async def aclose(self) -> None:
        self._closing = True
        self._wake.set()
        self._hurry.set()
        if self._tasks:
            writer = self._tasks[0]
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(writer), timeout=10)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        stored = not self._queue  # all stored: the journal files can go
        retained, self._retained = self._retained, []
        if self._journal is not None and self._link is not None:
            journal, self._journal = self._journal, None
            journal.close(discard=False)  # the store process deletes its files once stored
            if await self._link.aclose():
                journal.remove_marker()
            self._link = None
        elif self._journal is not None:
            retained += self._journal.close(discard=stored)
            self._journal = None
        for segment in retained:
            if stored:
                segment.discard()
            else:
                segment.close()  # left for the next start's recovery
        if self._direct is not None:
            await self._direct.close()

    async def recover(self) -> int:
        """Store the events of journal files whose gateway died (skipping any already
        stored), then delete the files. Returns how many events it found missing; any
        it could not store stay queued (and their files kept) for the writer to retry."""
        if self._journal_dir is None:
            return 0
        found = 0
        for orphan in orphans(self._journal_dir):
            entries: list[tuple[AuditEvent | GatewayRecord, SealedPayload | None]] = []
            for frame in orphan.frames():
                try:
                    entries.append(decode_entry(frame))
                except msgspec.DecodeError:
                    break  # cannot happen past the CRC check; end the file there all the same
            if entries:
                since = min(datetime.fromisoformat(event.time) for event, _ in entries)
                present = await self.store.audit_ids_since(since)
                missing = [(event, payload) for event, payload in entries if event.id not in present]
                for event, payload in missing:
                    self._enqueue(_Pending(event, payload, None))
                found += len(missing)
                if missing:
                    _log.warning("audit journal: recovered %d events from %s", len(missing), orphan.path.name)
            self._retained.append(orphan.segment)  # deleted once its events are stored
        if self._retained:
            await self._store_queue()
        return found

    # --- appending --------------------------------------------------------------------

    async def record(self, type: str, **fields: Any) -> int:
        """Append one event and wait for its commit; returns its sequence number.
        Fields: as `event()`."""
        event, payload = await self._sealed(type, fields)
        if self._link is not None:
            await self._flush_journal()  # after the events journaled before it
        return await self._commit(event, payload)

    async def _commit(self, event: AuditEvent | GatewayRecord, payload: tuple[Any, ...] | None) -> int:
        """Queue the event and wait for its commit; its sequence number."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._enqueue(_Pending(event, payload, future))
        self._waiting += 1
        self._hurry.set()
        # Not shielded: a caller cancelled meanwhile cancels only its wait; the event
        # stays queued and is written all the same.
        return await future

    async def append(self, type: str, **fields: Any) -> None:
        """Append one event; returns once it is durable (journaled, or committed when
        there is no journal). Fields: as `event()`."""
        if self._journal is None:
            await self.record(type, **fields)
            return
        event, payload = await self._sealed(type, fields)
        self._journaled(encode_frame(Entry(event, payload)), event, payload)

    async def append_record(self, record: GatewayRecord, payload: dict[str, Any] | None) -> None:
        """Append a gateway request's event, as its record (`record.py`; the hot path:
        `AuditStage`, with an id and time from `stamp()`), and its payloads. Validated on
        the way (a typed decode of its journal frame), then as `append`."""
        row = await self._payload_row(record.subject, record.id, payload) if payload else None
        frame = encode_frame(RecordEntry(record, row))
        try:
            record = decode_frame(frame).record  # pyright: ignore[reportAttributeAccessIssue]
        except msgspec.ValidationError as exc:
            raise InvalidRequest(f"Invalid audit event: {exc}") from None
        if self._journal is None:
            await self._commit(record, row)
        else:
            self._journaled(frame, record, row)

    def _journaled(self, frame: bytes, event: AuditEvent | GatewayRecord, payload: tuple[Any, ...] | None) -> None:
        assert self._journal is not None
        try:
            self._journal.write(frame)
        except OSError as exc:
            _log.error("audit journal write failed: %s", _type_name(exc))
            raise AuditUnavailable("The audit ledger could not record this request, so it was not answered.") from None
        if self._link is None:
            self._enqueue(_Pending(event, payload, None))

    def stamp(self) -> tuple[str, str]:
        """A new event's id and time (RFC 3339, UTC, microseconds), from one clock read."""
        if self._clock is not _utc_now:
            return uuid7(), rfc3339(self._clock())
        second, fraction = divmod(time.time_ns() // 1000, 1_000_000)
        return uuid7(second * 1000 + fraction // 1000), f"{self._seconds(second)}.{fraction:06d}Z"

    def _enqueue(self, pending: _Pending) -> None:
        self._queue.append(pending)
        self._enqueued += 1
        self._wake.set()

    async def _sealed(self, type: str, fields: dict[str, Any]) -> tuple[AuditEvent, tuple[Any, ...] | None]:
        event, payload = self.event(type, **fields)
        return event, (await self._payload_row(event.subject, event.id, payload) if payload else None)

    def event(
        self,
        type: str,
        *,
        actor: Principal | Mapping[str, Any] | None = None,
        request_id: str | None = None,
        trace_id: str | None = None,
        target: Mapping[str, Any] | None = None,
        input: Any = None,
        output: Any = None,
        decision: Mapping[str, Any] | None = None,
        guard: Sequence[Mapping[str, Any]] = (),
        cost_usd: float | None = None,
        latency_ms: float | None = None,
        status: int | None = None,
        error: str | None = None,
        reason: str | None = None,
        reasoning: str | None = None,
        subject: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> tuple[AuditEvent, dict[str, Any]]:
        """The event, validated against the published schema, and its payloads."""
        event_id, when = self.stamp()
        fields: dict[str, Any] = {"seq": 0, "id": event_id, "time": when, "type": type}
        actor_fields = actor_of(actor) if isinstance(actor, Principal) or actor is None else dict(actor)
        for name, value in (
            ("actor", actor_fields),
            ("target", {k: v for k, v in (target or {}).items() if v is not None} or None),
            ("request_id", request_id),
            ("trace_id", trace_id),
            ("decision", dict(decision) if decision else None),
            ("cost_usd", cost_usd),
            ("latency_ms", None if latency_ms is None else round(latency_ms, 3)),
            ("status", status),
            ("error", error),
            ("reason", reason),
            ("subject", subject),
        ):
            if value is not None:
                fields[name] = value
        if guard:
            fields["guard"] = [dict(g) for g in guard]
        if data:
            fields["data"] = dict(data)
        payload: dict[str, Any] = {}
        if input is not None:
            fields["input_sha256"] = digest(input)
            if self.config.capture_content:
                payload["input"] = input
        if output is not None:
            fields["output_sha256"] = digest(output)
            if self.config.capture_content:
                payload["output"] = output
        if reasoning is not None:
            fields["reasoning_sha256"] = digest(reasoning)
            payload["reasoning"] = reasoning  # attached on purpose: always kept
        try:
            event = msgspec.convert(fields, AuditEvent)
        except msgspec.ValidationError as exc:
            raise InvalidRequest(f"Invalid audit event: {exc}") from None
        return event, payload

    async def _payload_row(self, subject: str | None, event_id: str, payload: dict[str, Any]) -> tuple[Any, ...]:
        """(subject, scheme, nonce, data) of an event's payloads, sealed for its subject."""
        plain = payload_bytes(payload)
        if self._cipher is None:
            return (subject, "plain", None, plain)
        subject = subject or "unattributed"
        nonce, data = await self._cipher.seal(subject, event_id, plain)
        return (subject, "aes-256-gcm", nonce, data)

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            if self._hurry.is_set() or self._waiting:
                # Let the requests that are finishing in this turn of the loop join the batch.
                await asyncio.sleep(0)
            else:  # only journaled events: durable already, so let more gather
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._hurry.wait(), _JOURNAL_DELAY)
            self._wake.clear()
            self._hurry.clear()
            while self._queue:
                if not await self._store_queue():
                    await asyncio.sleep(_RETRY_EVERY)
            self._release_flushes()
            if self._closing:
                return

    async def _store_queue(self) -> bool:
        """Store everything queued, in transactions of up to `max_batch`. False when a
        transaction failed: its waiters get the error, journaled events go back to the
        queue (they were answered: they must not be lost) and their files are kept."""
        if self._journal is not None and self._link is None:
            # Files closed now hold only events queued now or stored before.
            self._journal.rotate(_JOURNAL_MAX_AGE)
            self._retained += self._journal.take_closed()
        queued, self._queue = self._queue, []
        for start in range(0, len(queued), self.config.max_batch):
            batch = queued[start : start + self.config.max_batch]
            try:
                seqs = await self._append_batch(batch)
            except Exception as exc:
                _log.error("audit write failed: %s", _type_name(exc))
                return self._failed(queued[start:])
            self._committed(len(batch))
            self._settled += len(batch)
            for pending, seq in zip(batch, seqs, strict=True):
                if pending.future is not None:
                    self._waiting -= 1
                    if not pending.future.done():
                        pending.future.set_result(seq)
        if not self._queue:
            for segment in self._retained:
                segment.discard()
            self._retained.clear()
        return True

    def _failed(self, unstored: list[_Pending]) -> bool:
        """After a failed transaction: waiters get the error; journaled events go back to
        the front of the queue. True when nothing journaled was left over."""
        failure = AuditUnavailable("The audit ledger could not record this request, so it was not answered.")
        journaled = [p for p in unstored if p.future is None]
        for pending in unstored:
            if pending.future is not None:
                self._waiting -= 1
                self._settled += 1
                if not pending.future.done():
                    pending.future.set_exception(failure)
        self._queue[:0] = journaled
        return not journaled

    async def _append_batch(self, batch: list[_Pending]) -> list[int]:
        if self._direct is not None:
            return await self._direct.append(len(batch), self._sealer(batch))
        return await self.store.append_audit(len(batch), self._sealer(batch))

    async def _flush_journal(self) -> None:
        """Wait until the store process has stored every event journaled so far."""
        link, journal = self._link, self._journal
        if link is not None and journal is not None and not await link.flush(journal.position, _FLUSH_WAIT):
            _log.warning("audit store process: journaled events not stored after %.0f s", _FLUSH_WAIT)

    async def flush(self) -> None:
        """Wait until every event queued so far is stored (readers call this first)."""
        await self._flush_journal()
        target = self._enqueued
        if self._settled >= target or not self._tasks:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flushes.append((target, future))
        self._wake.set()
        self._hurry.set()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(future), _FLUSH_WAIT)

    def _release_flushes(self) -> None:
        self._flushes = release_reached(self._flushes, lambda target: self._settled >= target)

    @staticmethod
    def _sealer(batch: list[_Pending]) -> Callable[[int, int, str], SealedEvent]:
        return sealer([p.event for p in batch], [p.payload for p in batch])

    def _committed(self, count: int) -> None:
        self.commits += 1
        self.committed += count
        self._since_checkpoint += count

    # --- checkpoints and retention --------------------------------------------------------

    async def checkpoint(self) -> dict[str, Any] | None:
        """Sign a tree head over every event so far; None when there is nothing new."""
        await self.flush()
        async with self._checkpoint_lock:
            last = await self.store.latest_checkpoint()
            if last is None:
                tree, start = merkle.CompactTree(), 1
            else:
                nodes = [bytes.fromhex(h) for h in json.loads(last["frontier"])]
                tree = merkle.CompactTree.from_state(int(last["tree_size"]), nodes)
                start = tree.size + 1
            size, _ = await self.store.audit_tail()
            if size < start:
                return None
            async for _, body in self.store.audit_bodies(start, size):
                tree.append(merkle.leaf_hash(body.encode()))
            row = self.signer.checkpoint(tree.size, tree.root(), tree.nodes, self._clock())
            self._since_checkpoint = 0
            await self.store.add_checkpoint(row)
            return row

    async def _checkpoints(self) -> None:
        while True:
            await asyncio.sleep(self.config.checkpoint_interval)
            if self._since_checkpoint == 0:
                continue
            try:
                await self.checkpoint()
            except Exception as exc:
                _log.warning("audit checkpoint failed: %s", type(exc).__name__)

    async def _tidy(self) -> None:
        assert self._direct is not None
        seen = self.commits
        while True:
            await asyncio.sleep(_TIDY_EVERY)
            if self.commits == seen:
                continue
            seen = self.commits
            try:
                await self._direct.tidy()
            except Exception as exc:
                _log.warning("audit WAL checkpoint failed: %s", type(exc).__name__)

    async def _retention(self) -> None:
        while True:
            await asyncio.sleep(_RETENTION_EVERY)
            try:
                cutoff = self._clock() - timedelta(days=self.config.retention_days)
                removed = await self.store.prune_payloads(cutoff)
                if removed:
                    _log.info("audit retention removed %d payloads", removed)
            except Exception as exc:
                _log.warning("audit retention failed: %s", type(exc).__name__)

    # --- reading ----------------------------------------------------------------------------

    async def search(
        self,
        *,
        type: str | None = None,
        request_id: str | None = None,
        agent: str | None = None,
        principal: str | None = None,
        model: str | None = None,
        decision: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before_seq: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Events, newest first, as the published schema shapes them (plus `chain`)."""
        await self.flush()
        filters = {
            k: v
            for k, v in (
                ("type", type), ("request_id", request_id), ("agent", agent),
                ("principal", principal), ("model", model), ("decision", decision),
            )
            if v is not None
        }
        rows = await self.store.search_audit(
            filters=filters, since=since, until=until, before_seq=before_seq, limit=max(1, min(limit, 1000))
        )
        return [{**json.loads(body), "chain": chain} for _, body, chain in rows]

    async def payload(self, seq: int, event_id: str) -> dict[str, Any] | None:
        """The event's payloads in clear; None when none is kept (or it was shredded)."""
        await self.flush()
        row = await self.store.audit_payload(seq)
        if row is None:
            return None
        data = bytes(row["data"])
        if row["scheme"] != "plain":
            if self._cipher is None:
                return None
            opened = await self._cipher.open(str(row["subject"]), event_id, bytes(row["nonce"]), data)
            if opened is None:
                return None
            data = opened
        return json.loads(data)

    async def shred(self, subject: str) -> bool:
        if self._cipher is not None:
            self._cipher.forget(subject)
        return await self.store.shred_subject(subject)


def _type_name(exc: BaseException) -> str:
    return type(exc).__name__
