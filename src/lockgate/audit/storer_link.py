"""The gateway's side of the ledger's store process (`storer.py`): starts it, hands it
each journal file, learns how far it has stored, and restarts it if it dies.

The link never blocks the event loop: messages go out on a non-blocking socket (a full
socket, which would mean a store process that stopped reading, counts as its death:
the replacement is handed every file not yet done and skips what was stored)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import sys
from collections.abc import Callable
from typing import Any

from lockgate.audit.journal import Segment
from lockgate.audit.storer import MAX_MESSAGE
from lockgate.core.waiters import release_reached

__all__ = ["StoreLink"]

_log = logging.getLogger("lockgate.audit")

_RESTART_AFTER = 0.5  # seconds before a store process that died is replaced (doubling while it fails to start)
_RESTART_MAX = 30.0
_READY_WAIT = 30.0  # seconds a new store process has to say it is ready
_END_WAIT = 15.0  # seconds a closing gateway waits for its store process to finish


class StoreLink:
    def __init__(self, database: str, *, max_batch: int, on_stored: Callable[[int], None]) -> None:
        self._database = database
        self._max_batch = max_batch
        self._on_stored = on_stored
        self._files: dict[int, Segment] = {}  # handed over, not yet done (deleted by the store process)
        self._stored: tuple[int, int] = (-1, 0)  # (generation, offset) stored up to
        self._flushes: list[tuple[tuple[int, int], asyncio.Future[None]]] = []
        self._sock: socket.socket | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._watch: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._closing = False
        self._died = False  # a store process has died since the start
        self.restarts = 0

    @property
    def up(self) -> bool:
        """A store process is running: the first from its start, a replacement once it
        has said it is ready; False between a death and its replacement."""
        proc, ready = self._proc, self._ready
        running = self._sock is not None and proc is not None and proc.returncode is None
        said_ready = ready is not None and ready.done() and not ready.cancelled() and ready.exception() is None
        return running and (said_ready or not self._died)

    async def start(self) -> None:
        """Start the store process (raises OSError when it cannot be executed). Not
        waiting for it to be ready (~0.3 s of imports): the journal holds what comes
        meanwhile; one that dies at start is replaced like any other."""
        await self._spawn(resume=False)
        self._watch = asyncio.get_running_loop().create_task(self._supervise(), name="audit-store-process")

    async def _spawn(self, *, resume: bool) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "lockgate.audit.storer",
                "--database", self._database, "--socket", str(theirs.fileno()), "--max-batch", str(self._max_batch),
                stdin=asyncio.subprocess.DEVNULL, pass_fds=(theirs.fileno(),),
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        self._sock, self._proc = ours, proc
        self._ready = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().add_reader(ours.fileno(), self._receive, ours)
        for segment in list(self._files.values()):
            self._hand(segment, resume=resume)

    async def _until_ready(self) -> None:
        """Wait for the new process's "ready"; OSError (and the process stopped) if it
        exits or stays silent."""
        ready, proc = self._ready, self._proc
        assert ready is not None and proc is not None
        exited = asyncio.ensure_future(proc.wait())
        try:
            await asyncio.wait([ready, exited], timeout=_READY_WAIT, return_when=asyncio.FIRST_COMPLETED)
        finally:
            exited.cancel()
        if not ready.done() or ready.exception() is not None:
            self._drop()
            raise OSError(f"the audit store process did not start (exit status {proc.returncode})")

    def follow(self, segment: Segment) -> None:
        """Hand the store process a journal file (in order: the journal's `on_open`)."""
        self._files[segment.generation] = segment
        self._hand(segment, resume=False)

    def _hand(self, segment: Segment, *, resume: bool) -> None:
        message = {"op": "file", "gen": segment.generation, "path": str(segment.path), "resume": resume}
        if segment.fd >= 0:
            self._send(message, (segment.fd,))

    def _send(self, message: dict[str, Any], fds: tuple[int, ...] = ()) -> None:
        sock = self._sock
        if sock is None:
            return  # between processes: the next one is handed everything
        try:
            socket.send_fds(sock, [json.dumps(message).encode()], list(fds))
        except OSError as exc:
            _log.error("audit store process unreachable (%s): replacing it", type(exc).__name__)
            self._drop()

    def _drop(self) -> None:
        """Forget the current process's socket and stop it (the supervisor replaces it)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(sock.fileno())
            sock.close()
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()

    def _receive(self, sock: socket.socket) -> None:
        while True:
            try:
                data = sock.recv(MAX_MESSAGE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                if sock is self._sock:
                    self._drop()
                return
            message = json.loads(data)
            op = message.get("op")
            if op == "ready":
                if self._ready is not None and not self._ready.done():
                    self._ready.set_result(None)
            elif op == "stored":
                position = (int(message["gen"]), int(message["offset"]))
                self._stored = max(self._stored, position)
                if message.get("count"):
                    self._on_stored(int(message["count"]))
                self._release()
            elif op == "done":
                segment = self._files.pop(int(message["gen"]), None)
                if segment is not None:
                    segment.close()

    def _release(self) -> None:
        self._flushes = release_reached(self._flushes, lambda target: self._stored >= target)

    async def flush(self, target: tuple[int, int], timeout: float) -> bool:
        """Wait until everything journaled before `target` is stored; False on timeout."""
        if self._stored >= target:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flushes.append((target, future))
        self._send({"op": "hurry"})
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            return False
        return True

    async def _supervise(self) -> None:
        while True:
            proc = self._proc
            assert proc is not None
            code = await proc.wait()
            if self._closing:
                return
            self._died = True
            self._drop()
            _log.error("audit store process exited (%s); restarting it", code)
            delay = _RESTART_AFTER
            while not self._closing:
                await asyncio.sleep(delay)
                if self._closing:
                    return
                try:
                    await self._spawn(resume=True)
                    await self._until_ready()
                    self.restarts += 1
                    break
                except OSError as exc:
                    # Journaled events wait in their files meanwhile: nothing is lost.
                    _log.error("audit store process cannot start (%s); retrying in %.1f s", exc, delay * 2)
                    delay = min(delay * 2, _RESTART_MAX)
            if self._closing:
                return
            if self._flushes:
                self._send({"op": "hurry"})

    async def aclose(self) -> bool:
        """After the journal stopped: let the store process store everything and exit.
        True when every journal file is done (stored and deleted)."""
        self._closing = True
        proc = self._proc
        self._send({"op": "end"})
        if proc is not None:
            try:
                await asyncio.wait_for(proc.wait(), _END_WAIT)
            except TimeoutError:
                _log.error("audit store process did not finish in %.0f s: its files are left for recovery", _END_WAIT)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        sock = self._sock
        if sock is not None:
            self._receive(sock)  # the last "done"s
        self._drop()
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        drained = not self._files
        for segment in self._files.values():
            segment.close()
        self._files.clear()
        for _, future in self._flushes:
            if not future.done():
                future.set_result(None)
        self._flushes.clear()
        return drained

