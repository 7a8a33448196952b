"""The ledger's store process (SQLite with the journal): journaled events reach the
tables through a process of their own, in order, exactly once, whatever dies."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from lockgate.audit.checkpoint import load_signer
from lockgate.audit.journal import Journal, frames_from, journal_dir, orphans
from lockgate.audit.ledger import Ledger
from lockgate.audit.verify import verify_database
from lockgate.config.audit import AuditConfig
from lockgate.core.context import Principal
from lockgate.store import Store

ALICE = Principal(id="k1", kind="key", label="lg-Abc123", agent_name="planner")


def _rows(url: str) -> list[tuple[int, str, str]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = [(int(r[0]), str(r[1]), str(r[2])) for r in conn.execute(text("SELECT seq, type, request_id FROM audit_events ORDER BY seq"))]
    engine.dispose()
    return rows


async def _ledger(tmp_path: Path, max_batch: int = 512) -> tuple[str, Path, Store, Ledger]:
    url = f"sqlite:///{tmp_path}/l.db"
    directory = journal_dir(str(tmp_path / "l.db"))
    store = await Store.open(url)
    ledger = Ledger(store, AuditConfig(checkpoint_interval=0, capture_content=True, max_batch=max_batch),
                    signer=load_signer(None, None), writer_url=url, journal=directory, store_process=True)
    await ledger.start()
    assert ledger._link is not None, "the store process started"  # pyright: ignore[reportPrivateUsage]
    return url, directory, store, ledger


async def _append(ledger: Ledger, first: int, count: int) -> None:
    for i in range(first, first + count):
        await ledger.append("gateway.request", actor=ALICE, request_id=f"req-{i}", target={"model": "m"},
                            input={"q": i}, output=f"a{i}", cost_usd=1e-6 * (i + 1), latency_ms=0.5, status=200)


async def _until(check: Callable[[], bool], seconds: float) -> bool:
    for _ in range(int(seconds / 0.02)):
        if check():
            return True
        await asyncio.sleep(0.02)
    return check()


def _pid(ledger: Ledger) -> int:
    link = ledger._link  # pyright: ignore[reportPrivateUsage]
    assert link is not None and link._proc is not None  # pyright: ignore[reportPrivateUsage]
    return link._proc.pid  # pyright: ignore[reportPrivateUsage]


async def test_journaled_events_reach_the_tables_in_order_and_the_files_go(tmp_path: Path) -> None:
    url, directory, store, ledger = await _ledger(tmp_path)
    try:
        await _append(ledger, 0, 30)
        seq = await ledger.record("admin.change", actor=ALICE, reason="after the requests")
        assert seq == 31, "record() waits for the journaled events before it"
        found = await ledger.search(limit=1000)  # a reader sees every event appended before it
        assert len(found) == 31
        await _append(ledger, 30, 5)
        pid = _pid(ledger)
    finally:
        await ledger.aclose()
        await store.aclose()
    rows = _rows(url)
    assert [r[2] for r in rows if r[1] == "gateway.request"] == [f"req-{i}" for i in range(35)]
    assert [r[0] for r in rows] == list(range(1, 37))
    assert list(directory.iterdir()) == [], "every journal file and the writer's marker are gone"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the store process ended with the gateway
    assert verify_database(url).ok


async def test_a_killed_store_process_is_replaced_and_nothing_is_lost_or_doubled(tmp_path: Path) -> None:
    url, directory, store, ledger = await _ledger(tmp_path)
    try:
        await _append(ledger, 0, 20)
        await ledger.flush()
        first = _pid(ledger)
        await _append(ledger, 20, 20)  # journaled; perhaps partly stored when it dies
        os.kill(first, signal.SIGKILL)
        await _append(ledger, 40, 20)  # journaled while no store process runs
        link = ledger._link  # pyright: ignore[reportPrivateUsage]
        assert link is not None
        assert await _until(lambda: link.restarts > 0, 30)
        assert link.restarts == 1 and _pid(ledger) != first
        assert len(await ledger.search(limit=1000)) == 60
    finally:
        await ledger.aclose()
        await store.aclose()
    ids = [r[2] for r in _rows(url)]
    assert sorted(ids) == sorted(f"req-{i}" for i in range(60)), "each event exactly once"
    assert list(directory.iterdir()) == []
    assert verify_database(url).ok


async def test_full_files_are_handed_over_and_deleted_once_stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("lockgate.audit.journal.SEGMENT_BYTES", 4096)  # a few events a file
    url, directory, store, ledger = await _ledger(tmp_path, max_batch=7)  # transactions split files too
    try:
        await _append(ledger, 0, 120)
        journal = ledger._journal  # pyright: ignore[reportPrivateUsage]
        assert journal is not None and journal.current.generation >= 5
        await ledger.flush()
        link = ledger._link  # pyright: ignore[reportPrivateUsage]
        assert link is not None
        # The "done" of the last full file may still be on its way.
        await _until(lambda: len(list(directory.glob("*.journal"))) == 1, 10)
        assert [p.name for p in directory.glob("*.journal")] == [journal.current_path.name]
        assert len(link._files) == 1  # pyright: ignore[reportPrivateUsage]
    finally:
        await ledger.aclose()
        await store.aclose()
    assert [r[2] for r in _rows(url)] == [f"req-{i}" for i in range(120)]


def test_recovery_waits_for_a_draining_store_process(tmp_path: Path) -> None:
    """The gateway is gone (its marker unlocked) but its store process still holds a
    file: recovery waits, then takes what is left, or nothing when it was deleted."""
    for deleted in (False, True):
        directory = tmp_path / f"j{deleted}"
        journal = Journal(directory)
        journal.write(b"event")
        path = journal.current_path
        held = os.open(path, os.O_RDONLY)  # the store process's own description, locked...
        journal.close(discard=False)  # ... the gateway's gone, marker unlocked
        import fcntl

        fcntl.flock(held, fcntl.LOCK_EX)

        def finish(held: int = held, path: Path = path, deleted: bool = deleted) -> None:
            time.sleep(0.3)
            if deleted:
                path.unlink()
            os.close(held)

        threading.Thread(target=finish).start()
        started = time.monotonic()
        found = orphans(directory)
        assert time.monotonic() - started >= 0.25, "it waited for the drain"
        assert [o.path for o in found] == ([] if deleted else [path])
        for orphan in found:
            orphan.segment.close()
        if deleted:
            assert list(directory.iterdir()) == [], "the dead writer's marker is tidied away"


def test_a_live_writers_files_are_left_alone(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    journal.write(b"event")
    started = time.monotonic()
    assert orphans(tmp_path / "j") == []
    assert time.monotonic() - started < 5, "no waiting on a live writer (a drain is waited for up to 15 s)"
    journal.close(discard=True)
    assert list((tmp_path / "j").iterdir()) == []


def test_frames_from_stops_at_a_limit_and_at_a_frame_being_written(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j", segment_bytes=4096)
    for i in range(5):
        journal.write(b"frame-%d" % i)
    data = journal.current_path.read_bytes()
    frames, end = frames_from(data, 0, 2)
    assert frames == [b"frame-0", b"frame-1"]
    rest, stop = frames_from(data, end)
    assert rest == [b"frame-2", b"frame-3", b"frame-4"] and stop == journal.position[1]
    torn = bytearray(data)
    torn[stop : stop + 8] = (7).to_bytes(4, "big") + (0).to_bytes(4, "big")  # a header, its body not yet there
    assert frames_from(bytes(torn), end) == (rest, stop)
    journal.close(discard=True)


async def test_a_store_process_that_cannot_start_leaves_the_work_to_the_gateway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path}/l.db"
    store = await Store.open(url)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "missing" / "python"))  # cannot be executed
    ledger = Ledger(store, AuditConfig(checkpoint_interval=0), signer=load_signer(None, None),
                    writer_url=url, journal=journal_dir(str(tmp_path / "l.db")), store_process=True)
    await ledger.start()
    try:
        assert ledger._link is None and ledger.healthy  # pyright: ignore[reportPrivateUsage]
        await _append(ledger, 0, 10)
        assert len(await ledger.search(limit=100)) == 10
    finally:
        await ledger.aclose()
        await store.aclose()


async def test_while_it_is_being_restarted_the_ledger_is_unhealthy_and_events_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _url, directory, store, ledger = await _ledger(tmp_path)
    real = sys.executable
    try:
        assert ledger.healthy
        monkeypatch.setattr(sys, "executable", "/bin/false")  # the replacements fail to start
        os.kill(_pid(ledger), signal.SIGKILL)
        assert await _until(lambda: not ledger.healthy, 10)
        await _append(ledger, 0, 10)  # answered all the same: durable in the journal
        await asyncio.sleep(1.0)  # a failed restart or two
        assert not ledger.healthy
        monkeypatch.setattr(sys, "executable", real)
        assert await _until(lambda: ledger.healthy, 30)
        assert len(await ledger.search(limit=100)) == 10
    finally:
        await ledger.aclose()
        await store.aclose()
    assert list(directory.iterdir()) == []
