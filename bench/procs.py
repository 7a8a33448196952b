"""Processes under test: start one, wait until it answers, read its CPU time and memory.

Linux only: CPU time and memory come from /proc, summed over the process and all its
descendants (a gateway that forks workers is measured whole).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CLOCK_TICKS",
    "Proc",
    "free_port",
    "machine_busy_seconds",
    "port_is_open",
    "request",
    "start",
]

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """One HTTP request to 127.0.0.1:port on a fresh connection: (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def machine_busy_seconds() -> float:
    """CPU time all CPUs spent on processes (user, nice, system) or lost to the hypervisor
    (steal) since boot. Interrupt time is left out: loopback traffic is mostly softirq."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + steal) / CLOCK_TICKS


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _tree(pid: int) -> list[int]:
    children = _children()
    out: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def _cpu_ticks(pid: int, with_waited: bool) -> int:
    """utime+stime of `pid` (and, if asked, of its children already waited for)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): utime=14, stime=15, cutime=16, cstime=17.
    ticks = int(fields[11]) + int(fields[12])
    if with_waited:
        ticks += int(fields[13]) + int(fields[14])
    return ticks


def _status_kb(pid: int, key: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


@dataclass
class Proc:
    """A started process (its own session, so its whole group can be stopped)."""

    name: str
    popen: subprocess.Popen[bytes]
    started: float  # time.perf_counter() just before spawning
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def cpu_seconds(self) -> float:
        """CPU time (user+system) of the process tree so far."""
        ticks = sum(_cpu_ticks(p, with_waited=p == self.pid) for p in _tree(self.pid))
        return ticks / CLOCK_TICKS

    def rss_mb(self) -> float:
        """Resident memory of the process tree (VmRSS summed; shared pages count twice)."""
        return sum(_status_kb(p, "VmRSS") for p in _tree(self.pid)) / 1024

    def peak_rss_mb(self) -> float:
        return sum(_status_kb(p, "VmHWM") for p in _tree(self.pid)) / 1024

    def processes(self) -> int:
        return len(_tree(self.pid))

    def wait_ready(self, port: int, path: str, timeout: float) -> float:
        """Poll GET path until 200; return seconds since spawn. Raises on exit or timeout."""
        deadline = self.started + timeout
        while time.perf_counter() < deadline:
            if not self.alive():
                raise RuntimeError(
                    f"{self.name} exited with {self.popen.returncode}; see {self.log}"
                )
            with contextlib.suppress(OSError, http.client.HTTPException):
                status, _ = request(port, "GET", path, timeout=2.0)
                if status == 200:
                    return time.perf_counter() - self.started
            time.sleep(0.01)
        raise TimeoutError(
            f"{self.name} not ready on :{port}{path} after {timeout:.0f}s; see {self.log}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group this process leads, then SIGKILL if it lingers."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait(timeout)
        # Workers that outlived their parent are still in the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)


def start(
    name: str,
    argv: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str],
    cwd: Path,
    cpus: set[int] | None = None,
) -> Proc:
    """Spawn argv in a new session, stdout and stderr to `log`, optionally pinned to cpus."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        started = time.perf_counter()
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
    return Proc(name=name, popen=popen, started=started, log=log)
