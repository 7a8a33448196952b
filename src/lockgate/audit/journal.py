"""The ledger's journal: events accepted but not yet in the ledger's tables (SQLite).

Why it exists: a SQLite transaction per request costs 50 µs of CPU with warm caches
and twice that inside a busy gateway, so one commit per request at low concurrency
cost a quarter of the gateway's throughput. A journal write is one `write(2)` (about
2 µs): once it returns, the event survives the gateway being killed, the same promise
a SQLite commit makes with `synchronous=NORMAL` (both are in the kernel's page cache;
neither survives a power cut without `fsync`). The ledger's writer then moves journaled
events into the tables in batches, a few milliseconds later, and deletes the journal
files whose events are all in.

Files: `<database>-audit-journal/<writer id>-<generation>.journal`, one writer per
gateway process, each file held with an exclusive `flock` while its writer lives. A
frame is a 4-byte big-endian length, the CRC-32 of the body, and the body (msgpack). A
frame cut short by a crash fails its length or CRC check and ends the file.

Recovery: a file nobody holds belongs to a gateway that died; the next ledger to open
(a gateway starting, or a `lockgate audit` command) replays its events, skipping those
already in the tables (the writer may have died between the commit and the delete),
and deletes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

__all__ = ["Journal", "Orphan", "journal_dir", "orphans"]

_HEADER = struct.Struct(">II")
_SUFFIX = ".journal"


def journal_dir(database_path: str) -> Path:
    """The journal directory of a SQLite database file."""
    return Path(database_path + "-audit-journal")


class Segment:
    """One journal file, closed for writing: deleted once its events are in the tables."""

    __slots__ = ("fd", "path")

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        with contextlib.suppress(OSError):
            os.close(self.fd)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class Journal:
    """The journal files one ledger writes (not thread-safe: the event loop's only)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._dir = directory
        self._id = uuid.uuid4().hex
        self._generation = 0
        self._written = False
        self._current = self._open()

    def _open(self) -> Segment:
        path = self._dir / f"{self._id}-{self._generation:010d}{_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new name: nobody else holds it
        return Segment(fd, path)

    def write(self, body: bytes) -> None:
        """Append one frame: durable (against a crash of this process) when it returns."""
        frame = _HEADER.pack(len(body), zlib.crc32(body)) + body
        written = os.write(self._current.fd, frame)
        if written != len(frame):  # a regular file only writes short when the disk is full
            raise OSError(f"short journal write ({written} of {len(frame)} bytes)")
        self._written = True

    def rotate(self) -> Segment | None:
        """Close the current file for writing (None when nothing was written to it) and
        start the next; the caller discards the old one once its events are stored."""
        if not self._written:
            return None
        old = self._current
        self._generation += 1
        self._current = self._open()
        self._written = False
        return old

    def close(self) -> None:
        """Stop writing; an empty current file is deleted, one with events is left for
        recovery (the caller stores and discards it first when it can)."""
        if self._written:
            self._current.close()
        else:
            self._current.discard()


class Orphan:
    """A journal file of a writer that is gone, held by us while we replay it."""

    def __init__(self, fd: int, path: Path) -> None:
        self.segment = Segment(fd, path)

    @property
    def path(self) -> Path:
        return self.segment.path

    def frames(self) -> list[bytes]:
        return list(read_frames(self.path.read_bytes()))


def read_frames(data: bytes) -> Iterator[bytes]:
    """Every whole frame; stops at the first torn or corrupt one (a crash mid-write)."""
    at = 0
    while at + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, at)
        body = data[at + _HEADER.size : at + _HEADER.size + length]
        if len(body) != length or zlib.crc32(body) != crc:
            return
        yield body
        at += _HEADER.size + length


def orphans(directory: Path) -> list[Orphan]:
    """Journal files no live writer holds, oldest first within each writer, locked for
    the caller (two recovering processes never replay the same file)."""
    if not directory.is_dir():
        return []
    found: list[Orphan] = []
    for path in sorted(directory.glob(f"*{_SUFFIX}")):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # its writer finished with it meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # a live writer holds it
            continue
        if not path.exists():  # discarded between our open and our lock
            os.close(fd)
            continue
        found.append(Orphan(fd, path))
    return found
