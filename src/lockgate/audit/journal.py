"""The ledger's journal: events accepted but not yet in the ledger's tables (SQLite).

Why it exists: a SQLite transaction per request costs 50 µs of CPU with warm caches
and twice that inside a busy gateway, so one commit per request at low concurrency
cost a quarter of the gateway's throughput. A journal write is a copy into a shared
memory mapping of a preallocated file: once it is done, the bytes are in the kernel's
page cache and the event survives the gateway being killed, the same promise a SQLite
commit makes with `synchronous=NORMAL` (neither survives a power cut without `fsync`).
The ledger's writer then moves journaled events into the tables in batches, a few
milliseconds later, and deletes the journal files whose events are all in.

Why a mapping and not `write(2)`: inside a busy gateway each `write(2)` to an ext4 file
cost 7 to 14 µs of CPU (inode lock, time stamps, block reservation), a copy into the
mapping costs well under one. The file's blocks are reserved up front
(`posix_fallocate`), so a full disk refuses the event when a file is opened (a clear
`OSError`), never with a `SIGBUS` on a later copy.

Files: `<database>-audit-journal/<writer id>-<generation>.journal`, one writer per
gateway process, each file held with an exclusive `flock` while its writer lives, and
`segment_bytes` long (1 MiB: a few thousand events; a larger event gets a file of its
own size). A frame is a 4-byte big-endian length, the CRC-32 of the body, and the body
(msgpack). The unwritten rest of a file is zeros; a zero length, or a frame cut short
by a crash, fails the check and ends the file.

A file is closed when it is full, or when the ledger asks (`rotate`, for files that
grew old); the ledger deletes closed files once every event in them is stored. The
current file can hold events already stored: recovery skips those.

With a store process (`storer.py`), the gateway hands it each file's descriptor, and
with it the `flock`; the store process deletes the files. Each writer also holds
`<writer id>.live` locked while it lives: a file locked while its writer's marker is
not is being drained by the store process of a gateway that is gone.

Recovery: a file nobody holds belongs to a gateway that died; the next ledger to open
(a gateway starting, or a `lockgate audit` command) replays its events, skipping those
already in the tables (the writer may have died between the commit and the delete),
and deletes it. It first waits for files being drained.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import struct
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["Journal", "Orphan", "Segment", "frames_from", "journal_dir", "orphans", "read_frames"]

_HEADER = struct.Struct(">II")
_SUFFIX = ".journal"
_MARKER = ".live"
SEGMENT_BYTES = 1 << 20


def journal_dir(database_path: str) -> Path:
    """The journal directory of a SQLite database file."""
    return Path(database_path + "-audit-journal")


class Segment:
    """One journal file: written through its mapping while current; once closed for
    writing, deleted (`discard`) when its events are in the tables, or left for
    recovery (`close`)."""

    __slots__ = ("fd", "generation", "map", "opened", "path", "used")

    def __init__(self, fd: int, path: Path, mapping: mmap.mmap | None, generation: int = 0) -> None:
        self.fd = fd
        self.path = path
        self.map = mapping
        self.generation = generation
        self.used = 0  # bytes of frames written
        self.opened = time.monotonic()

    def _unmap(self) -> None:
        mapping, self.map = self.map, None
        if mapping is not None:
            with contextlib.suppress(BufferError, ValueError):
                mapping.close()

    def discard(self) -> None:
        self._unmap()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.close()

    def close(self) -> None:
        """Unmap and close (idempotent: the descriptor is never closed twice)."""
        self._unmap()
        fd, self.fd = self.fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)


class Journal:
    """The journal files one ledger writes (not thread-safe: the event loop's only)."""

    def __init__(self, directory: Path, *, segment_bytes: int | None = None) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._dir = directory
        self._id = uuid.uuid4().hex
        self._generation = 0
        self._segment_bytes = segment_bytes or SEGMENT_BYTES
        self._closed: list[Segment] = []  # closed for writing, not yet taken by the ledger
        self.on_open: Callable[[Segment], None] | None = None  # told of every file opened after the first
        self._marker = directory / f"{self._id}{_MARKER}"
        self._marker_fd = os.open(self._marker, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._marker_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held while this writer lives
        try:
            self._current = self._open(self._segment_bytes)
        except BaseException:
            self._release_marker(remove=True)
            raise

    def _open(self, size: int) -> Segment:
        """A new file of `size` bytes, its blocks reserved, mapped for writing. Raises
        OSError (and leaves nothing behind) when the disk cannot hold it."""
        size = -(-size // mmap.PAGESIZE) * mmap.PAGESIZE
        path = self._dir / f"{self._id}-{self._generation:010d}{_SUFFIX}"
        self._generation += 1
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new name: nobody else holds it
            os.posix_fallocate(fd, 0, size)
            mapping = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            with contextlib.suppress(OSError):
                path.unlink()
            os.close(fd)
            raise
        segment = Segment(fd, path, mapping, self._generation - 1)
        if self.on_open is not None:
            self.on_open(segment)
        return segment

    def write(self, body: bytes) -> None:
        """Append one frame: durable (against a crash of this process) when it returns.
        Raises OSError when a new file is needed and the disk cannot hold it."""
        frame = _HEADER.pack(len(body), zlib.crc32(body)) + body
        current = self._current
        if current.map is None or current.used + len(frame) > len(current.map):
            # Full: open the next file first, so that on failure the current one stays
            # as it is. (Past its last frame it is zeros: a reader stops there.)
            current = self._open(max(self._segment_bytes, len(frame) + _HEADER.size))
            self._closed.append(self._current)
            self._current = current
        assert current.map is not None
        current.map[current.used : current.used + len(frame)] = frame
        current.used += len(frame)

    def rotate(self, older_than: float) -> None:
        """Close the current file when it holds frames and was opened over `older_than`
        seconds ago, and start the next (a recovery then need not look far back). Keeps
        the current file when a new one cannot be opened."""
        current = self._current
        if current.used and time.monotonic() - current.opened > older_than:
            with contextlib.suppress(OSError):
                self._current = self._open(self._segment_bytes)
                self._closed.append(current)

    def take_closed(self) -> list[Segment]:
        """The files closed since the last call; the caller discards each once its
        events are stored (everything in them was written before this call)."""
        closed, self._closed = self._closed, []
        return closed

    def close(self, *, discard: bool) -> list[Segment]:
        """Stop writing. With `discard` (every event stored) the current file is deleted;
        otherwise one holding frames is left for recovery (or for the store process
        draining it). Returns the closed files not yet taken, for the caller to handle
        the same way."""
        current = self._current
        if discard or not current.used:
            current.discard()
        else:
            current.close()
        self._release_marker(remove=discard)
        return self.take_closed()

    def remove_marker(self) -> None:
        """After `close`: this writer's files are all gone (its store process drained them)."""
        with contextlib.suppress(FileNotFoundError):
            self._marker.unlink()

    def _release_marker(self, *, remove: bool) -> None:
        if remove:
            self.remove_marker()
        fd, self._marker_fd = self._marker_fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)

    @property
    def current(self) -> Segment:
        return self._current

    @property
    def current_path(self) -> Path:
        return self._current.path

    @property
    def position(self) -> tuple[int, int]:
        """(generation, bytes) just past the last frame written: a store process that
        has stored up to here has stored everything."""
        return self._current.generation, self._current.used


class Orphan:
    """A journal file of a writer that is gone, held by us while we replay it."""

    def __init__(self, fd: int, path: Path) -> None:
        self.segment = Segment(fd, path, None)

    @property
    def path(self) -> Path:
        return self.segment.path

    def frames(self) -> list[bytes]:
        return list(read_frames(self.path.read_bytes()))


def read_frames(data: bytes) -> Iterator[bytes]:
    """Every whole frame; stops at the first empty, torn or corrupt one (the zeroed
    rest of a file, or a crash mid-write)."""
    return iter(frames_from(data, 0)[0])


def frames_from(data: bytes | mmap.mmap, at: int, limit: int = 1 << 62) -> tuple[list[bytes], int]:
    """Up to `limit` whole frames from offset `at`, and the offset past the last: a file
    being written ends, for now, at its first empty or torn frame."""
    frames: list[bytes] = []
    end = len(data)
    while at + _HEADER.size <= end and len(frames) < limit:
        length, crc = _HEADER.unpack_from(data, at)
        start = at + _HEADER.size
        if not length or start + length > end:
            break
        body = data[start : start + length]
        if zlib.crc32(body) != crc:
            break
        frames.append(bytes(body))
        at = start + length
    return frames, at


def _locked_by_someone(path: Path) -> bool | None:
    """Whether another holds the file's lock (None: the file is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def orphans(directory: Path, *, drain_wait: float = 15.0) -> list[Orphan]:
    """Journal files no live writer holds, oldest first within each writer, locked for
    the caller (two recovering processes never replay the same file).

    A file still locked although its writer's marker (`<writer id>.live`) is not is
    being drained by the store process of a gateway that is gone: wait for it (up to
    `drain_wait` seconds), then take what is left, if anything. A locked file without
    a marker belongs to a live writer of an earlier release."""
    if not directory.is_dir():
        return []
    found: list[Orphan] = []
    draining: list[Path] = []
    for path in sorted(directory.glob(f"*{_SUFFIX}")):
        orphan = _take(path)
        if orphan is not None:
            found.append(orphan)
        elif path.exists() and _locked_by_someone(directory / (_writer_of(path) + _MARKER)) is False:
            draining.append(path)
    deadline = time.monotonic() + drain_wait
    while draining and time.monotonic() < deadline:
        time.sleep(0.02)
        waiting: list[Path] = []
        for path in draining:
            orphan = _take(path)
            if orphan is not None:
                found.append(orphan)
            elif path.exists():
                waiting.append(path)
        draining = waiting
    for marker in directory.glob(f"*{_MARKER}"):  # writers gone with all their files
        writer = marker.name.removesuffix(_MARKER)
        if not any(directory.glob(f"{writer}-*{_SUFFIX}")) and _locked_by_someone(marker) is False:
            with contextlib.suppress(FileNotFoundError):
                marker.unlink()
    found.sort(key=lambda o: o.path.name)
    return found


def _writer_of(path: Path) -> str:
    return path.name.rsplit("-", 1)[0]


def _take(path: Path) -> Orphan | None:
    """The file, locked for us, when nobody else holds it and it still exists."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None  # its writer finished with it meanwhile
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)  # a live writer (or its store process) holds it
        return None
    if not path.exists():  # discarded between our open and our lock
        os.close(fd)
        return None
    return Orphan(fd, path)
