"""What the keyed targets need besides a gateway: a virtual key with limits and budgets
(lockgate through its CLI, LiteLLM through its admin API), a Redis of the benchmark's
own, and the reason LiteLLM's virtual keys cannot run when they cannot."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import procs
import redisstat

__all__ = ["litellm_key", "lockgate_key", "prisma_problem", "redis_version", "start_private_redis"]

# The limits of the benchmark's virtual key and of its team: real limits and budgets,
# checked and counted on every request, too large to be reached during a run.
KEY_RPM = 1_000_000_000
KEY_TPM = 2_000_000_000  # tokens a minute (the store caps limits at 2**31 - 1)
KEY_BUDGET_DAY_USD = 1_000_000.0
TEAM_BUDGET_DAY_USD = 1_000_000.0
TEAM_BUDGET_MONTH_USD = 10_000_000.0


def _cli_json(argv: list[str], env: Mapping[str, str], cwd: Path) -> dict[str, Any]:
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=120, check=False, env=dict(env), cwd=cwd
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed: {(done.stderr or done.stdout).strip()}")
    return json.loads(done.stdout)


def lockgate_key(
    lockgate: str, config: Path, redis: str | None, env: Mapping[str, str], cwd: Path
) -> str:
    """Flush the Redis database (if any); create a team with daily and monthly budgets
    and a key in it with rpm, tpm and daily budget limits, through the CLI. Returns the key."""
    if redis:
        probe = redisstat.RedisProbe(redis)
        try:
            probe.flushdb()
        finally:
            probe.close()
    conf = ["--config", str(config), "--json"]
    team = ["teams", "create", "bench-team", "--budget-day", str(TEAM_BUDGET_DAY_USD)]
    team += ["--budget-month", str(TEAM_BUDGET_MONTH_USD)]
    _cli_json([lockgate, *team, *conf], env, cwd)
    key = ["keys", "create", "bench-key", "--team", "bench-team", "--rpm", str(KEY_RPM)]
    key += ["--tpm", str(KEY_TPM), "--budget-day", str(KEY_BUDGET_DAY_USD)]
    return str(_cli_json([lockgate, *key, *conf], env, cwd)["key"])


def litellm_key(master_key: str, port: int) -> str:
    """Create a team with a budget and a key in it with rpm, tpm and budget limits,
    through LiteLLM's admin API. Returns the key. (Written from LiteLLM's documented
    /team/new and /key/generate; it has not run here: see `prisma_problem`.)"""
    headers = {"Authorization": f"Bearer {master_key}", "Content-Type": "application/json"}

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        status, data = procs.request(port, "POST", path, json.dumps(body).encode(), headers, 60.0)
        if status != 200:
            raise RuntimeError(f"litellm {path}: HTTP {status}: {data[:300]!r}")
        return json.loads(data)

    team = {"team_alias": "bench-team", "max_budget": TEAM_BUDGET_DAY_USD, "budget_duration": "1d"}
    team_id = post("/team/new", team)["team_id"]
    key = {"team_id": team_id, "rpm_limit": KEY_RPM, "tpm_limit": KEY_TPM}
    key |= {"max_budget": KEY_BUDGET_DAY_USD, "budget_duration": "1d"}
    return str(post("/key/generate", key)["key"])


def prisma_problem(litellm: str, env: Mapping[str, str], cwd: Path) -> str | None:
    """Why LiteLLM's virtual keys cannot run here, or None. They need LiteLLM's database,
    which LiteLLM reaches only through Prisma: the `prisma` Python client drives the
    Prisma CLI (Node), which fetches its query and schema engines (native binaries)
    the first time it runs. `prisma --version` does exactly that bootstrap."""
    prisma = Path(litellm).parent / "prisma"
    if not prisma.exists():
        return (
            "LiteLLM's virtual keys need its database through Prisma, and the `prisma` "
            "package is not installed in LiteLLM's environment (bash bench/setup.sh installs it)"
        )
    try:
        done = subprocess.run(
            [str(prisma), "--version"],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            env=dict(env),
            cwd=cwd,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"LiteLLM's virtual keys need Prisma, whose CLI did not run: {exc}"
    if done.returncode == 0:
        return None
    lines = (done.stderr + done.stdout).strip().splitlines()
    errors = [ln.strip() for ln in lines if "error" in ln.lower()]
    error = errors[-1] if errors else (lines[-1] if lines else f"exit status {done.returncode}")
    return (
        "LiteLLM's virtual keys need prisma's query engine binary (and its schema engine, for "
        f"migrations), which is downloaded at run time: not possible offline (`prisma --version`: {error})"
    )


def start_private_redis(
    out: Path, env: Mapping[str, str], cpus: set[int] | None
) -> tuple[procs.Proc, str]:
    """A redis-server of the benchmark's own (no persistence), so that nothing else
    shares its counters. Returns it and the URL for lockgate-redis."""
    port = procs.free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(out)]
    proc = procs.start("redis", argv, log=out / "redis.log", env=env, cwd=out, cpus=cpus)
    url = f"redis://127.0.0.1:{port}/9"
    probe = redisstat.RedisProbe(url)
    deadline = time.perf_counter() + 30
    try:
        while not probe.ping():
            if not proc.alive() or time.perf_counter() > deadline:
                raise RuntimeError(f"redis-server did not start; see {proc.log}")
            time.sleep(0.05)
    except BaseException:
        proc.stop()
        raise
    finally:
        probe.close()
    return proc, url


def redis_version(url: str, private: bool) -> str:
    probe = redisstat.RedisProbe(url)
    try:
        text = probe.call("INFO", "server")
    except OSError as exc:
        return f"{url} (unreachable: {exc})"
    finally:
        probe.close()
    assert isinstance(text, bytes)
    lines = text.decode().splitlines()
    version = next((ln.split(":", 1)[1] for ln in lines if ln.startswith("redis_version:")), "?")
    who = "a redis-server of the benchmark's own" if private else "shared with its other clients"
    return f"{url} (Redis {version.strip()}, {who})"
