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
    for segment in [journal._current, *journal._closed, *ledger._retained]:  # pyright: ignore[reportPrivateUsage]
        segment.close()  # unmapped, unlocked, the file left as it is


def test_frames_round_trip_and_a_torn_tail_ends_the_file(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    for body in (b"one", b"two", b"x" * 5000):
        journal.write(body)
    (path,) = (tmp_path / "j").glob("*.journal")
    data = path.read_bytes()
    end = 3 * 8 + 3 + 3 + 5000  # three headers and bodies; the rest of the file is zeros
    assert len(data) > end and not any(data[end:])
    assert list(read_frames(data)) == [b"one", b"two", b"x" * 5000]
    assert list(read_frames(data[: end - 1])) == [b"one", b"two"]  # cut mid-frame
    corrupt = bytearray(data)
    corrupt[9] ^= 0xFF  # inside the first body: its CRC fails, nothing after it is trusted
    assert list(read_frames(bytes(corrupt))) == []
    assert orphans(tmp_path / "j") == []  # its writer holds it
    assert journal.close(discard=False) == []
    assert len(orphans(tmp_path / "j")) == 1  # written and let go: an orphan


async def test_appended_events_reach_the_tables_and_the_journal_empties(tmp_path: Path) -> None:
    url, journal = _paths(tmp_path)
    store, ledger = await _ledger(url, journal)
    try:
        await _append(ledger, 0, 30)
        assert len(await ledger.search(limit=100)) == 30  # readers flush first
        await ledger.flush()
        assert ledger._journal is not None  # pyright: ignore[reportPrivateUsage]
        assert [p.name for p in journal.glob("*.journal")] == [ledger._journal.current_path.name]  # pyright: ignore[reportPrivateUsage]
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
    """Space for a journal file is reserved when it is opened: a full disk refuses the
    event that needs the next file, and nothing accepted before it is lost."""
    from lockgate.audit.ledger import AuditUnavailable

    monkeypatch.setattr("lockgate.audit.journal.SEGMENT_BYTES", 4096)
    url, journal = _paths(tmp_path)
    store, ledger = await _ledger(url, journal)
    accepted = 0
    real = os.posix_fallocate
    try:
        def full(fd: int, offset: int, length: int) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr("lockgate.audit.journal.os.posix_fallocate", full)
        with pytest.raises(AuditUnavailable):
            for accepted in range(100):  # ~600 bytes each: the 4 KiB file fills
                await _append(ledger, accepted, 1)
        assert 0 < accepted < 100
        monkeypatch.setattr("lockgate.audit.journal.os.posix_fallocate", real)
        await _append(ledger, 1000, 1)
    finally:
        await ledger.aclose()
        await store.aclose()
    assert _request_ids(url) == [f"req-{i}" for i in range(accepted)] + ["req-1000"]
    assert list(journal.glob("*.journal")) == []


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


def test_a_full_file_is_closed_and_a_large_frame_gets_a_file_of_its_own(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j", segment_bytes=4096)
    first = journal.current_path
    for i in range(10):
        journal.write(b"%d" % i * 1000)  # ~1 KB each: four fit in 4 KiB
    big = b"y" * 20_000
    journal.write(big)
    closed = journal.take_closed()
    assert closed[0].path == first and len(closed) >= 3
    frames = [f for s in closed for f in read_frames(s.path.read_bytes())]
    frames += list(read_frames(journal.current_path.read_bytes()))
    assert frames == [b"%d" % i * 1000 for i in range(10)] + [big]
    journal.rotate(older_than=3600)  # young: kept
    assert journal.take_closed() == []
    held = journal.current_path
    journal.rotate(older_than=0)
    (rotated,) = journal.take_closed()
    assert rotated.path == held != journal.current_path
    for segment in [*closed, rotated]:
        segment.discard()
    assert journal.close(discard=True) == []
    assert list((tmp_path / "j").glob("*.journal")) == []


async def test_a_journal_from_before_gateway_records_is_recovered(tmp_path: Path) -> None:
    """Frames as the previous release wrote them (an untagged event and payload)."""
    from lockgate.audit.frames import LegacyEntry, encode_frame

    url, journal = _paths(tmp_path)
    store, ledger = await _ledger(url, journal)
    old = [ledger.event("gateway.request", actor=ALICE, request_id=f"old-{i}", status=200)[0] for i in range(3)]
    await ledger.aclose()
    await store.aclose()
    writer = Journal(journal)
    for event in old:
        writer.write(encode_frame(LegacyEntry(event, None)))
    writer.close(discard=False)
    store, ledger = await _ledger(url, journal)
    await ledger.aclose()
    await store.aclose()
    assert _request_ids(url) == ["old-0", "old-1", "old-2"]
    assert list(journal.glob("*.journal")) == []
    assert verify_database(url).ok
