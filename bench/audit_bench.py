"""How fast `lockgate audit verify` checks a ledger (target: at least 50,000 events/s).

Fills a fresh SQLite ledger with N realistic events through the real `Ledger` (group
commit, canonical bodies, chain) and a signed checkpoint every 50,000 events, then
runs the same verification as `lockgate audit verify` several times and reports the
median rate, plus the append rate seen while filling. The throughput cost of the
ledger on the request path is measured by `bench/run.py` (targets `lockgate` and
`lockgate-noaudit`).

    .venv/bin/python bench/audit_bench.py [--events 200000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lockgate.audit.checkpoint import load_signer
from lockgate.audit.ledger import Ledger
from lockgate.audit.verify import verify_database
from lockgate.config.audit import AuditConfig
from lockgate.core.context import Principal
from lockgate.store import Store

ACTOR = Principal(id="0193a0b1-1234-7abc-8def-0123456789ab", kind="key", label="lg-AbCd1234", team_id="t1",
                  user_id="u1", agent_id="a1", agent_name="planner", delegation=("user:alice", "agent:planner"))


async def fill(url: str, events: int) -> tuple[float, str]:
    store = await Store.open(url)
    signer = load_signer(None, None)
    ledger = Ledger(store, AuditConfig(checkpoint_interval=0, max_batch=2000), signer=signer)
    await ledger.start()
    started = time.perf_counter()
    done = 0
    try:
        while done < events:
            n = min(2000, events - done)
            await asyncio.gather(*(
                ledger.record(
                    "gateway.request", actor=ACTOR, request_id=f"req-{done + i}", trace_id="0af7651916cd43dd8448eb211c80319c",
                    target={"endpoint": "chat", "model": "gpt-4o", "route": "gpt-4o-2024-08-06", "provider": "openai"},
                    input={"messages": [{"role": "user", "content": f"question {done + i}"}]}, output=f"answer {done + i}",
                    decision={"effect": "allow", "policies": ["policy0"]}, cost_usd=0.00123, latency_ms=12.345, status=200,
                )
                for i in range(n)
            ))
            done += n
            if done % 50_000 == 0:
                await ledger.checkpoint()
        await ledger.checkpoint()
        elapsed = time.perf_counter() - started
    finally:
        await ledger.aclose()
        await store.aclose()
    return events / elapsed, signer.public_b64


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--postgres", default=None, help="also measure on this PostgreSQL URL (its ledger tables must be empty)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        urls = [("sqlite", f"sqlite:///{Path(tmp) / 'ledger.db'}")]
        if args.postgres:
            urls.append(("postgresql", args.postgres))
        for name, url in urls:
            append_rate, public = asyncio.run(fill(url, args.events))
            rates, cpu = [], []
            for _ in range(args.repeats):
                c0 = time.process_time()
                t0 = time.perf_counter()
                report = verify_database(url, trusted_keys={public})
                wall = time.perf_counter() - t0
                cpu.append(time.process_time() - c0)
                assert report.ok and report.events == args.events, report.problems[:3]
                rates.append(args.events / wall)
            print(f"{name}: {args.events} events; append {append_rate:,.0f} events/s (group commit, one process); "
                  f"verify median {statistics.median(rates):,.0f} events/s wall "
                  f"({args.events / statistics.median(cpu):,.0f} events/s per CPU-second) over {args.repeats} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
