"""Benchmark lockgate against the direct path and LiteLLM's proxy on this machine.

Starts the fake upstream (bench/upstream.py), then for each target — `direct` (the
upstream itself), `lockgate`, `lockgate-keys`, `lockgate-redis`, `litellm`,
`litellm-keys` — starts it pointed at the upstream, measures cold start and memory,
drives it with wrk (closed loop, JSON and streaming, at each concurrency), times the
first streamed token, and writes bench/results/<timestamp>.md and .json. The `-keys`
and `-redis` targets send a virtual key with limits and budgets (created before the
load) instead of the static key; `lockgate-redis` keeps its limits in Redis, and the
benchmark counts the Redis round trips per request. Only 127.0.0.1 is contacted; every
run is bounded in time.

    bash bench/setup.sh && .venv/bin/python bench/run.py [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keyed
import load
import procs
import redisstat
import report

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
COMPLETIONS = "/v1/chat/completions"
CONFIG_UPSTREAM = "127.0.0.1:18080"  # the upstream address written in the committed configs
TARGETS = ("direct", "lockgate", "lockgate-noaudit", "lockgate-keys", "lockgate-redis", "litellm", "litellm-keys")
DEFAULT_TARGETS = "direct,lockgate,lockgate-noaudit,lockgate-keys,lockgate-redis,litellm,litellm-keys"
TTFT_BODY: dict[str, Any] = {
    "model": "bench",
    "messages": [{"role": "user", "content": "Say hello."}],
    "max_tokens": 16,
    "stream": True,
    "stream_options": {"include_usage": True},
}


@dataclass(frozen=True)
class Target:
    name: str
    argv: list[str]  # empty: the direct path (no gateway)
    health: str
    env: dict[str, str] = field(default_factory=lambda: {})
    # Returns the bearer key the load uses (default: the static BENCH_GATEWAY_KEY).
    before_start: Callable[[], str] | None = None  # once, before the first start
    after_start: Callable[[int], str] | None = None  # once, on the port of the last start
    redis: str | None = None  # Redis URL whose round trips are counted


@dataclass
class Run:
    """Settings and shared state of one benchmark run."""

    args: argparse.Namespace
    out: Path
    key: str
    upstream: procs.Proc
    upstream_port: int
    gateway_cpus: set[int] | None
    client_cpus: set[int] | None
    skipped: dict[str, str] = field(default_factory=lambda: {})  # target -> why


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short runs: 3 s each, 1 cold start")
    p.add_argument("--targets", default=DEFAULT_TARGETS, help=f"from {', '.join(TARGETS)}")
    p.add_argument("--modes", default="json,stream")
    p.add_argument("--concurrency", default="1,16,64")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    p.add_argument("--repeats", type=int, default=1, help="wrk runs per scenario (median kept)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring")
    p.add_argument("--idle", type=float, default=5.0, help="seconds idle before reading idle RSS")
    p.add_argument("--cold-starts", type=int, default=3, help="starts timed (median kept)")
    p.add_argument("--ttft-samples", type=int, default=50)
    p.add_argument("--ttft-delay-ms", type=int, default=20, help="upstream gap between chunks")
    p.add_argument("--wrk-threads", type=int, default=1)
    p.add_argument("--pin", action="store_true", help="gateway on CPU 1; wrk, upstream on CPU 0")
    p.add_argument("--start-timeout", type=float, default=120.0)
    p.add_argument("--lockgate", default=str(REPO / ".venv" / "bin" / "lockgate"))
    p.add_argument("--litellm", default=str(HERE / ".venv-litellm" / "bin" / "litellm"))
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument(
        "--redis",
        default="private",
        help="Redis for lockgate-redis: 'private' (default) starts a redis-server of its own\n"
        "on a free port, so that no other client skews the server-wide counters; or a URL\n"
        "such as redis://127.0.0.1:6379/9 (that database is flushed first)",
    )
    p.add_argument(
        "--litellm-database",
        default="postgresql://postgres@127.0.0.1:5432/litellm_bench",
        help="DATABASE_URL for litellm-keys (LiteLLM's virtual keys need it, through Prisma)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.repeats, args.warmup, args.idle = 3.0, 1, 1.0, 1.0
        args.cold_starts, args.ttft_samples = 1, 15
    return args


def _config(
    template: str, upstream_port: int, out: Path, name: str = "", gateway: tuple[str, ...] = (), extra: str = ""
) -> Path:
    """A copy of a committed config with the upstream's port; for lockgate, `gateway`
    lines are added to its [gateway] table."""
    text = (HERE / template).read_text().replace(CONFIG_UPSTREAM, f"127.0.0.1:{upstream_port}")
    if gateway:
        text = text.replace("[gateway]\n", "[gateway]\n" + "".join(f"{ln}\n" for ln in gateway), 1)
    path = out / (name or template)
    path.write_text(text + extra)
    return path


def _targets(run: Run, port_for: dict[str, int]) -> list[Target]:
    wanted = [t.strip() for t in run.args.targets.split(",") if t.strip()]
    if "direct" not in wanted:
        wanted.insert(0, "direct")  # the baseline every added latency is measured against
    out: list[Target] = []
    for name in wanted:
        port = str(port_for.get(name, 0))
        if name == "direct":
            out.append(Target("direct", [], "/healthz"))
        elif name in ("lockgate", "lockgate-noaudit"):
            # Both on their own SQLite file; `lockgate` keeps the audit ledger (the
            # default), `lockgate-noaudit` turns it off: their ratio is the ledger's cost.
            lines = (f'database = "sqlite:///{run.out / name}.db"',)
            extra = "\n[audit]\nenabled = false\n" if name == "lockgate-noaudit" else ""
            config = _config("lockgate.toml", run.upstream_port, run.out, f"{name}.toml", lines, extra)
            argv = [run.args.lockgate, "serve", "--config", str(config)]
            out.append(Target(name, [*argv, "--port", port], "/healthz"))
        elif name in ("lockgate-keys", "lockgate-redis"):
            redis = run.args.redis if name == "lockgate-redis" else None
            lines = [f'database = "sqlite:///{run.out / name}.db"']
            lines += [f'redis = "{redis}"'] if redis else []
            config = _config(
                "lockgate.toml", run.upstream_port, run.out, f"{name}.toml", tuple(lines)
            )
            argv = [run.args.lockgate, "serve", "--config", str(config), "--port", port]
            env = _env(run, {})
            prepare = _bind(keyed.lockgate_key, run.args.lockgate, config, redis, env, run.out)
            out.append(Target(name, argv, "/healthz", before_start=prepare, redis=redis))
        elif name in ("litellm", "litellm-keys"):
            config = _config("litellm.yaml", run.upstream_port, run.out)
            argv = [run.args.litellm, "--config", str(config), "--port", port, "--num_workers", "1"]
            env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}  # no network fetch at start
            if name == "litellm":
                out.append(Target(name, argv, "/health/liveliness", env))
            else:
                env["DATABASE_URL"] = run.args.litellm_database
                after = _bind(keyed.litellm_key, run.key)
                out.append(Target(name, argv, "/health/liveliness", env, after_start=after))
        else:
            raise SystemExit(f"unknown target {name!r} ({', '.join(TARGETS)})")
    return out


def _bind(fn: Callable[..., str], *args: Any) -> Callable[..., str]:
    return lambda *more: fn(*args, *more)


def _env(run: Run, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update({"BENCH_GATEWAY_KEY": run.key, "NO_PROXY": "*", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def _start(run: Run, target: Target, port: int, attempt: int) -> tuple[procs.Proc, float]:
    if procs.port_is_open(port):
        raise RuntimeError(f"port {port} is already in use")
    cwd = run.out / f"{target.name}-cwd"
    cwd.mkdir(exist_ok=True)
    proc = procs.start(
        target.name,
        target.argv,
        log=run.out / f"{target.name}-{attempt}.log",
        env=_env(run, target.env),
        cwd=cwd,
        cpus=run.gateway_cpus,
    )
    try:
        return proc, proc.wait_ready(port, target.health, run.args.start_timeout)
    except BaseException:
        proc.stop()
        raise


def _cold_start(run: Run, target: Target, port: int) -> tuple[procs.Proc, Any]:
    """Start `cold_starts` times (the last one stays up); the median spawn-to-ready time."""
    times: list[float] = []
    starts = max(1, run.args.cold_starts)
    for attempt in range(starts - 1):
        proc, seconds = _start(run, target, port, attempt)
        times.append(seconds)
        _log(f"  {target.name}: ready in {seconds:.2f} s (pid {proc.pid})")
        proc.stop()
    proc, seconds = _start(run, target, port, starts - 1)
    times.append(seconds)
    _log(f"  {target.name}: ready in {seconds:.2f} s (pid {proc.pid})")
    info = {"cold_start_s": statistics.median(times), "cold_start_runs_s": times}
    return proc, info


def _first_request(port: int, key: str) -> float:
    body = json.dumps({"model": "bench", "messages": [{"role": "user", "content": "hi"}]}).encode()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    t0 = time.perf_counter()
    status, data = procs.request(port, "POST", COMPLETIONS, body, headers)
    if status != 200:
        raise RuntimeError(f"first request: HTTP {status}: {data[:300]!r}")
    return (time.perf_counter() - t0) * 1000


@dataclass
class Load:
    """How one target is driven: its bearer key and, in Redis mode, the Redis meter."""

    url: str
    key: str
    redis: redisstat.Meter | None = None


def _scenario(run: Run, gateway: procs.Proc, ld: Load, mode: str, conns: int) -> dict[str, Any]:
    samples: list[dict[str, Any]] = []
    redis = redisstat.ZERO
    for _ in range(max(1, run.args.repeats)):
        mark = ld.redis.mark() if ld.redis else None
        cpu0, up0 = gateway.cpu_seconds(), run.upstream.cpu_seconds()
        busy0, wrk0, wall0 = procs.machine_busy_seconds(), _children_cpu(), time.perf_counter()
        res = load.run_wrk(
            ld.url,
            mode,
            conns,
            run.args.duration,
            threads=run.args.wrk_threads,
            key=ld.key,
            cpus=run.client_cpus,
        )
        cpu1, up1 = gateway.cpu_seconds(), run.upstream.cpu_seconds()
        busy1, wrk1, wall1 = procs.machine_busy_seconds(), _children_cpu(), time.perf_counter()
        n = max(res.requests, 1)
        ours = (cpu1 - cpu0) + (wrk1 - wrk0) + (0 if gateway is run.upstream else up1 - up0)
        if ld.redis and mark:
            counted = ld.redis.since(mark)
            redis = redis + counted
            ours += counted.cpu_s  # Redis is part of the system under test here
        samples.append(
            {
                "rps": res.rps,
                "p50_ms": res.p50_ms,
                "p90_ms": res.p90_ms,
                "p99_ms": res.p99_ms,
                "mean_ms": res.mean_ms,
                "requests": res.requests,
                "errors": res.errors,
                "error_kinds": res.error_kinds,
                "cpu_ms_per_req": (cpu1 - cpu0) * 1000 / n,
                "upstream_cpu_ms_per_req": (up1 - up0) * 1000 / n,
                "wrk_cpu_ms_per_req": (wrk1 - wrk0) * 1000 / n,
                "other_cpu_cores": max(0.0, (busy1 - busy0) - ours) / (wall1 - wall0),
            }
        )
    out: dict[str, Any] = {"mode": mode, "concurrency": conns, "repeats": len(samples)}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if key == "error_kinds":
            out[key] = {k: sum(v.get(k, 0) for v in values) for k in {k for v in values for k in v}}
        elif key in ("requests", "errors"):
            out[key] = sum(values)
        else:
            out[key] = statistics.median(values)
    if ld.redis:
        out["redis"] = _per_request(redis, max(out["requests"], 1))
    return out


def _per_request(c: redisstat.Counters, n: int) -> dict[str, Any]:
    """Redis work per request, summed over the repeats (noise below zero shows as 0)."""
    return {
        "round_trips_per_req": max(0.0, c.reads / n),
        "scripts_per_req": max(0.0, c.scripts / n),
        "commands_per_req": max(0.0, c.commands / n),
        "cpu_ms_per_req": max(0.0, c.cpu_s * 1000 / n),
        "per_command_per_req": {k: round(v / n, 4) for k, v in c.per_command.items()},
    }


def _children_cpu() -> float:
    """CPU time of this process's waited-for children (wrk runs): user + system."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _measure(run: Run, target: Target, proc: procs.Proc, ld: Load, port: int) -> dict[str, Any]:
    """Everything after the gateway is ready: memory, load, time to first token."""
    args = run.args
    out: dict[str, Any] = {
        "first_request_ms": _first_request(port, ld.key),
        "rss_ready_mb": proc.rss_mb(),
    }
    for mode in args.modes.split(","):
        load.run_wrk(
            ld.url,
            mode,
            16,
            args.warmup,
            threads=args.wrk_threads,
            key=ld.key,
            cpus=run.client_cpus,
        )
    cpu0, wall0 = proc.cpu_seconds(), time.perf_counter()
    # The Redis background is read from 1 s into the idle time: the warm-up's last
    # settlements reach Redis just after wrk stops, and they are not background.
    settle = min(1.0, args.idle / 2) if ld.redis else 0.0
    time.sleep(settle)
    mark = ld.redis.mark() if ld.redis else None
    time.sleep(args.idle - settle)
    out["idle_cpu_pct"] = (proc.cpu_seconds() - cpu0) * 100 / (time.perf_counter() - wall0)
    if ld.redis and mark:
        # What the rest of the server (other databases, other clients) does per second,
        # with this gateway idle: subtracted from every load run's counts.
        ld.redis.calibrate(mark)
        bg = ld.redis.background
        out["redis_background_per_s"] = {
            "reads": bg.reads,
            "commands": bg.commands,
            "scripts": bg.scripts,
            "cpu_ms": bg.cpu_s * 1000,
        }
    out["rss_idle_mb"] = proc.rss_mb()
    out["processes"] = proc.processes()
    scenarios: dict[str, Any] = {}
    for mode in args.modes.split(","):
        for conns in (int(c) for c in args.concurrency.split(",")):
            s = _scenario(run, proc, ld, mode, conns)
            scenarios[f"{mode}-c{conns}"] = s
            rt = f", Redis {s['redis']['round_trips_per_req']:.3f} RT/req" if "redis" in s else ""
            _log(
                f"  {target.name} {mode} c={conns}: {s['rps']:.0f} req/s, p50 {s['p50_ms']:.3f} ms, "
                f"p99 {s['p99_ms']:.3f} ms, CPU {s['cpu_ms_per_req']:.3f} ms/req{rt}, "
                f"errors {s['errors']}"
            )
    out["scenarios"] = scenarios
    for key, delay in (("ttft", args.ttft_delay_ms), ("ttft_burst", 0)):
        body = {
            **TTFT_BODY,
            "messages": [{"role": "user", "content": f"Say hello. [delay={delay}]"}],
        }
        try:
            out[key] = load.time_to_first_token(port, COMPLETIONS, body, ld.key, args.ttft_samples)
        except RuntimeError as exc:
            out[key] = {"error": str(exc)}
            _log(f"  {target.name} TTFT ({delay} ms between chunks) FAILED: {exc}")
            continue
        _log(
            f"  {target.name} TTFT p50 {out[key]['ttft_p50_ms']:.3f} ms ({delay} ms between chunks)"
        )
    out["rss_peak_mb"] = proc.peak_rss_mb()
    return out


def _bench(run: Run, target: Target, port: int) -> dict[str, Any]:
    _log(f"{target.name}: {' '.join(target.argv) or 'the upstream itself'}")
    if not target.argv:
        ld = Load(f"http://127.0.0.1:{run.upstream_port}{COMPLETIONS}", run.key)
        return _measure(run, target, run.upstream, ld, run.upstream_port)
    key = target.before_start() if target.before_start else run.key
    proc, info = _cold_start(run, target, port)
    meter = redisstat.Meter(target.redis) if target.redis else None
    try:
        if target.after_start:
            key = target.after_start(port)
        ld = Load(f"http://127.0.0.1:{port}{COMPLETIONS}", key, meter)
        return {**info, **_measure(run, target, proc, ld, port)}
    finally:
        if meter:
            meter.close()
        proc.stop()
        if proc.popen.returncode not in (0, -15, None):
            _log(f"  {target.name} exited with {proc.popen.returncode} (see {proc.log})")


def _version(argv: list[str], any_status: bool = False) -> str:
    """The first line a command prints, or "unavailable" (also on failure, unless any_status)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except OSError as exc:
        return f"unavailable ({exc.strerror})"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if (done.returncode == 0 or any_status) and text else "unavailable"


def _available(run: Run) -> None:
    """Drop targets whose program is missing or lacks what the benchmark uses; the
    report says why (`run.skipped`)."""
    names = [t.strip() for t in run.args.targets.split(",") if t.strip()]
    why: dict[str, str] = {}
    lockgates = [n for n in names if n.startswith("lockgate")]
    if lockgates and _version([run.args.lockgate, "serve", "--help"]) == "unavailable":
        why |= {n: f"`{run.args.lockgate} serve` is not available" for n in lockgates}
    if "lockgate-redis" in names and "lockgate-redis" not in why:
        if run.args.redis == "private":  # main() found no redis-server to start
            why["lockgate-redis"] = "redis-server is not installed (apt-get install redis-server)"
        else:
            probe = redisstat.RedisProbe(run.args.redis)
            if not probe.ping():
                why["lockgate-redis"] = f"no Redis answers at {run.args.redis}"
            probe.close()
    litellms = [n for n in names if n.startswith("litellm")]
    if litellms and not Path(run.args.litellm).exists():
        why |= {n: f"{run.args.litellm} missing (run bash bench/setup.sh)" for n in litellms}
    if "litellm-keys" in names and "litellm-keys" not in why:
        problem = keyed.prisma_problem(run.args.litellm, _env(run, {}), run.out)
        if problem:
            why["litellm-keys"] = problem
    for name, reason in why.items():
        _log(f"{name}: skipped: {reason}")
        names.remove(name)
    run.skipped.update(why)
    run.args.targets = ",".join(names)


def _meta(run: Run, stamp: str, upstream_banner: str, private: bool) -> dict[str, Any]:
    args = run.args
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    litellm_py = str(Path(args.litellm).parent / "python")
    git = _version(["git", "-C", str(REPO), "describe", "--always", "--dirty"])
    return {
        "timestamp": stamp,
        "machine": f"{os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}",
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": sys.version.split()[0],
        "wrk": _version(["wrk", "-v"], any_status=True).split(" [")[0],
        "lockgate": f"git {git}",
        "litellm": _version(
            [litellm_py, "-c", "import importlib.metadata as m; print(m.version('litellm'))"]
        ),
        "upstream": upstream_banner,
        "redis": keyed.redis_version(args.redis, private)
        if "lockgate-redis" in args.targets
        else "not used",
        "settings": (
            f"{args.duration:g} s per run x {args.repeats} (median), concurrency {args.concurrency}, "
            f"wrk -t{args.wrk_threads}, warmup {args.warmup:g} s, idle {args.idle:g} s, "
            f"cold starts {args.cold_starts} (median), TTFT {args.ttft_samples} samples with "
            f"{args.ttft_delay_ms} ms between upstream chunks (burst: 0 ms)"
        ),
        "cpu sharing": (
            "gateway pinned to CPU 1; wrk, upstream and probes to CPU 0"
            if args.pin
            else "not pinned: wrk, upstream and gateway share all CPUs"
        ),
    }


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _start_upstream(out: Path, cpus: set[int] | None) -> tuple[procs.Proc, int, str]:
    port = procs.free_port()
    proc = procs.start(
        "upstream",
        [sys.executable, str(HERE / "upstream.py"), "--port", str(port)],
        log=out / "upstream.log",
        env=dict(os.environ),
        cwd=out,
        cpus=cpus,
    )
    try:
        proc.wait_ready(port, "/healthz", 30.0)
    except BaseException:
        proc.stop()
        raise
    banner = proc.log.read_text().strip().splitlines()[0]
    return proc, port, banner


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: run `bash bench/setup.sh` first")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out) / stamp
    out.mkdir(parents=True)
    pin = args.pin and (os.cpu_count() or 1) >= 2
    client_cpus, gateway_cpus = ({0}, {1}) if pin else (None, None)
    if client_cpus:
        os.sched_setaffinity(0, client_cpus)  # the TTFT probe runs in this process
    upstream, up_port, banner = _start_upstream(out, client_cpus)
    run = Run(
        args, out, f"sk-bench-{secrets.token_hex(16)}", upstream, up_port, gateway_cpus, client_cpus
    )
    results: dict[str, dict[str, Any]] = {}
    redis_server: procs.Proc | None = None
    try:
        wants_redis = "lockgate-redis" in args.targets
        if args.redis == "private" and wants_redis and shutil.which("redis-server"):
            redis_server, args.redis = keyed.start_private_redis(out, dict(os.environ), client_cpus)
        _available(run)
        meta = _meta(run, stamp, banner, redis_server is not None)
        ports = {name: procs.free_port() for name in TARGETS if name != "direct"}
        for target in _targets(run, ports):
            try:
                results[target.name] = _bench(run, target, ports.get(target.name, up_port))
            except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as exc:
                _log(f"{target.name}: FAILED: {exc}")
                results[target.name] = {"error": str(exc)}
    finally:
        upstream.stop()
        if redis_server is not None:
            redis_server.stop()
    meta["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    summary = report.compare(results, run.skipped)
    text = report.render(meta, results, summary)
    md, js = Path(args.out) / f"{stamp}.md", Path(args.out) / f"{stamp}.json"
    md.write_text(text + "\n")
    js.write_text(json.dumps({"meta": meta, "targets": results, **summary}, indent=2) + "\n")
    print(text)
    _log(f"written: {md} and {js} (logs in {out})")
    return 0 if all("error" not in r for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
