"""Offline verification of the ledger, from the database or from an export.

Checks, in one pass over the events in order:
- sequence numbers run 1, 2, 3, ... with no gap or repeat (a deleted or inserted row);
- each body is a valid event (the published schema) whose `seq` is its row's, and the
  search columns copied out of it agree with it (a row edited behind the body's back);
- the hash chain: chain = SHA-256(previous chain || leaf hash of body) (an edited,
  inserted, removed or reordered entry breaks it at that entry);
- every signed checkpoint: its Merkle root equals the root recomputed over the first
  `tree_size` bodies, its Ed25519 signature is good (by a pinned key when given), and
  no checkpoint covers more events than the ledger holds (deleted tail);
- for an export: each event's inclusion proof against the export's signed checkpoint.

The first problem names the entry. Verification needs no running gateway and no key
but the public one.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import text

from lockgate.audit import merkle
from lockgate.audit.checkpoint import verify_signature
from lockgate.audit.event import AuditEvent, search_columns
from lockgate.store._audit import GENESIS
from lockgate.store._engine import make_sync_engine

__all__ = ["Problem", "Report", "verify_database", "verify_export", "verify_stream"]

_MAX_PROBLEMS = 50
_decode = msgspec.json.Decoder(AuditEvent).decode
_COLUMNS = ("id", "type", "request_id", "principal", "agent", "model", "decision", "status")


@dataclass(frozen=True, slots=True)
class Problem:
    seq: int | None
    message: str

    def __str__(self) -> str:
        return f"seq {self.seq}: {self.message}" if self.seq is not None else self.message


@dataclass(slots=True)
class Report:
    events: int = 0
    checkpoints: int = 0
    proofs: int = 0
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=lambda: [])
    root: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    def add(self, seq: int | None, message: str) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(Problem(seq, message))

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "checkpoints": self.checkpoints,
            "proofs": self.proofs,
            "root_hash": self.root,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.events / self.seconds) if self.seconds else None,
            "first_problem": str(self.first) if self.first else None,
            "problems": [str(p) for p in self.problems],
        }


def _expected(event: AuditEvent) -> tuple[Any, ...]:
    return (event.id, event.type, *search_columns(event))


def _time_of(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(str(value)).astimezone(UTC)


def verify_stream(
    rows: Iterable[tuple[int, str, str, tuple[Any, ...] | None, Any]],
    checkpoints: list[dict[str, Any]],
    *,
    trusted_keys: set[str] | None = None,
    first_seq: int = 1,
    prev_chain: str = GENESIS,
    report: Report | None = None,
) -> Report:
    """`rows` are (seq, body, chain, search columns or None, time or None) in seq order."""
    report = report or Report()
    started = time.perf_counter()
    pending = sorted(checkpoints, key=lambda c: int(c["tree_size"]))
    for cp in pending:
        problem = verify_signature(cp, trusted_keys)
        if problem:
            report.add(None, f"checkpoint at tree size {cp['tree_size']}: {problem}")
    next_cp = 0
    tree = merkle.CompactTree() if first_seq == 1 else None
    expected_seq = first_seq
    sha = hashlib.sha256
    leaf_prefix = b"\x00"
    count = 0
    for seq, body, chain, columns, when in rows:
        count += 1
        if seq != expected_seq:
            if seq > expected_seq:
                report.add(expected_seq, f"missing: the ledger jumps from seq {expected_seq - 1} to {seq} (entries deleted)")
            else:
                report.add(seq, f"out of order or repeated after seq {expected_seq - 1} (an entry inserted or moved)")
            expected_seq = seq
        expected_seq += 1
        raw = body.encode()
        leaf = sha(leaf_prefix + raw).digest()
        computed = sha(bytes.fromhex(prev_chain) + leaf).hexdigest()
        if computed != chain:
            report.add(seq, "chain hash mismatch: this entry was changed, or one before it was inserted, removed or reordered")
        prev_chain = chain
        _check_body(report, seq, raw, columns, when)
        if tree is not None:
            tree.append(leaf)
            while next_cp < len(pending) and int(pending[next_cp]["tree_size"]) == tree.size:
                cp = pending[next_cp]
                if tree.root().hex() != cp["root_hash"]:
                    report.add(seq, f"the Merkle root over the first {tree.size} events differs from the signed checkpoint")
                report.checkpoints += 1
                next_cp += 1
    if tree is not None:
        for cp in pending[next_cp:]:
            report.add(None, f"checkpoint at tree size {cp['tree_size']} covers more events than the ledger holds ({tree.size}): entries at the end were deleted")
        report.root = tree.root().hex()
    report.events += count
    report.seconds += time.perf_counter() - started
    return report


def _check_body(report: Report, seq: int, raw: bytes, columns: tuple[Any, ...] | None, when: Any) -> None:
    """The body is a valid event of this seq, and the copied-out columns agree with it."""
    try:
        event = _decode(raw)
    except msgspec.DecodeError as exc:  # ValidationError included
        report.add(seq, f"not a valid audit event: {exc}")
        return
    if event.seq != seq:
        report.add(seq, f"the event says seq {event.seq} but is stored at seq {seq} (reordered)")
    if columns is not None and columns != _expected(event):
        report.add(seq, "search columns disagree with the hashed event (the row was edited)")
    if when is not None and _time_of(when) != datetime.fromisoformat(event.time):
        report.add(seq, "the time column disagrees with the hashed event (the row was edited)")


def verify_database(url: str, *, trusted_keys: set[str] | None = None) -> Report:
    engine = make_sync_engine(url)
    try:
        with engine.connect() as conn:
            checkpoints = [
                dict(r._mapping)  # pyright: ignore[reportPrivateUsage]
                for r in conn.execute(
                    text("SELECT tree_size, root_hash, time, key_id, public_key, signature FROM audit_checkpoints ORDER BY tree_size")
                )
            ]
            result = conn.execution_options(stream_results=True, yield_per=5000).exec_driver_sql(
                "SELECT seq, body, chain, id, type, request_id, principal, agent, model, decision, status, time "
                "FROM audit_events ORDER BY seq"
            )

            def rows() -> Iterator[tuple[int, str, str, tuple[Any, ...], Any]]:
                for r in result:
                    yield int(r[0]), r[1], r[2], tuple(r[3:11]), r[11]

            return verify_stream(rows(), checkpoints, trusted_keys=trusted_keys)
    finally:
        engine.dispose()


def verify_export(path: Path, *, trusted_keys: set[str] | None = None) -> Report:
    """An export (`lockgate audit export`): its header checkpoint, its chain from the
    header's `prev_chain`, and each event's inclusion proof against the checkpoint."""
    report = Report()
    with path.open("rb") as fh:
        header_line = fh.readline()
        try:
            header = json.loads(header_line)
            checkpoint: dict[str, Any] | None = header.get("checkpoint")
            first_seq = int(header["first_seq"])
            prev_chain = str(header["prev_chain"])
        except (ValueError, KeyError, TypeError):
            report.add(None, "not a lockgate audit export: the first line is not its header")
            return report
        root = bytes.fromhex(checkpoint["root_hash"]) if checkpoint else None
        size = int(checkpoint["tree_size"]) if checkpoint else 0
        proofs: list[tuple[int, bytes, list[str]]] = []

        def rows() -> Iterator[tuple[int, str, str, None, None]]:
            for line in fh:
                line = line.rstrip(b"\n")
                cut = line.find(b',"event":')
                if cut < 0:
                    report.add(None, "a line without an event")
                    continue
                meta = json.loads(line[:cut] + b"}")
                body = line[cut + 9 : -1].decode()
                seq = int(meta["seq"])
                if root is not None and seq <= size:
                    proofs.append((seq, merkle.leaf_hash(body.encode()), list(meta.get("proof", []))))
                yield seq, body, str(meta["chain"]), None, None

        verify_stream(
            rows(),
            [checkpoint] if checkpoint and first_seq == 1 else [],
            trusted_keys=trusted_keys,
            first_seq=first_seq,
            prev_chain=prev_chain,
            report=report,
        )
        if checkpoint and first_seq != 1:
            problem = verify_signature(checkpoint, trusted_keys)
            if problem:
                report.add(None, f"checkpoint at tree size {size}: {problem}")
            report.checkpoints += 1
        started = time.perf_counter()
        for seq, leaf, proof in proofs:
            if not merkle.verify_inclusion(leaf, seq - 1, size, [bytes.fromhex(p) for p in proof], root or b""):
                report.add(seq, f"inclusion proof does not lead to the signed root of tree size {size}")
            report.proofs += 1
        report.seconds += time.perf_counter() - started
    return report
