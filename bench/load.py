"""Load: wrk runs (closed loop, fixed connections and duration) and a time-to-first-token probe."""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["WrkResult", "run_wrk", "time_to_first_token"]

HERE = Path(__file__).resolve().parent
SCRIPTS = {"json": HERE / "post.lua", "stream": HERE / "stream.lua"}
_MARK = "BENCH_JSON "


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    errors: int  # connect + read + write + timeout + non-2xx
    error_kinds: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def run_wrk(
    url: str,
    mode: str,
    connections: int,
    seconds: float,
    *,
    threads: int,
    key: str,
    cpus: set[int] | None,
) -> WrkResult:
    """One closed-loop wrk run: `connections` keep-alive connections, each one request at a time."""
    argv = [
        "wrk",
        f"-t{max(1, min(threads, connections))}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "--latency",
        "-H",
        f"Authorization: Bearer {key}",
        "-s",
        str(SCRIPTS[mode]),
        url,
    ]
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith(_MARK)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout}")
    data: dict[str, Any] = json.loads(lines[-1][len(_MARK) :])
    lat = data["latency_us"]
    return WrkResult(
        requests=int(data["requests"]),
        seconds=data["duration_us"] / 1e6,
        errors=sum(int(v) for v in data["errors"].values()),
        error_kinds={k: int(v) for k, v in data["errors"].items() if v},
        p50_ms=lat["p50"] / 1000,
        p90_ms=lat["p90"] / 1000,
        p99_ms=lat["p99"] / 1000,
        mean_ms=lat["mean"] / 1000,
    )


class _Client:
    """A keep-alive HTTP/1.1 client on a raw socket, to time the first bytes of a stream."""

    def __init__(self, port: int, timeout: float) -> None:
        self.port = port
        self.timeout = timeout
        self.sock: socket.socket | None = None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _connect(self) -> socket.socket:
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self.sock

    def stream(self, raw_request: bytes) -> tuple[float, float, bytes]:
        """Send; return (seconds to first `data:`, seconds to end, body)."""
        sock = self._connect()
        t0 = time.perf_counter()
        sock.sendall(raw_request)
        buf = b""
        first = 0.0
        while b"\r\n\r\n" not in buf:
            buf += self._recv(sock)
        head, _, body = buf.partition(b"\r\n\r\n")
        lower = head.lower()
        if not head.startswith(b"HTTP/1.1 200"):
            self.close()
            raise RuntimeError(f"status line {head.splitlines()[0]!r}")
        while True:
            if not first and b"data:" in body:
                first = time.perf_counter() - t0
            if _complete(lower, body):
                break
            chunk = self._recv(sock, eof_ok=b"content-length" not in lower)
            if not chunk:
                self.close()
                break
            body += chunk
        total = time.perf_counter() - t0
        if b"connection: close" in lower:
            self.close()
        return first, total, body

    def _recv(self, sock: socket.socket, eof_ok: bool = False) -> bytes:
        data = sock.recv(65536)
        if not data and not eof_ok:
            self.close()
            raise ConnectionError("connection closed mid-response")
        return data


def _complete(head: bytes, body: bytes) -> bool:
    if b"transfer-encoding: chunked" in head:
        return body.endswith(b"\r\n0\r\n\r\n") or body == b"0\r\n\r\n"
    at = head.find(b"content-length:")
    if at >= 0:
        end = head.find(b"\r\n", at)
        return len(body) >= int(head[at + 15 : end if end >= 0 else None])
    return False  # read to EOF


def time_to_first_token(
    port: int,
    path: str,
    body: Mapping[str, Any],
    key: str,
    samples: int,
    timeout: float = 10.0,
) -> dict[str, float | int]:
    """Sequential streamed requests on one connection: median time to the first SSE event."""
    payload = json.dumps(body).encode()
    raw = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    client = _Client(port, timeout)
    firsts: list[float] = []
    totals: list[float] = []
    failures = 0
    deadline = time.perf_counter() + samples * (timeout + 1)
    try:
        for _ in range(samples):
            if time.perf_counter() > deadline:
                break
            try:
                first, total, got = client.stream(raw)
            except (OSError, RuntimeError):
                failures += 1
                client.close()
                continue
            if not first or b"[DONE]" not in got:
                failures += 1
                continue
            firsts.append(first)
            totals.append(total)
    finally:
        client.close()
    if not firsts:
        raise RuntimeError(f"no streamed response succeeded on :{port} ({failures} failures)")
    return {
        "ttft_p50_ms": statistics.median(firsts) * 1000,
        "ttft_min_ms": min(firsts) * 1000,
        "stream_total_p50_ms": statistics.median(totals) * 1000,
        "samples": len(firsts),
        "failures": failures,
    }
