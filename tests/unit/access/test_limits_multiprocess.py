"""Three gateway processes share one Redis: limits hold across them.

The test starts this file three times as a script (`worker`). Once all are ready,
it tells them a start time; from then on, every `PHASE` seconds, each process fires its
share of 100 concurrent reserve+settle calls at the next scenario, so the processes
compete for the same limits at the same moment, and reports what it was admitted.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from lockgate.access.limits import LimitScope, Reservation
from lockgate.access.limits_redis import RedisLimiter
from lockgate.access.models import Limits
from lockgate.errors import BudgetExceeded, RateLimited

REDIS_URL = os.environ.get("LOCKGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
NOW = datetime(2025, 3, 14, 12, 0, 30, tzinfo=UTC).timestamp()
SHARES = (34, 33, 33)
RPM = LimitScope("key", "lg-multi", Limits(rpm=30))
BUDGET = LimitScope("team", "t-exact", Limits(budget_day_usd=1.0))
BUDGET_UNDER = LimitScope("team", "t-under", Limits(budget_day_usd=1.0))
CONCURRENT = LimitScope("agent", "a-multi", Limits(max_concurrent=5))
ESTIMATE = 0.05  # USD reserved per request
PHASE = 0.3  # seconds per scenario


def test_three_processes_share_the_limits() -> None:
    prefix = f"lgtest:{uuid.uuid4().hex}"
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, REDIS_URL, prefix, str(share)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for share in SHARES
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline() == "ready\n"
        start = time.time() + 0.1
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(f"{start}\n")
            p.stdin.flush()
        reports: list[dict[str, Any]] = [json.loads(p.communicate(timeout=20)[0]) for p in procs]
        usage = asyncio.run(_usage(prefix))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        asyncio.run(_cleanup(prefix))

    assert sum(r["rpm"] for r in reports) == 30
    assert sum(r["budget"] for r in reports) == 20  # $1.00 at $0.05, settled at the estimate
    assert usage["t-exact"] == 1.0
    # Settled below the estimate: freed budget admits more, never beyond the budget.
    assert sum(r["budget_under"] for r in reports) >= 20
    assert usage["t-under"] <= 1.0 + ESTIMATE
    # Every call waits for a slot: all 100 get one, never more than 5 at a time.
    intervals = [tuple(i) for r in reports for i in r["held"]]
    assert len(intervals) == 100
    assert _peak(intervals) <= 5


async def _usage(prefix: str) -> dict[str, float]:
    lim = RedisLimiter(REDIS_URL, prefix, clock=lambda: NOW)
    try:
        return {s.id: (await lim.usage(s))["spent_day_usd"] for s in (BUDGET, BUDGET_UNDER)}
    finally:
        await lim.aclose()


async def _cleanup(prefix: str) -> None:
    client = Redis.from_url(REDIS_URL)
    try:
        keys = await client.keys("{" + prefix + "}*")
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def _peak(intervals: list[tuple[float, ...]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    peak = current = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


# -- the worker process ----------------------------------------------------------------


async def worker(url: str, prefix: str, share: int) -> dict[str, Any]:
    limiter = RedisLimiter(url, prefix, clock=lambda: NOW)
    await limiter.start()
    print("ready", flush=True)
    start = float(await asyncio.to_thread(sys.stdin.readline))
    held: list[tuple[float, float]] = []

    async def call(scope: LimitScope, actual: float) -> bool:
        try:
            r: Reservation = await limiter.reserve([scope], tokens=100, cost_usd=ESTIMATE)
        except (RateLimited, BudgetExceeded):
            return False
        await limiter.settle(r, tokens=50, cost_usd=actual)
        return True

    async def wait_for_slot() -> None:
        while True:
            try:
                r = await limiter.reserve([CONCURRENT], tokens=1, cost_usd=0.0)
                break
            except RateLimited:
                await asyncio.sleep(0.01)
        began = time.time()
        await asyncio.sleep(0.01)
        held.append((began, time.time()))
        await limiter.settle(r, tokens=1, cost_usd=0.0)

    async def burst(phase: int, scope: LimitScope, actual: float) -> int:
        await asyncio.sleep(max(0.0, start + phase * PHASE - time.time()))
        return sum(await asyncio.gather(*(call(scope, actual) for _ in range(share))))

    actual_under = ESTIMATE * random.Random(share).uniform(0.5, 1.0)
    report = {
        "rpm": await burst(0, RPM, ESTIMATE),
        "budget": await burst(1, BUDGET, ESTIMATE),
        "budget_under": await burst(2, BUDGET_UNDER, actual_under),
    }
    await asyncio.sleep(max(0.0, start + 3 * PHASE - time.time()))
    await asyncio.gather(*(wait_for_slot() for _ in range(share)))
    await limiter.aclose()
    return {**report, "held": held}


if __name__ == "__main__":
    url, prefix, share = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print(json.dumps(asyncio.run(worker(url, prefix, share))))
