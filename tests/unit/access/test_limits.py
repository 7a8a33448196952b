"""The limiter contract, run on MemoryLimiter and RedisLimiter alike, then what only
Redis does: batching, slot expiry and renewal, failing closed or open."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from lockgate.access.limits import Limiter, LimitScope, MemoryLimiter, Reservation, Usage
from lockgate.access.limits_redis import RedisLimiter
from lockgate.access.models import Limits
from lockgate.errors import BudgetExceeded, LimiterUnavailable, RateLimited

REDIS_URL = os.environ.get("LOCKGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# 2025-03-14 12:00:00 UTC, a minute boundary, 12 hours before the next UTC day.
T0 = datetime(2025, 3, 14, 12, 0, tzinfo=UTC).timestamp()
DAY = 86_400.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def key(**limits: Any) -> LimitScope:
    return LimitScope("key", "lg-AbCd1234", Limits(**limits))


def team(**limits: Any) -> LimitScope:
    return LimitScope("team", "t1", Limits(**limits))


async def cleanup(prefix: str) -> None:
    client = Redis.from_url(REDIS_URL)
    try:
        keys = await client.keys("{" + prefix + "}*")
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def prefix() -> str:
    return f"lgtest:{uuid.uuid4().hex}"


@pytest.fixture(params=["memory", "redis"])
async def limiter(
    request: pytest.FixtureRequest, clock: Clock, prefix: str
) -> AsyncIterator[Limiter]:
    lim: Limiter
    lim = (
        MemoryLimiter(clock=clock)
        if request.param == "memory"
        else RedisLimiter(REDIS_URL, prefix, clock=clock)
    )
    await lim.start()
    try:
        yield lim
    finally:
        await lim.aclose()
        await cleanup(prefix)


async def fails(call: Awaitable[object]) -> RateLimited | BudgetExceeded:
    with pytest.raises((RateLimited, BudgetExceeded)) as info:
        await call
    return info.value


def described(err: RateLimited | BudgetExceeded) -> tuple[Any, ...]:
    retry = None if err.retry_after is None else round(err.retry_after, 3)
    return (type(err).__name__, err.status, err.code, err.openai_type, err.message, retry)


# -- each limit fires with its error -----------------------------------------------


async def test_rpm_fires_and_frees_when_retry_after_says(limiter: Limiter, clock: Clock) -> None:
    scope = key(rpm=2)
    clock.now = T0 + 15
    await limiter.reserve([scope], tokens=10, cost_usd=0.0)
    await limiter.reserve([scope], tokens=10, cost_usd=0.0)
    err = await fails(limiter.reserve([scope], tokens=10, cost_usd=0.0))
    # The two requests must fade to one: at 30 s into the next minute (weight 1/2).
    assert described(err) == (
        "RateLimited",
        429,
        "rate_limit_exceeded",
        "requests",
        "Rate limit reached for key lg-AbCd1234: 2 requests per minute",
        75.0,
    )
    clock.now += 74.9
    await fails(limiter.reserve([scope], tokens=10, cost_usd=0.0))
    clock.now += 0.1
    await limiter.reserve([scope], tokens=10, cost_usd=0.0)


async def test_tpm_fires_and_a_request_larger_than_the_limit_never_passes(
    limiter: Limiter,
) -> None:
    scope = LimitScope("user", "u1", Limits(tpm=1000))
    await limiter.reserve([scope], tokens=600, cost_usd=0.0)
    err = await fails(limiter.reserve([scope], tokens=500, cost_usd=0.0))
    assert described(err) == (
        "RateLimited",
        429,
        "rate_limit_exceeded",
        "tokens",
        "Rate limit reached for user u1: 1000 tokens per minute",
        60 + 60 * (1 - 500 / 600),
    )
    err = await fails(limiter.reserve([scope], tokens=1001, cost_usd=0.0))
    assert described(err) == (
        "RateLimited",
        429,
        "rate_limit_exceeded",
        "tokens",
        "Request too large for user u1: 1001 tokens requested, limit 1000 tokens per minute",
        None,
    )


async def test_concurrency_frees_on_settle_and_on_release(limiter: Limiter) -> None:
    scope = LimitScope("agent", "a1", Limits(max_concurrent=1))
    first = await limiter.reserve([scope], tokens=1, cost_usd=0.0)
    err = await fails(limiter.reserve([scope], tokens=1, cost_usd=0.0))
    assert described(err) == (
        "RateLimited",
        429,
        "rate_limit_exceeded",
        "requests",
        "Concurrency limit reached for agent a1: 1 concurrent requests",
        1.0,
    )
    await limiter.settle(first, tokens=1, cost_usd=0.0)
    second = await limiter.reserve([scope], tokens=1, cost_usd=0.0)
    await limiter.release(second)
    await limiter.reserve([scope], tokens=1, cost_usd=0.0)


async def test_day_budget_fires_until_the_next_utc_day(limiter: Limiter, clock: Clock) -> None:
    scope = team(budget_day_usd=1.0)
    for _ in range(2):
        r = await limiter.reserve([scope], tokens=1, cost_usd=0.4)
        await limiter.settle(r, tokens=1, cost_usd=0.4)
    err = await fails(limiter.reserve([scope], tokens=1, cost_usd=0.4))
    assert described(err) == (
        "BudgetExceeded",
        429,
        "budget_exceeded",
        "insufficient_quota",
        "Budget exhausted for team t1: $1.00 per day",
        12 * 3600.0,
    )
    await limiter.reserve([scope], tokens=1, cost_usd=0.2)  # what is left still fits
    clock.now = ts(2025, 3, 15)
    await limiter.reserve([scope], tokens=1, cost_usd=0.9)


async def test_month_budget_rolls_over_on_the_first(limiter: Limiter, clock: Clock) -> None:
    scope = team(budget_month_usd=1.0)
    await limiter.reserve([scope], tokens=1, cost_usd=1.0)
    clock.now = ts(2025, 3, 31, 23, 59, 30)
    err = await fails(limiter.reserve([scope], tokens=1, cost_usd=0.01))
    assert described(err) == (
        "BudgetExceeded",
        429,
        "budget_exceeded",
        "insufficient_quota",
        "Budget exhausted for team t1: $1.00 per month",
        30.0,
    )
    clock.now = ts(2025, 4, 1)
    await limiter.reserve([scope], tokens=1, cost_usd=1.0)


async def test_a_request_above_the_whole_budget_never_passes(limiter: Limiter) -> None:
    err = await fails(limiter.reserve([team(budget_day_usd=0.5)], tokens=1, cost_usd=0.75))
    assert described(err) == (
        "BudgetExceeded",
        429,
        "budget_exceeded",
        "insufficient_quota",
        "Request too expensive for team t1: estimated $0.7500 exceeds the budget of $0.50 per day",
        None,
    )


# -- all or nothing, settle, release --------------------------------------------------


async def test_nothing_is_counted_when_one_scope_refuses(limiter: Limiter) -> None:
    k, t = key(rpm=10, max_concurrent=5), team(tpm=100)
    err = await fails(limiter.reserve([k, t], tokens=150, cost_usd=0.5))
    assert (
        err.message
        == "Request too large for team t1: 150 tokens requested, limit 100 tokens per minute"
    )
    assert await limiter.usage(k) == usage()
    assert await limiter.usage(t) == usage()
    await limiter.reserve([k, t], tokens=50, cost_usd=0.5)
    assert await limiter.usage(k) == usage(requests=1, tokens=50, concurrent=1, spent=0.5)
    assert await limiter.usage(t) == usage(requests=1, tokens=50, concurrent=1, spent=0.5)


async def test_the_limit_that_frees_last_is_named(limiter: Limiter) -> None:
    k, t = key(rpm=1), team(budget_day_usd=1.0)
    await limiter.reserve([k, t], tokens=1, cost_usd=1.0)
    err = await fails(limiter.reserve([k, t], tokens=1, cost_usd=0.5))
    assert err.message == "Budget exhausted for team t1: $1.00 per day"


async def test_settle_replaces_the_estimate_with_the_actual(limiter: Limiter) -> None:
    scope = team(tpm=1000, budget_day_usd=1.0)
    r = await limiter.reserve([scope], tokens=800, cost_usd=0.8)
    await limiter.settle(r, tokens=300, cost_usd=0.3)
    assert await limiter.usage(scope) == usage(requests=1, tokens=300, spent=0.3)
    r = await limiter.reserve([scope], tokens=700, cost_usd=0.7)
    await limiter.settle(r, tokens=900, cost_usd=0.9)  # more than reserved: counted
    await limiter.settle(r, tokens=1, cost_usd=0.0)  # a second settle does nothing
    assert await limiter.usage(scope) == usage(requests=2, tokens=1200, spent=1.2)
    err = await fails(limiter.reserve([scope], tokens=0, cost_usd=0.0))
    assert err.message == "Budget exhausted for team t1: $1.00 per day"


async def test_release_returns_all_but_the_request(limiter: Limiter) -> None:
    scope = key(rpm=1, tpm=100, max_concurrent=1, budget_day_usd=1.0)
    r = await limiter.reserve([scope], tokens=100, cost_usd=1.0)
    await limiter.release(r)
    assert await limiter.usage(scope) == usage(requests=1)
    err = await fails(limiter.reserve([scope], tokens=100, cost_usd=1.0))
    assert err.message == "Rate limit reached for key lg-AbCd1234: 1 requests per minute"


async def test_cost_stays_with_the_day_it_was_reserved_in(limiter: Limiter, clock: Clock) -> None:
    scope = team(budget_day_usd=1.0)
    clock.now = ts(2025, 3, 14, 23, 59, 30)
    r = await limiter.reserve([scope], tokens=10, cost_usd=0.5)
    clock.now = ts(2025, 3, 15, 0, 0, 10)
    await limiter.settle(r, tokens=10, cost_usd=0.2)
    got = await limiter.usage(scope)
    assert (got["day"], got["spent_day_usd"], got["spent_month_usd"]) == ("2025-03-15", 0, 0.2)


async def test_the_previous_minute_fades_out(limiter: Limiter, clock: Clock) -> None:
    scope = key(rpm=10)
    clock.now = T0 + 30
    for _ in range(10):
        await limiter.reserve([scope], tokens=1, cost_usd=0.0)
    clock.now = T0 + 75  # a quarter into the next minute: 7.5 still count
    assert (await limiter.usage(scope))["requests_per_minute"] == 7.5
    await limiter.reserve([scope], tokens=1, cost_usd=0.0)
    await limiter.reserve([scope], tokens=1, cost_usd=0.0)
    await fails(limiter.reserve([scope], tokens=1, cost_usd=0.0))


async def test_a_zero_limit_blocks_for_good(limiter: Limiter) -> None:
    err = await fails(limiter.reserve([key(rpm=0)], tokens=1, cost_usd=0.0))
    assert (err.message, err.retry_after) == (
        "Rate limit reached for key lg-AbCd1234: 0 requests per minute",
        None,
    )
    err = await fails(limiter.reserve([key(max_concurrent=0)], tokens=1, cost_usd=0.0))
    assert err.retry_after is None


async def test_no_scopes_counts_nothing_and_bad_requests_are_refused(limiter: Limiter) -> None:
    r = await limiter.reserve([], tokens=10, cost_usd=1.0)
    assert (r.scopes, r.counted) == ((), False)
    await limiter.settle(r, tokens=10, cost_usd=1.0)
    with pytest.raises(ValueError, match="appears twice"):
        await limiter.reserve([key(rpm=1), key(rpm=2)], tokens=1, cost_usd=0.0)
    with pytest.raises(ValueError, match="negative"):
        await limiter.reserve([key(rpm=1)], tokens=-1, cost_usd=0.0)
    assert limiter.healthy


async def test_concurrent_reservations_admit_exactly_the_limit(limiter: Limiter) -> None:
    scope = key(rpm=30, max_concurrent=100)

    async def one() -> bool:
        try:
            r = await limiter.reserve([scope], tokens=1, cost_usd=0.0)
        except RateLimited:
            return False
        await limiter.settle(r, tokens=1, cost_usd=0.0)
        return True

    admitted = await asyncio.gather(*(one() for _ in range(100)))
    assert sum(admitted) == 30
    assert await limiter.usage(scope) == usage(requests=30, tokens=30)


def usage(
    *, requests: float = 0, tokens: float = 0, concurrent: int = 0, spent: float = 0.0
) -> Usage:
    return Usage(
        requests_per_minute=requests,
        tokens_per_minute=tokens,
        concurrent=concurrent,
        day="2025-03-14",
        spent_day_usd=spent,
        month="2025-03",
        spent_month_usd=spent,
    )


# -- Redis only ----------------------------------------------------------------------


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def redis_pair(
    clock: Clock, prefix: str
) -> AsyncIterator[Callable[..., Awaitable[RedisLimiter]]]:
    """Makes limiters sharing one prefix, like processes sharing one Redis."""
    made: list[RedisLimiter] = []

    async def make(**options: Any) -> RedisLimiter:
        lim = RedisLimiter(REDIS_URL, prefix, clock=clock, **options)
        await lim.start()
        made.append(lim)
        return lim

    try:
        yield make
    finally:
        for lim in made:
            await lim.aclose()
        await cleanup(prefix)


async def test_redis_fails_closed_when_unreachable(closed_port: int, clock: Clock) -> None:
    lim = RedisLimiter(f"redis://127.0.0.1:{closed_port}/0", "x", clock=clock)
    await lim.start()
    try:
        assert lim.healthy is False
        for _ in range(2):  # the second one does not even try
            with pytest.raises(LimiterUnavailable) as info:
                await lim.reserve([key(rpm=1)], tokens=1, cost_usd=0.0)
            err = info.value
            assert (err.status, err.code, err.retry_after) == (503, "limits_unavailable", 1.0)
    finally:
        await lim.aclose()


async def test_redis_fails_open_when_configured(closed_port: int, clock: Clock) -> None:
    lim = RedisLimiter(f"redis://127.0.0.1:{closed_port}/0", "x", clock=clock, fail_open=True)
    await lim.start()
    try:
        r = await lim.reserve([key(rpm=1)], tokens=1, cost_usd=0.0)
        assert (r.counted, lim.healthy) == (False, False)
        await lim.settle(r, tokens=1, cost_usd=0.0)
        await lim.release(r)
        with pytest.raises(LimiterUnavailable):
            await lim.usage(key(rpm=1))
    finally:
        await lim.aclose()


async def test_redis_recovers_and_settle_survives_an_outage(
    redis_pair: Callable[..., Awaitable[RedisLimiter]], monkeypatch: pytest.MonkeyPatch
) -> None:
    lim = await redis_pair(retry_interval=0.0)
    scope = key(max_concurrent=1)
    held = await lim.reserve([scope], tokens=1, cost_usd=0.0)
    client = lim._redis  # pyright: ignore[reportPrivateUsage]
    working = client.evalsha

    def broken(*args: Any) -> Any:
        raise RedisConnectionError("connection refused")

    monkeypatch.setattr(client, "evalsha", broken)
    await lim.settle(held, tokens=1, cost_usd=0.0)  # dropped and logged, not raised
    with pytest.raises(LimiterUnavailable):
        await lim.reserve([scope], tokens=1, cost_usd=0.0)
    assert lim.healthy is False
    monkeypatch.setattr(client, "evalsha", working)
    await fails(lim.reserve([scope], tokens=1, cost_usd=0.0))  # the slot was not freed
    assert lim.healthy is True


async def test_settlements_are_batched(
    redis_pair: Callable[..., Awaitable[RedisLimiter]], monkeypatch: pytest.MonkeyPatch
) -> None:
    lim = await redis_pair()
    scopes = [key(rpm=1000), team(budget_day_usd=100.0)]
    held = [await lim.reserve(scopes, tokens=10, cost_usd=0.01) for _ in range(100)]
    calls: list[int] = []
    evalsha = lim._redis.evalsha  # pyright: ignore[reportPrivateUsage]

    def counting(*args: Any) -> Any:
        calls.append(len(args))
        return evalsha(*args)

    monkeypatch.setattr(lim._redis, "evalsha", counting)  # pyright: ignore[reportPrivateUsage]
    await asyncio.gather(*(lim.settle(r, tokens=5, cost_usd=0.005) for r in held))
    assert len(calls) == 2  # 64 + 36
    assert await lim.usage(scopes[1]) == usage(requests=100, tokens=500, spent=0.5)


async def test_slots_of_a_dead_process_expire(
    redis_pair: Callable[..., Awaitable[RedisLimiter]], clock: Clock
) -> None:
    scope = key(max_concurrent=1)
    dead, alive = await redis_pair(slot_ttl=10.0), await redis_pair(slot_ttl=10.0)
    await dead.reserve([scope], tokens=1, cost_usd=0.0)  # never settled
    await fails(alive.reserve([scope], tokens=1, cost_usd=0.0))
    clock.now += 10.001
    await alive.reserve([scope], tokens=1, cost_usd=0.0)


async def test_slots_in_flight_are_renewed(
    redis_pair: Callable[..., Awaitable[RedisLimiter]], clock: Clock
) -> None:
    scope = key(max_concurrent=1)
    holder, other = await redis_pair(slot_ttl=0.15), await redis_pair(slot_ttl=0.15)
    r = await holder.reserve([scope], tokens=1, cost_usd=0.0)
    for _ in range(3):  # time passes well beyond the ttl, renewals keep the slot
        clock.now += 0.1
        await asyncio.sleep(0.1)
    await fails(other.reserve([scope], tokens=1, cost_usd=0.0))
    await holder.settle(r, tokens=1, cost_usd=0.0)
    await other.reserve([scope], tokens=1, cost_usd=0.0)


async def test_a_reservation_never_settled_stops_being_renewed(
    redis_pair: Callable[..., Awaitable[RedisLimiter]], clock: Clock
) -> None:
    scope = key(max_concurrent=1)
    holder = await redis_pair(slot_ttl=0.15, max_hold=0.1)
    other = await redis_pair()
    await holder.reserve([scope], tokens=1, cost_usd=0.0)
    for _ in range(3):
        clock.now += 0.1
        await asyncio.sleep(0.1)
    await other.reserve([scope], tokens=1, cost_usd=0.0)


async def test_settle_needs_start(clock: Clock, prefix: str) -> None:
    lim = RedisLimiter(REDIS_URL, prefix, clock=clock)
    try:
        r = await lim.reserve([key(rpm=1)], tokens=1, cost_usd=0.0)
        with pytest.raises(RuntimeError, match="start"):
            await lim.settle(r, tokens=1, cost_usd=0.0)
    finally:
        await lim.aclose()
        await cleanup(prefix)


def test_reservation_is_a_plain_record() -> None:
    r = Reservation("id", (), 1, 0.5, 3, "2025-03-14", "2025-03", counted=False)
    assert (r.tokens, r.cost_usd, r.counted) == (1, 0.5, False)
