"""Count what a gateway asks of Redis: a minimal RESP client for PING, FLUSHDB and INFO.

Redis counts per server, not per database or client, so `Counters` are server-wide:
`reads` (`total_reads_processed`: read events on client sockets, one per round trip of
a client that waits for each reply, as redis-py does; pipelined commands arrive in one),
`commands` (`total_commands_processed`, commands run inside Lua scripts included),
`scripts` (EVAL/EVALSHA/FCALL calls: one per script run, whatever it does inside),
`per_command` (INFO commandstats) and the server's CPU time. A benchmark subtracts what
the rest of the server did by measuring the same counters while the gateway is idle.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["Counters", "Meter", "RedisProbe"]

_SCRIPT_COMMANDS = ("eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro")


@dataclass(frozen=True)
class Counters:
    reads: float
    commands: float
    scripts: float
    cpu_s: float
    per_command: dict[str, float] = field(default_factory=lambda: {})

    def __sub__(self, other: Counters) -> Counters:
        names = set(self.per_command) | set(other.per_command)
        diff = {n: self.per_command.get(n, 0) - other.per_command.get(n, 0) for n in names}
        return Counters(
            self.reads - other.reads,
            self.commands - other.commands,
            self.scripts - other.scripts,
            self.cpu_s - other.cpu_s,
            {n: v for n, v in sorted(diff.items()) if v},
        )

    def __add__(self, other: Counters) -> Counters:
        return self - other.scaled(-1)

    def scaled(self, k: float) -> Counters:
        return Counters(
            self.reads * k,
            self.commands * k,
            self.scripts * k,
            self.cpu_s * k,
            {n: v * k for n, v in self.per_command.items()},
        )


ZERO = Counters(0, 0, 0, 0.0)
# What one INFO of the probe adds to the next reading: one read, one command.
_PROBE = Counters(1, 1, 0, 0.0, {"info": 1})


class Meter:
    """Counts what happens on a Redis server between two moments, less what the rest of
    the server does meanwhile: `calibrate` measures that background rate over a quiet
    period (the gateway idle), `since` subtracts it (and the probe's own INFO calls)."""

    def __init__(self, url: str) -> None:
        self.probe = RedisProbe(url)
        self.background = ZERO  # per second

    def close(self) -> None:
        self.probe.close()

    def mark(self) -> tuple[Counters, float]:
        return self.probe.counters(), time.perf_counter()

    def raw_since(self, start: tuple[Counters, float]) -> tuple[Counters, float]:
        now, t = self.mark()
        return now - start[0] - _PROBE, t - start[1]

    def calibrate(self, start: tuple[Counters, float]) -> None:
        delta, seconds = self.raw_since(start)
        self.background = delta.scaled(1 / seconds) if seconds > 0 else ZERO

    def since(self, start: tuple[Counters, float]) -> Counters:
        delta, seconds = self.raw_since(start)
        return delta - self.background.scaled(seconds)


class RedisProbe:
    """One connection to the server named by a redis:// URL, kept open between calls so
    each INFO costs exactly one command and one read."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "redis":
            raise ValueError(f"only redis:// URLs are supported, not {url!r}")
        self.url = url
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 6379
        self.db = int(parts.path.strip("/") or 0)
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buf = b""

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            self._buf = b""

    def call(self, *args: str) -> bytes | int | str:
        if self._sock is None:
            self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            if self.db:
                self._roundtrip("SELECT", str(self.db))
        return self._roundtrip(*args)

    def ping(self) -> bool:
        try:
            return self.call("PING") == "PONG"
        except OSError:
            self.close()
            return False

    def flushdb(self) -> None:
        """Empty the URL's database (only that one)."""
        self.call("FLUSHDB")

    def counters(self) -> Counters:
        text = self.call("INFO", "stats", "commandstats", "cpu")
        assert isinstance(text, bytes)
        info: dict[str, str] = {}
        per_command: dict[str, float] = {}
        for line in text.decode().splitlines():
            name, sep, value = line.partition(":")
            if not sep or line.startswith("#"):
                continue
            if name.startswith("cmdstat_"):
                calls = value.split(",", 1)[0]  # calls=N,usec=...
                per_command[name[len("cmdstat_") :]] = int(calls.split("=", 1)[1])
            else:
                info[name] = value
        return Counters(
            reads=int(info["total_reads_processed"]),
            commands=int(info["total_commands_processed"]),
            scripts=sum(per_command.get(n, 0) for n in _SCRIPT_COMMANDS),
            cpu_s=float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
            per_command=per_command,
        )

    # -- RESP -----------------------------------------------------------------------

    def _roundtrip(self, *args: str) -> bytes | int | str:
        assert self._sock is not None
        data = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            raw = arg.encode()
            data.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
        self._sock.sendall(b"".join(data))
        return self._reply()

    def _line(self) -> bytes:
        assert self._sock is not None
        while b"\r\n" not in self._buf:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\r\n")
        return line

    def _reply(self) -> bytes | int | str:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b":":
            return int(rest)
        if kind == b"-":
            raise RuntimeError(f"redis: {rest.decode()}")
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return b""
            assert self._sock is not None
            while len(self._buf) < size + 2:
                chunk = self._sock.recv(65536)
                if not chunk:
                    raise ConnectionError("redis closed the connection")
                self._buf += chunk
            value, self._buf = self._buf[:size], self._buf[size + 2 :]
            return value
        raise RuntimeError(f"unexpected redis reply {line[:40]!r}")
