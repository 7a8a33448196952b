"""Added latency of one MCP tool call through lockgate, against the same call made
directly to the upstream (docs/mcp.md, "Performance").

    .venv/bin/python bench/mcp_bench.py [--calls 1000] [--no-audit] [--profile out.prof]

Starts the test suite's streamable HTTP server (`tests/mcp_servers/crm_http.py`) and
`lockgate serve` in front of it (SQLite, the server approved through the admin API, an
agent's virtual key), then drives one official `mcp` SDK client per path with the same
tool call (`lookup_customer`), alternating paths call by call so both see the same
machine. Reports p50/p90/p99 per path and the added latency (lockgate - direct).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator
from pathlib import Path

import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

ROOT = Path(__file__).resolve().parent.parent
ADMIN = "sk-admin-bench-0123456789"
TOKEN = "crm-upstream-secret"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes], ok: tuple[int, ...] = (200,)) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code in ok:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux `/proc`)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def _processes(tmp: Path, audit: bool, profile: str | None) -> Generator[tuple[str, str, int, int]]:
    crm_port, gw_port = _port(), _port()
    crm = subprocess.Popen([sys.executable, str(ROOT / "tests/mcp_servers/crm_http.py"), "--port", str(crm_port)])
    config = tmp / "lockgate.toml"
    config.write_text(f"""
[gateway]
admin_key = "env::BENCH_ADMIN_KEY"
database = "sqlite:///{tmp / 'bench.db'}"

[observability]
log_level = "warning"

[audit]
enabled = {str(audit).lower()}

[mcp.servers.crm]
url = "http://127.0.0.1:{crm_port}/mcp"
bearer = "env::CRM_TOKEN"
""")
    env = {**os.environ, "BENCH_ADMIN_KEY": ADMIN, "CRM_TOKEN": TOKEN}
    prefix = [sys.executable, "-m", "cProfile", "-o", profile] if profile else [sys.executable]
    gw = subprocess.Popen([*prefix, "-m", "lockgate", "serve", "--config", str(config), "--port", str(gw_port)],
                          env=env, cwd=tmp)
    try:
        _wait(f"http://127.0.0.1:{crm_port}/mcp", crm, ok=(401, 405, 406))
        _wait(f"http://127.0.0.1:{gw_port}/healthz", gw)
        yield f"http://127.0.0.1:{crm_port}/mcp", f"http://127.0.0.1:{gw_port}", gw.pid, crm.pid
    finally:
        for proc in (gw, crm):
            if proc is gw and profile:
                proc.send_signal(signal.SIGINT)  # cProfile writes its file on a clean exit
            else:
                proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(15)


def _setup(gateway: str) -> str:
    """Approve the server once its tools are listed; an agent may use them with its key."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        shown = httpx.get(f"{gateway}/admin/mcp/servers/crm", headers=admin).json()
        if shown.get("tools"):
            break
        time.sleep(0.1)
    httpx.post(f"{gateway}/admin/mcp/servers/crm/approve", headers=admin).raise_for_status()
    httpx.post(f"{gateway}/admin/agents", headers=admin, json={
        "name": "bench-agent", "owner": "bench", "purpose": "benchmark", "risk_tier": "low",
        "allowed_tools": ["crm/*"]}).raise_for_status()
    key = httpx.post(f"{gateway}/admin/keys", headers=admin, json={"name": "bench", "agent": "bench-agent"})
    key.raise_for_status()
    time.sleep(1.0)  # the gateway picks the key and the approval up within access.refresh_interval
    return str(key.json()["key"])


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def _run(direct_url: str, gateway: str, key: str, calls: int) -> dict[str, dict[str, float]]:
    direct_http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"})
    gw_http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"})
    times: dict[str, list[float]] = {"direct": [], "lockgate": []}
    async with (
        Client(streamable_http_client(direct_url, http_client=direct_http), cache=None) as direct,
        Client(streamable_http_client(f"{gateway}/mcp", http_client=gw_http), cache=None) as via,
    ):
        await direct.list_tools()
        listed = await via.list_tools()
        assert any(t.name == "crm__lookup_customer" for t in listed.tools), listed
        paths = {"direct": (direct, "lookup_customer"), "lockgate": (via, "crm__lookup_customer")}
        for i in range(calls + 50):
            for label in (("direct", "lockgate") if i % 2 else ("lockgate", "direct")):
                client, tool = paths[label]
                started = time.perf_counter()
                result = await client.call_tool(tool, {"customer_id": 1})
                elapsed = (time.perf_counter() - started) * 1000
                assert not result.is_error, result
                if i >= 50:  # warm-up
                    times[label].append(elapsed)
    return {
        label: {"p50": _pct(v, 50), "p90": _pct(v, 90), "p99": _pct(v, 99), "mean": statistics.fmean(v)}
        for label, v in times.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--no-audit", action="store_true", help="Run lockgate with [audit] enabled = false.")
    parser.add_argument("--profile", default=None, help="Write a cProfile of the lockgate process here.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, _processes(Path(tmp), not args.no_audit, args.profile) as (
        direct, gw, gw_pid, crm_pid
    ):
        key = _setup(gw)
        before = _cpu_seconds(gw_pid), _cpu_seconds(crm_pid)
        stats = asyncio.run(_run(direct, gw, key, args.calls))
        after = _cpu_seconds(gw_pid), _cpu_seconds(crm_pid)
    total = args.calls + 50
    # CPU per call is steadier than wall time on a shared machine: lockgate's own work
    # per proxied call, against the upstream's per call (it serves both paths).
    cpu = {"lockgate_ms": (after[0] - before[0]) * 1000 / total, "upstream_ms": (after[1] - before[1]) * 1000 / (2 * total)}
    added = {p: stats["lockgate"][p] - stats["direct"][p] for p in ("p50", "p90", "p99", "mean")}
    report = {"calls": args.calls, "audit": not args.no_audit, **stats, "added": added, "cpu_per_call": cpu}
    sys.stdout.write(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
