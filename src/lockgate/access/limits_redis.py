"""Limits shared by several gateway processes through Redis.

- `reserve` is one round trip: one EVALSHA of a Lua script that checks every limit of
  every scope, then counts everything and sets the keys' expiry (`limits_lua`).
- `settle` and `release` queue their adjustments. The next `reserve` sends them in
  the same round trip (a pipeline: the settle script, then the reserve script), so a
  request costs one round trip in all. When no reserve comes within `flush_interval`
  seconds, or `batch_size` are queued, a background task owned by the limiter flushes
  them alone. The caller of `settle` waits for its batch, so when `settle` returns every
  process sees the result; the gateway does not make the client wait for it.
- Concurrency slots are members of a sorted set scored by an expiry time. The limiter
  renews the slots of its reservations in flight every `slot_ttl / 3` seconds (one
  EVALSHA for all of them), so a slot of a process that died frees itself within
  `slot_ttl`. A reservation never settled (a bug) stops being renewed after
  `max_hold` seconds, so its slot frees itself too.
- Minute windows, days and months come from the limiter's clock (the host's, by
  default): keep the gateway hosts' clocks in sync (NTP).
- When Redis is unreachable, `reserve` raises `LimiterUnavailable` (fail closed, the
  default) or admits without counting (`fail_open=True`). After a failure, Redis is
  left alone for `retry_interval` seconds. Settlements that cannot be written are
  dropped and logged: their tokens and cost go uncounted, their slots expire.
  `healthy` tells health checks and metrics which state the limiter is in; a PING
  every `slot_ttl / 3` seconds, and every `retry_interval` while Redis is down, keeps
  it current when no requests come.
  A client made from a URL retries a command once after a connection error: a
  reservation whose reply was lost may, rarely, be counted twice.

Needs the `redis` package (`pip install 'lockgate[redis]'`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

try:
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import NoScriptError, ReadOnlyError, RedisError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError("RedisLimiter needs redis: pip install 'lockgate[redis]'") from exc

from lockgate.access import limits_lua as lua
from lockgate.access.limits import (
    CHECKS,
    Calendar,
    Clock,
    Denial,
    Instant,
    LimitScope,
    Reservation,
    Usage,
    check_request,
    limit_error,
    micro_usd,
    new_reservation,
)
from lockgate.errors import LimiterUnavailable

__all__ = ["RedisLimiter"]

_log = logging.getLogger(__name__)
_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError)
_MINUTE_TTL_MS = 150_000  # the current and the previous minute, with room to settle
_DAY_TTL_MS = 3 * 86_400_000  # kept a little past the period for display and late settles
_MONTH_TTL_MS = 33 * 86_400_000
_RENEWALS_PER_CALL = 1024  # slot keys per script: keep each short, Redis waits meanwhile

_Op = tuple[str, str, str | int]  # (op, key, value) of the settle script
_Pending = tuple[list[_Op], asyncio.Future[None]]


def _limit(value: float | None, *, money: bool = False) -> int:
    if value is None:
        return -1
    return micro_usd(value) if money else int(value)


class RedisLimiter:
    """Limits held in Redis, so they hold across gateway processes and machines."""

    def __init__(
        self,
        redis: str | Redis,
        prefix: str = "lockgate:limits",
        *,
        fail_open: bool = False,
        clock: Clock = time.time,
        slot_ttl: float = 60.0,
        flush_interval: float = 0.005,
        batch_size: int = 64,
        retry_interval: float = 1.0,
        timeout: float = 0.5,
        max_hold: float = 3600.0,
    ) -> None:
        """`redis` is a URL (the limiter then owns the client: `timeout` seconds to
        connect and answer, one retry) or a client the caller owns and closes."""
        if isinstance(redis, str):
            self._redis = Redis.from_url(
                redis,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 1),
            )
            self._owns_client = True
        else:
            self._redis, self._owns_client = redis, False
        self._tag = "{" + prefix + "}"
        self._fail_open = fail_open
        self._clock = clock
        self._calendar = Calendar()
        self._slot_ttl = slot_ttl
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._retry_interval = retry_interval
        self._healthy = True
        self._down_until = 0.0  # time.monotonic() before which Redis is not tried
        self._max_hold = max_hold
        # counted, not yet settled: the slots to renew, by loop.time() of the reservation
        self._live: dict[str, tuple[float, Reservation]] = {}
        self._pending: list[_Pending] = []
        self._pending_since = 0.0  # loop.time() when the oldest uncarried settlement queued
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def healthy(self) -> bool:
        """False since Redis last failed to answer, until it answers again."""
        return self._healthy

    async def start(self) -> None:
        """Load the scripts and start the flusher. Redis being down is not an error:
        the limiter starts unhealthy and keeps trying."""
        if self._task is not None:
            return
        try:
            for script in (lua.RESERVE, lua.SETTLE):
                await self._redis.script_load(script.source)
            self._up()
        except _UNAVAILABLE as exc:
            self._down(exc)
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name="lockgate-limits-flush"
        )

    async def aclose(self) -> None:
        """Flush what is queued, stop the flusher, close the client if the limiter owns
        it. Slots of requests still in flight expire by themselves."""
        if self._stopping:
            return
        self._stopping = True
        if self._task is not None:
            self._wakeup.set()
            await self._task
        if self._owns_client:
            await self._redis.aclose()

    async def reserve(
        self, scopes: Sequence[LimitScope], *, tokens: int, cost_usd: float
    ) -> Reservation:
        if self._stopping:
            raise RuntimeError("the limiter is closed")
        scopes = check_request(scopes, tokens, cost_usd)
        at = self._calendar.at(self._clock())
        if not scopes:
            return new_reservation(scopes, at, tokens, cost_usd, counted=False)
        reservation = new_reservation(scopes, at, tokens, cost_usd, counted=True)
        if time.monotonic() < self._down_until:
            return self._unavailable(reservation)
        keys, args = self._reserve_call(reservation, at)
        try:
            reply: list[int] = await self._reserve_with_settlements(keys, args)
        except _UNAVAILABLE as exc:
            self._down(exc)
            return self._unavailable(reservation)
        self._up()
        if reply:
            denials = [
                Denial(scopes[reply[i]], CHECKS[reply[i + 1] - 1], reply[i + 2], reply[i + 3])
                for i in range(0, len(reply), 4)
            ]
            raise limit_error(denials, at, tokens, cost_usd)
        self._live[reservation.id] = (asyncio.get_running_loop().time(), reservation)
        return reservation

    async def settle(self, reservation: Reservation, *, tokens: int, cost_usd: float) -> None:
        cost = micro_usd(cost_usd) - micro_usd(reservation.cost_usd)
        await self._finish(reservation, tokens - reservation.tokens, cost)

    async def release(self, reservation: Reservation) -> None:
        await self._finish(reservation, -reservation.tokens, -micro_usd(reservation.cost_usd))

    async def usage(self, scope: LimitScope) -> Usage:
        """One pipelined round trip; raises `LimiterUnavailable` when Redis is down."""
        at = self._calendar.at(self._clock())
        cur, prev, slots, day, month = self._keys(scope, at.minute, at.day, at.month)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hmget(cur, ["r", "t"])
        pipe.hmget(prev, ["r", "t"])
        pipe.zcount(slots, f"({int(at.now * 1000)}", "+inf")
        pipe.get(day)
        pipe.get(month)
        try:
            c, p, n, d, m = await pipe.execute()
        except _UNAVAILABLE as exc:
            self._down(exc)
            raise LimiterUnavailable("The limits store (Redis) is unreachable") from exc
        return Usage(
            requests_per_minute=int(p[0] or 0) * at.weight + int(c[0] or 0),
            tokens_per_minute=int(p[1] or 0) * at.weight + int(c[1] or 0),
            concurrent=int(n),
            day=at.day,
            spent_day_usd=int(d or 0) / 1_000_000,
            month=at.month,
            spent_month_usd=int(m or 0) / 1_000_000,
        )

    # -- reserve ----------------------------------------------------------------

    def _slot_key(self, scope: LimitScope) -> str:
        return f"{self._tag}:c:{scope.kind}:{scope.id}"

    def _keys(self, scope: LimitScope, minute: int, day: str, month: str) -> tuple[str, ...]:
        who = f"{scope.kind}:{scope.id}"
        t = self._tag
        return (
            f"{t}:m:{who}:{minute}",
            f"{t}:m:{who}:{minute - 1}",
            self._slot_key(scope),
            f"{t}:d:{who}:{day}",
            f"{t}:M:{who}:{month}",
        )

    def _reserve_call(self, r: Reservation, at: Instant) -> tuple[list[str], list[str | int]]:
        keys: list[str] = []
        args: list[str | int] = [
            int(at.now * 1000),
            repr(at.weight),
            r.tokens,
            micro_usd(r.cost_usd),
            r.id,
            int((at.now + self._slot_ttl) * 1000),
            int(self._slot_ttl * 1000),
            _MINUTE_TTL_MS,
            _DAY_TTL_MS,
            _MONTH_TTL_MS,
        ]
        for scope in r.scopes:
            keys += self._keys(scope, at.minute, at.day, at.month)
            lim = scope.limits
            args += (
                _limit(lim.rpm),
                _limit(lim.tpm),
                _limit(lim.max_concurrent),
                _limit(lim.budget_day_usd, money=True),
                _limit(lim.budget_month_usd, money=True),
            )
        return keys, args

    def _unavailable(self, reservation: Reservation) -> Reservation:
        if not self._fail_open:
            raise LimiterUnavailable(
                "The limits store (Redis) is unreachable", retry_after=self._retry_interval
            )
        return replace(reservation, counted=False)

    async def _reserve_with_settlements(self, keys: list[str], args: list[str | int]) -> Any:
        """The reserve script, preceded in the same round trip (a pipeline) by the
        settlements queued since the last flush: one round trip per request."""
        if not self._pending:
            return await self._eval(lua.RESERVE, keys, args)
        batch, self._pending = self._pending[: self._batch_size], self._pending[self._batch_size :]
        self._pending_since = asyncio.get_running_loop().time()  # for what is left, if any
        ops = _merge(op for ops, _ in batch for op in ops)
        try:
            settle_keys, settle_args = self._settle_call(ops)
            async with self._redis.pipeline(transaction=False) as pipe:
                if ops:
                    pipe.evalsha(lua.SETTLE.sha, len(settle_keys), *settle_keys, *settle_args)
                pipe.evalsha(lua.RESERVE.sha, len(keys), *keys, *args)
                replies: list[Any] = await pipe.execute(raise_on_error=False)
        except BaseException:
            self._pending = batch + self._pending  # the flusher tries them again
            raise
        for _, done in batch:
            if not done.done():
                done.set_result(None)
        if ops and isinstance(replies[0], NoScriptError):
            await self._apply(ops, "settlements")
        elif ops and isinstance(replies[0], Exception):
            _log.error("limits store refused %d settlements: %s", len(ops), replies[0])
        reply = replies[-1]
        if isinstance(reply, NoScriptError):
            return await self._eval(lua.RESERVE, keys, args)
        if isinstance(reply, Exception):
            raise reply
        return reply

    def _settle_call(self, ops: list[_Op]) -> tuple[list[str], list[str | int]]:
        keys = [key for _, key, _ in ops]
        args: list[str | int] = [
            int((self._clock() + self._slot_ttl) * 1000),
            int(self._slot_ttl * 1000),
        ]
        for op, _, value in ops:
            args += (op, value)
        return keys, args

    async def _eval(self, script: lua.Script, keys: list[str], args: list[str | int]) -> Any:
        try:
            return await self._redis.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:  # Redis restarted, or another server behind the same URL
            await self._redis.script_load(script.source)
            return await self._redis.evalsha(script.sha, len(keys), *keys, *args)

    def _up(self) -> None:
        if not self._healthy:
            _log.warning("limits store reachable again")
        self._healthy = True
        self._down_until = 0.0

    def _down(self, exc: BaseException) -> None:
        if self._healthy:
            mode = "admitting uncounted" if self._fail_open else "refusing requests"
            _log.warning("limits store unreachable (%s): %s", exc, mode)
        self._healthy = False
        self._down_until = time.monotonic() + self._retry_interval
        self._wakeup.set()  # the flusher then probes Redis once the retry interval is over

    # -- settle -----------------------------------------------------------------

    async def _finish(self, r: Reservation, tokens: int, cost: int) -> None:
        if self._task is None:
            raise RuntimeError("the limiter is not running: call start() first")
        if self._live.pop(r.id, None) is None or self._task.done():
            return  # settled before, never counted, or the limiter is closed (slots expire)
        ops: list[_Op] = []
        for scope in r.scopes:
            cur, _, slots, day, month = self._keys(scope, r.minute, r.day, r.month)
            if tokens:
                ops.append(("t", cur, tokens))
            if cost:
                ops += (("i", day, cost), ("i", month, cost))
            ops.append(("z", slots, r.id))
        done = asyncio.get_running_loop().create_future()
        self._pending.append((ops, done))
        if len(self._pending) == 1:
            self._pending_since = asyncio.get_running_loop().time()
        if len(self._pending) == 1 or len(self._pending) >= self._batch_size:
            self._wakeup.set()  # arm the flusher: it waits `flush_interval` for a reserve to carry them
        await done

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        renew_every = self._slot_ttl / 3
        next_renewal = loop.time() + renew_every
        while True:
            if not self._stopping:
                wait = next_renewal - loop.time()
                if not self._healthy:  # learn that Redis is back, even without traffic
                    wait = min(wait, self._down_until - time.monotonic())
                try:
                    async with asyncio.timeout(max(0.0, wait)):
                        await self._wakeup.wait()
                except TimeoutError:
                    pass
            # Let reservations carry the queued settlements in their round trips; flush
            # alone only what has waited `flush_interval` without a reservation to ride on.
            while 0 < len(self._pending) < self._batch_size and not self._stopping:
                left = self._pending_since + self._flush_interval - loop.time()
                if left <= 0:
                    break
                await asyncio.sleep(left)
            self._wakeup.clear()
            renew = loop.time() >= next_renewal
            if renew:
                next_renewal = loop.time() + renew_every
            await self._flush(renew=renew)
            if self._stopping and not self._pending:
                return
            if renew or (not self._healthy and time.monotonic() >= self._down_until):
                await self._probe()

    async def _probe(self) -> None:
        """One PING, so that `healthy` follows Redis between requests too: every
        `slot_ttl / 3` seconds, and every `retry_interval` seconds while it is down."""
        try:
            await self._redis.ping()
        except _UNAVAILABLE as exc:
            self._down(exc)
        except RedisError:
            _log.exception("limits store refused a ping")
        else:
            self._up()

    async def _flush(self, *, renew: bool) -> None:
        while self._pending:
            batch, self._pending = (
                self._pending[: self._batch_size],
                self._pending[self._batch_size :],
            )
            try:
                await self._apply(_merge(op for ops, _ in batch for op in ops), "settlements")
            finally:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)
        if renew:
            ops = _merge(
                ("r", self._slot_key(s), r.id) for r in self._renewable() for s in r.scopes
            )
            for i in range(0, len(ops), _RENEWALS_PER_CALL):
                await self._apply(ops[i : i + _RENEWALS_PER_CALL], "slot renewals")

    def _renewable(self) -> list[Reservation]:
        """The reservations in flight, forgetting those held beyond `max_hold`."""
        oldest = asyncio.get_running_loop().time() - self._max_hold
        for rid in [rid for rid, (at, _) in self._live.items() if at < oldest]:
            _log.warning("reservation %s never settled: its concurrency slot expires", rid)
            del self._live[rid]
        return [r for _, r in self._live.values()]

    async def _apply(self, ops: list[_Op], what: str) -> None:
        """Run the settle script; a failure is logged and the ops dropped: the request
        was served already, and the flusher must go on."""
        if not ops:
            return
        try:
            await self._settle_script(ops)
        except _UNAVAILABLE as exc:
            self._down(exc)
            _log.warning("limits store unreachable: %d %s dropped", len(ops), what)
        except RedisError:
            _log.exception("limits store refused %d %s", len(ops), what)

    async def _settle_script(self, ops: list[_Op]) -> None:
        keys, args = self._settle_call(ops)
        await self._eval(lua.SETTLE, keys, args)
        self._up()


def _merge(ops: Iterable[_Op]) -> list[_Op]:
    """One op per key: adjustments summed, slot ids joined by spaces."""
    sums: dict[tuple[str, str], int] = {}
    slots: dict[tuple[str, str], list[str]] = {}
    for op, key, value in ops:
        if op in ("z", "r"):
            slots.setdefault((op, key), []).append(str(value))
        else:
            sums[op, key] = sums.get((op, key), 0) + int(value)
    out: list[_Op] = [(op, key, total) for (op, key), total in sums.items() if total]
    return out + [(op, key, " ".join(ids)) for (op, key), ids in slots.items()]
