"""The ledger's journal (SQLite): `append` is durable once journaled; a ledger that
dies before storing leaves its events to the next one, which stores each exactly once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from lockgate.audit.checkpoint import load_signer
from lockgate.audit.journal import Journal, journal_dir, orphans, read_frames
from lockgate.audit.ledger import Ledger
from lockgate.audit.verify import verify_database
from lockgate.config.audit import AuditConfig
from lockgate.core.context import Principal
from lockgate.store import Store

ALICE = Principal(id="k1", kind="key", label="lg-Abc123", agent_name="planner")


def _request_ids(url: str) -> list[str]:
    engine = create_engine(url)
    with engine.connect() as conn:
        ids = [str(r[0]) for r in conn.execute(text("SELECT request_id FROM audit_events ORDER BY seq"))]
    engine.dispose()
    return ids


def _paths(tmp_path: Path) -> tuple[str, Path]:
    """The database URL and its journal directory."""
    return f"sqlite:///{tmp_path}/l.db", journal_dir(str(tmp_path / "l.db"))


async def _ledger(url: str, journal: Path) -> tuple[Store, Ledger]:
    store = await Store.open(url)
    ledger = Ledger(store, AuditConfig(checkpoint_interval=0, capture_content=True), signer=load_signer(None, None),
                    writer_url=url, journal=journal)
    await ledger.start()
    return store, ledger


async def _append(ledger: Ledger, first: int, count: int) -> None:
    for i in range(first, first + count):
        await ledger.append("gateway.request", actor=ALICE, request_id=f"req-{i}", target={"model": "m"},
                            input={"q": i}, output=f"a{i}", cost_usd=1e-6 * (i + 1), latency_ms=0.5, status=200)


def _crash(ledger: Ledger) -> None:
    """What SIGKILL leaves: the writer gone before it stored the queue, its files unlocked."""
    for task in ledger._tasks:  # pyright: ignore[reportPrivateUsage]
        task.cancel()
    journal = ledger._journal  # pyright: ignore[reportPrivateUsage]
    assert journal is not None
    os.close(journal._current.fd)  # pyright: ignore[reportPrivateUsage]
    for segment in ledger._retained:  # pyright: ignore[reportPrivateUsage]
        os.close(segment.fd)


def test_frames_round_trip_and_a_torn_tail_ends_the_file(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    for body in (b"one", b"two", b"x" * 5000):
        journal.write(body)
    (path,) = (tmp_path / "j").glob("*.journal")
    data = path.read_bytes()
    assert list(read_frames(data)) == [b"one", b"two", b"x" * 5000]
    assert list(read_frames(data[:-1])) == [b"one", b"two"]  # cut mid-frame
    corrupt = bytearray(data)
    corrupt[9] ^= 0xFF  # inside the first body: its CRC fails, nothing after it is trusted
    assert list(read_frames(bytes(corrupt))) == []
    assert orphans(tmp_path / "j") == []  # its writer holds it
    journal.close()
    assert len(orphans(tmp_path / "j")) == 1  # written and let go: an orphan


async def test_appended_events_reach_the_tables_and_the_journal_empties(tmp_path: Path) -> None:
    url, journal = _paths(tmp_path)
    store, ledger = await _ledger(url, journal)
    try:
        await _append(ledger, 0, 30)
        assert len(await ledger.search(limit=100)) == 30  # readers flush first
        await ledger.flush()
        assert sorted(p.name for p in journal.glob("*.journal")) == sorted(
            [ledger._journal._current.path.name]  # pyright: ignore[reportPrivateUsage, reportOptionalMemberAccess]
        )
    finally:
        await ledger.aclose()
        await store.aclose()
    assert list(journal.glob("*.journal")) == []
    assert _request_ids(url) == [f"req-{i}" for i in range(30)]
    assert verify_database(url).ok


async def test_a_dead_writers_journal_is_stored_once_by_the_next_ledger(tmp_path: Path) -> None:
    url, journal = _paths(tmp_path)
    store, ledger = await _ledger(url, journal)
    await _append(ledger, 0, 5)
    await ledger.flush()  # 0-4 stored ...
    await _append(ledger, 5, 5)  # ... 5-9 only journaled
    _crash(ledger)
    await store.aclose()
    assert _request_ids(url) == [f"req-{i}" for i in range(5)]

    store, ledger = await _ledger(url, journal)  # recovers on start
    try:
        await _append(ledger, 10, 2)
        await ledger.flush()
    finally:
        await ledger.aclose()
        await store.aclose()
    assert _request_ids(url) == [f"req-{i}" for i in range(12)]
    assert list(journal.glob("*.journal")) == []
    assert verify_database(url).ok


async def test_events_stored_before_the_crash_are_not_stored_twice(tmp_path: Path) -> None:
    """The writer committed, then died before deleting the journal file."""
    url, journal = _paths(tmp_path)
    store, ledger = await _ledger(url, journal)
    await _append(ledger, 0, 6)
    kept = [p.read_bytes() for p in journal.glob("*.journal") if p.stat().st_size]
    await ledger.flush()
    _crash(ledger)
    await store.aclose()
    assert kept, "the events were journaled"
    (journal / "0-0000000000.journal").write_bytes(b"".join(kept))  # as if never deleted
    store, ledger = await _ledger(url, journal)
    await ledger.aclose()
    await store.aclose()
    assert _request_ids(url) == [f"req-{i}" for i in range(6)]
    assert verify_database(url).ok


async def test_a_full_disk_refuses_the_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lockgate.audit.ledger import AuditUnavailable

    url, journal = _paths(tmp_path)
    store, ledger = await _ledger(url, journal)
    try:
        def full(fd: int, data: bytes) -> int:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr("lockgate.audit.journal.os.write", full)
        with pytest.raises(AuditUnavailable):
            await _append(ledger, 0, 1)
        monkeypatch.undo()
        await _append(ledger, 1, 1)
    finally:
        await ledger.aclose()
        await store.aclose()
    assert _request_ids(url) == ["req-1"]


async def test_journaled_events_outlive_a_failed_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """They were answered: a failing database delays them, it never drops them."""
    import lockgate.audit.ledger as ledger_module

    monkeypatch.setattr(ledger_module, "_RETRY_EVERY", 0.01)
    url, journal = _paths(tmp_path)
    store, ledger = await _ledger(url, journal)
    real = ledger._append_batch  # pyright: ignore[reportPrivateUsage]
    failures = [2]

    async def flaky(batch: list[object]) -> list[int]:
        if failures[0]:
            failures[0] -= 1
            raise OSError("disk I/O error")
        return await real(batch)  # pyright: ignore[reportArgumentType]

    monkeypatch.setattr(ledger, "_append_batch", flaky)
    try:
        await _append(ledger, 0, 4)
        await ledger.flush()
        assert failures == [0]
        assert _request_ids(url) == [f"req-{i}" for i in range(4)]
    finally:
        await ledger.aclose()
        await store.aclose()
    assert list(journal.glob("*.journal")) == []
