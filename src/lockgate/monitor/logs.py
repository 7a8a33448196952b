"""Structured JSON logs. One line per request (logger `lockgate.access`) carrying the
request id; never message bodies, never credentials."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any, TextIO

import msgspec

from lockgate.core.clock import UtcSeconds

__all__ = ["JsonFormatter", "configure_logging"]

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._seconds = UtcSeconds()

    def _stamp(self, created: float, msecs: float) -> str:
        return f"{self._seconds(int(created))}.{int(msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": self._stamp(record.created, record.msecs),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return msgspec.json.encode(out).decode()


class LoopBatchedHandler(logging.StreamHandler[TextIO]):
    """A stream handler that, on an event loop, writes the lines logged during one turn
    of the loop with one `write` at the end of that turn (under load, one system call
    for many requests' access lines instead of a write and a flush each). Off the loop
    (start-up, threads, the CLI) each line is written at once."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._pending: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write(line)
            return
        if not self._pending:
            loop.call_soon(self._drain)
        self._pending.append(line)

    def _drain(self) -> None:
        lines, self._pending = self._pending, []
        if lines:
            self._write("".join(lines))

    def _write(self, text: str) -> None:
        self.acquire()
        try:
            self.stream.write(text)
            self.stream.flush()
        except Exception:
            pass  # a closed or broken stream: logging never fails the caller
        finally:
            self.release()

    def flush(self) -> None:
        self._drain()
        super().flush()


def configure_logging(level: str, fmt: str) -> None:
    # Nothing lockgate logs uses the record's thread, process or caller: skip computing them.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # pyright: ignore[reportPrivateUsage, reportAttributeAccessIssue]
    handler = LoopBatchedHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("lockgate")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
