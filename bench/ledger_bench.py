"""Throughput with the audit ledger on against off (target: at least 80% everywhere).

Starts the fake upstream and two gateways side by side, both `lockgate serve` on the
committed `bench/lockgate.toml` with their own SQLite database: `on` as configured
(the ledger is on by default) and `off` with `[audit] enabled = false`. Then, for each
mode and concurrency, it alternates wrk runs between the two (on, off, on, off, ...)
so that both see the same machine, and reports per scenario the median req/s of each,
the median of the paired ratios on/off, and the gateways' CPU per request. `bench/run.py`
measures the two as separate targets, one after the other; this alternation is what
keeps a drifting machine from biasing the ratio.

    .venv/bin/python bench/ledger_bench.py [--rounds 5] [--duration 5] [--concurrency 1,16,64] [--pin]

Writes bench/results/ledger-<timestamp>.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import load  # noqa: E402
import procs  # noqa: E402

GOAL = 0.80


def _gateway(name: str, upstream: int, out: Path, key: str, audit: bool, cpus: set[int] | None) -> tuple[procs.Proc, int]:
    port = procs.free_port()
    text = (HERE / "lockgate.toml").read_text().replace("127.0.0.1:18080", f"127.0.0.1:{upstream}")
    db = out / f"{name}.db"
    text = text.replace("[gateway]\n", f'[gateway]\ndatabase = "sqlite:///{db}"\n', 1)
    if not audit:
        text += "\n[audit]\nenabled = false\n"
    config = out / f"{name}.toml"
    config.write_text(text)
    lockgate = str(Path(sys.executable).parent / "lockgate")
    proc = procs.start(
        name,
        [lockgate, "serve", "--config", str(config), "--port", str(port)],
        log=out / f"{name}.log",
        env={**os.environ, "BENCH_GATEWAY_KEY": key},
        cwd=out,
        cpus=cpus,
    )
    proc.wait_ready(port, "/healthz", 120.0)
    return proc, port


def _run(proc: procs.Proc, port: int, mode: str, conns: int, seconds: float, key: str,
         cpus: set[int] | None = None) -> dict[str, float]:
    before = proc.cpu_seconds()
    result = load.run_wrk(f"http://127.0.0.1:{port}/v1/chat/completions", mode, conns, seconds,
                          threads=2, key=key, cpus=cpus)
    cpu = proc.cpu_seconds() - before
    if result.errors:
        raise RuntimeError(f"{proc.name}: {result.errors} errors ({result.error_kinds})")
    return {"rps": result.rps, "p50_ms": result.p50_ms, "cpu_ms": 1000 * cpu / max(1, result.requests)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="alternating pairs of runs per scenario")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--modes", default="json,stream")
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--pin", action="store_true",
                        help="both gateways on CPU 1 (they run in turn); wrk and the upstream on CPU 0")
    args = parser.parse_args()
    pin = args.pin and (os.cpu_count() or 1) >= 2
    client, gateway = ({0}, {1}) if pin else (None, None)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = HERE / "results" / f"ledger-{stamp}"
    out.mkdir(parents=True)
    key = "sk-bench-" + secrets.token_hex(8)
    started: list[procs.Proc] = []
    scenarios: list[dict[str, Any]] = []
    try:
        up_port = procs.free_port()
        upstream = procs.start("upstream", [sys.executable, str(HERE / "upstream.py"), "--port", str(up_port)],
                               log=out / "upstream.log", env=dict(os.environ), cwd=out, cpus=client)
        started.append(upstream)
        upstream.wait_ready(up_port, "/healthz", 30.0)
        on, on_port = _gateway("on", up_port, out, key, audit=True, cpus=gateway)
        started.append(on)
        off, off_port = _gateway("off", up_port, out, key, audit=False, cpus=gateway)
        started.append(off)
        for proc, port in ((on, on_port), (off, off_port)):  # warm-up: caches, pools, JIT-free paths
            for mode in args.modes.split(","):
                _run(proc, port, mode, 16, 2.0, key, client)
        for mode in args.modes.split(","):
            for conns in (int(c) for c in args.concurrency.split(",")):
                pairs: list[tuple[dict[str, float], dict[str, float]]] = []
                for _ in range(args.rounds):
                    pairs.append((_run(on, on_port, mode, conns, args.duration, key, client),
                                  _run(off, off_port, mode, conns, args.duration, key, client)))
                ratio = statistics.median(a["rps"] / b["rps"] for a, b in pairs)
                row = {
                    "mode": mode, "connections": conns,
                    "on_rps": statistics.median(a["rps"] for a, _ in pairs),
                    "off_rps": statistics.median(b["rps"] for _, b in pairs),
                    "ratio": ratio,
                    "ratios": [round(a["rps"] / b["rps"], 3) for a, b in pairs],
                    "on_cpu_ms": statistics.median(a["cpu_ms"] for a, _ in pairs),
                    "off_cpu_ms": statistics.median(b["cpu_ms"] for _, b in pairs),
                    "on_p50_ms": statistics.median(a["p50_ms"] for a, _ in pairs),
                    "off_p50_ms": statistics.median(b["p50_ms"] for _, b in pairs),
                }
                scenarios.append(row)
                print(f"{mode} c={conns}: on {row['on_rps']:.0f} req/s, off {row['off_rps']:.0f} req/s, "
                      f"ratio {ratio:.3f} (runs {row['ratios']}), CPU {row['on_cpu_ms']:.3f} vs "
                      f"{row['off_cpu_ms']:.3f} ms/req", flush=True)
    finally:
        for proc in reversed(started):
            proc.stop()
    lines = [
        f"# Audit ledger on vs off {stamp}", "",
        f"{args.rounds} alternating pairs of {args.duration:g} s wrk runs per scenario; medians; "
        + ("gateways pinned to CPU 1, wrk and the upstream to CPU 0." if pin else "not pinned."), "",
        "| scenario | on req/s | off req/s | on/off (median of pairs) | runs | CPU ms/req on | off | p50 ms on | off | ≥ 0.80 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in scenarios:
        lines.append(
            f"| {r['mode']}-c{r['connections']} | {r['on_rps']:.0f} | {r['off_rps']:.0f} | {r['ratio']:.3f} | "
            f"{', '.join(f'{x:.2f}' for x in r['ratios'])} | {r['on_cpu_ms']:.3f} | {r['off_cpu_ms']:.3f} | "
            f"{r['on_p50_ms']:.3f} | {r['off_p50_ms']:.3f} | {'yes' if r['ratio'] >= GOAL else 'NO'} |"
        )
    report = "\n".join(lines) + "\n"
    (out.parent / f"ledger-{stamp}.md").write_text(report)
    (out.parent / f"ledger-{stamp}.json").write_text(json.dumps(scenarios, indent=2))
    print(report)
    return 0 if all(r["ratio"] >= GOAL for r in scenarios) else 1


if __name__ == "__main__":
    raise SystemExit(main())
