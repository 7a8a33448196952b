"""The ledger's store process: moves a gateway's journaled events into the tables.

Why a process: sealing an event and inserting its row costs ~25 µs of CPU inside a busy
gateway, a tenth of a small request, and in the gateway's process it competes with the
requests for the one core Python gives it. Here it runs beside the gateway, on a core
the gateway does not use (see docs/audit.md#the-store-process).

The gateway (`storer_link.py`) starts it with one end of a `SOCK_SEQPACKET` socket pair
and sends, one message each (JSON):

- `{"op": "file", "gen": g, "path": p, "resume": r}` with the journal file's descriptor
  (`SCM_RIGHTS`). Sharing the descriptor shares its `flock`: the file stays locked while
  this process works on it, even after the gateway is gone. A file is complete once the
  next one has arrived (the gateway opens the next before it stops writing the last).
  `resume`: a restarted store process may find some of its events stored already.
- `{"op": "hurry"}`: a reader waits: store what is there now.
- `{"op": "end"}` (or the socket closing: the gateway died): nothing more will be
  written; store everything, delete the files, exit.

It answers `{"op": "ready"}` once started, `{"op": "stored", "gen": g, "offset": o, "count": n}` after each commit
(everything journaled before byte `o` of file `g` is in the tables) and
`{"op": "done", "gen": g}` when it has deleted a file.

Every `_DELAY` seconds (or at once on `hurry`) it reads the new whole frames of its
files and appends them in one transaction per `max_batch` through the same
`DirectWriter` the gateway's own writer uses (the database's lock orders the two).

    python -m lockgate.audit.storer --database URL --socket FD [--max-batch N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import mmap
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from lockgate.audit.event import AuditEvent
from lockgate.audit.frames import SealedPayload, decode_entry
from lockgate.audit.journal import Segment, frames_from
from lockgate.audit.record import GatewayRecord
from lockgate.audit.seal import sealer
from lockgate.store._audit import DirectWriter

__all__ = ["Storer", "main"]

_log = logging.getLogger("lockgate.audit.storer")

_DELAY = 0.01  # seconds between passes while nothing hurries it
_RETRY_EVERY = 0.5  # seconds after a failed transaction
_TIDY_EVERY = 1.0  # seconds between WAL checkpoints (SQLite's own, off: see SqliteAppender)
MAX_MESSAGE = 65536


class _File:
    """A journal file handed over: its `Segment` (our descriptor, mapped read-only) and
    how far it has been stored."""

    __slots__ = ("offset", "resume", "segment")

    def __init__(self, generation: int, path: Path, fd: int, resume: bool) -> None:
        self.segment = Segment(fd, path, None, generation)
        self.offset = 0
        self.resume = resume

    @property
    def generation(self) -> int:
        return self.segment.generation

    def view(self) -> mmap.mmap | None:
        segment = self.segment
        if segment.map is None:
            size = os.fstat(segment.fd).st_size
            if size == 0:
                return None
            segment.map = mmap.mmap(segment.fd, size, mmap.MAP_SHARED, mmap.PROT_READ)
        return segment.map

    def delete(self) -> None:
        self.segment.discard()

    def close(self) -> None:
        self.segment.close()


class Storer:
    def __init__(self, database: str, sock: socket.socket, max_batch: int) -> None:
        self._writer = DirectWriter(database)
        self._sock = sock
        self._max_batch = max_batch
        self._files: list[_File] = []
        self._wake = asyncio.Event()
        self._hurried = False
        self._ending = False

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._sock.setblocking(False)
        loop.add_reader(self._sock.fileno(), self._receive)
        self._send({"op": "ready"})
        tidy_at = time.monotonic() + _TIDY_EVERY
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), _DELAY)
                self._wake.clear()
                ending, hurried = self._ending, self._hurried
                self._hurried = False
                try:
                    await self._pass(final_all=ending, report=hurried)
                except Exception as exc:
                    _log.error("audit store process: write failed: %s", type(exc).__name__)
                    await asyncio.sleep(_RETRY_EVERY)
                    continue
                if ending and not self._files:
                    return
                if time.monotonic() >= tidy_at:  # the gateway's commits too: it leaves this to us
                    tidy_at = time.monotonic() + _TIDY_EVERY
                    with contextlib.suppress(Exception):
                        await self._writer.tidy()
        finally:
            with contextlib.suppress(Exception):
                loop.remove_reader(self._sock.fileno())
            for file in self._files:
                file.close()  # left for recovery: still locked until this process is gone
            await self._writer.close()

    def _receive(self) -> None:
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self._sock, MAX_MESSAGE, 4)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data, fds = b"", []
            if not data:  # the gateway is gone: store what it left, then stop
                with contextlib.suppress(Exception):
                    asyncio.get_running_loop().remove_reader(self._sock.fileno())
                self._ending = True
                self._wake.set()
                return
            message: dict[str, Any] = json.loads(data)
            op = message.get("op")
            if op == "file" and fds:
                self._files.append(_File(int(message["gen"]), Path(message["path"]), fds[0], bool(message.get("resume"))))
                for extra in fds[1:]:
                    os.close(extra)
                continue
            for fd in fds:
                os.close(fd)
            if op == "hurry":
                self._hurried = True
                self._wake.set()
            elif op == "end":
                self._ending = True
                self._wake.set()

    async def _pass(self, *, final_all: bool, report: bool) -> None:
        """Store every whole frame of the files (in batches); delete the files done."""
        while True:
            files = list(self._files)
            events: list[AuditEvent | GatewayRecord] = []
            payloads: list[SealedPayload | None] = []
            ends: list[tuple[_File, int, bool]] = []  # file, offset reached, complete
            for index, file in enumerate(files):
                complete = final_all or index < len(files) - 1
                view = file.view()
                room = self._max_batch - len(events)
                frames, end = frames_from(view, file.offset, room) if view is not None else ([], file.offset)
                if len(frames) == room:  # perhaps more: the rest in the next transaction
                    complete = False
                entries = [_decoded(frame) for frame in frames]
                kept = [e for e in entries if e is not None]
                if file.resume and kept:  # a previous store process may have stored some
                    present = self._writer.ids_since(min(e[0].time for e in kept))
                    fresh = [e for e in kept if e[0].id not in present]
                    file.resume = len(fresh) < len(kept)  # none stored: past where it stopped
                    kept = fresh
                for event, payload in kept:
                    events.append(event)
                    payloads.append(payload)
                ends.append((file, end, complete))
                if len(events) >= self._max_batch:
                    break
            if events:
                await self._writer.append(len(events), sealer(events, payloads))
            last: tuple[int, int] | None = None
            for file, end, complete in ends:
                file.offset = max(file.offset, end)
                last = (file.generation, file.offset)
                if complete:
                    file.delete()
                    self._files.remove(file)
                    self._send({"op": "done", "gen": file.generation})
            if (events or report) and last is not None:
                self._send({"op": "stored", "gen": last[0], "offset": last[1], "count": len(events)})
            report = False
            if len(events) < self._max_batch:
                return

    def _send(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):  # the gateway is gone: nobody to tell
            self._sock.send(json.dumps(message).encode())


def _decoded(frame: bytes) -> tuple[AuditEvent | GatewayRecord, SealedPayload | None] | None:
    try:
        return decode_entry(frame)
    except msgspec.DecodeError:  # cannot happen past the CRC check; skip it all the same
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lockgate.audit.storer")
    parser.add_argument("--database", required=True)
    parser.add_argument("--socket", type=int, required=True)
    parser.add_argument("--max-batch", type=int, default=512)
    args = parser.parse_args(argv)
    # Signals meant for the gateway (Ctrl-C reaches the whole process group) must not
    # cut the drain short: this process ends when the gateway's socket closes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)
    sock = socket.socket(fileno=args.socket)
    try:
        import uvloop

        runner: Any = getattr(uvloop, "run", asyncio.run)
    except ImportError:
        runner = asyncio.run
    runner(Storer(args.database, sock, args.max_batch).run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
