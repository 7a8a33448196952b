"""Rate limits and budgets: one check for every principal a request involves.

A request involves several principals (its key, user, team, agent), each a
`LimitScope` with its own `Limits`. `Limiter.reserve` checks every limit of every
scope at once and, only if all of them fit, counts the request against all of them:
one request and `tokens` tokens in the current minute, one concurrency slot, and
`cost_usd` against today's and this month's budget. Otherwise nothing is counted and
`RateLimited` or `BudgetExceeded` names the scope and the limit that fired; when
several fire, the one that frees last is named, so `retry_after` is honest.

After the response, `settle` replaces the reserved tokens and cost with the actual
ones and frees the slot; `release` (the request failed before the upstream was
called) gives back the tokens, the cost and the slot, but the request stays counted
against the per-minute request limit, so failing requests cannot be retried faster
than the limit. Settling or releasing twice, or a reservation the limiter did not
count, does nothing.

Semantics shared by every backend:
- Per-minute limits use a sliding window counter: the current fixed minute counts
  fully, the previous one weighted by the share of it still inside the last 60
  seconds (`prev * (1 - elapsed / 60) + current`): two counters per scope instead of
  a log of every request. It assumes the previous minute's traffic was spread evenly:
  a burst late in that minute counts less than an exact log would count it (so up to
  that difference more may pass), one early in it counts more. A burst within one
  minute is admitted exactly up to the limit.
- Budgets count per UTC day and UTC calendar month, keyed by date, so they roll over
  at midnight UTC; a reservation's cost stays with the day and month it was reserved
  in, even when it settles after midnight. A request is admitted only while its
  estimated cost fits what is left (spent + estimate <= budget). So the budget is
  overshot only when actual costs exceed the estimates, at most by the sum of those
  excesses of the requests in flight when it filled.
- A single request larger than a whole limit (more tokens than `tpm`, a cost above
  a budget) can never pass: its error has no `retry_after`.
- Money is counted in whole micro-dollars (1e-6 USD), so sums are exact.
- Time is Unix seconds from an injectable clock (`time.time` by default).

`MemoryLimiter` serves one process: every check and count happens without yielding
to the event loop, so it is atomic. `lockgate.access.limits_redis.RedisLimiter`
serves several processes through one Lua script per reservation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol, TypedDict

from lockgate.access.models import Limits
from lockgate.core.ids import uuid7
from lockgate.errors import BudgetExceeded, RateLimited

__all__ = ["LimitScope", "Limiter", "MemoryLimiter", "Reservation", "Usage"]

Clock = Callable[[], float]
Check = Literal["rpm", "tpm", "concurrent", "budget_day", "budget_month"]
CHECKS: tuple[Check, ...] = ("rpm", "tpm", "concurrent", "budget_day", "budget_month")
_CONCURRENCY_RETRY = 1.0  # seconds: when a slot frees is unknowable; suggest a short wait


@dataclass(frozen=True, slots=True)
class LimitScope:
    """One principal of a request, e.g. `LimitScope("key", "lg-AbCd1234", limits)`."""

    kind: str  # "key", "user", "team", "agent" ...
    id: str
    limits: Limits

    def __post_init__(self) -> None:
        if not self.kind or ":" in self.kind:
            raise ValueError(f"invalid limit scope kind: {self.kind!r}")

    @property
    def label(self) -> str:
        return f"{self.kind} {self.id}"


@dataclass(frozen=True, slots=True)
class Reservation:
    """What `reserve` counted; hand it back to `settle` or `release`."""

    id: str
    scopes: tuple[LimitScope, ...]
    tokens: int
    cost_usd: float
    minute: int  # the minute window the tokens were counted in
    day: str  # the UTC day ("2025-01-31") and month ("2025-01") the cost was counted in
    month: str
    counted: bool = True  # False: admitted without counting (no scopes, or failing open)


class Usage(TypedDict):
    """What a scope has used, for admin display."""

    requests_per_minute: float  # sliding-window estimates, as the checks see them
    tokens_per_minute: float
    concurrent: int
    day: str
    spent_day_usd: float
    month: str
    spent_month_usd: float


class Limiter(Protocol):
    @property
    def healthy(self) -> bool:
        """False while the counters' store is unreachable (health checks, metrics)."""
        ...

    async def start(self) -> None: ...

    async def reserve(
        self, scopes: Sequence[LimitScope], *, tokens: int, cost_usd: float
    ) -> Reservation:
        """Count the request against every scope, or raise `RateLimited` /
        `BudgetExceeded` having counted nothing."""
        ...

    async def settle(self, reservation: Reservation, *, tokens: int, cost_usd: float) -> None:
        """Replace the reserved tokens and cost with the actual ones; free the slot."""
        ...

    async def release(self, reservation: Reservation) -> None:
        """Give back tokens, cost and slot; the request count stays."""
        ...

    async def usage(self, scope: LimitScope) -> Usage: ...

    async def aclose(self) -> None: ...


# -- shared by the backends -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Instant:
    """The window coordinates of one moment."""

    now: float  # Unix seconds
    minute: int  # floor(now / 60)
    weight: float  # share of the previous minute still inside the sliding window
    day: str
    month: str
    to_next_day: float  # seconds to the next UTC midnight
    to_next_month: float  # seconds to the first of the next UTC month


class Calendar:
    """Turns clock readings into `Instant`s; the UTC day's coordinates are worked out
    once per day (or whenever the clock leaves the day)."""

    __slots__ = ("_day", "_day_end", "_day_start", "_month", "_month_end")

    def __init__(self) -> None:
        self._day_start = self._day_end = self._month_end = 0.0
        self._day = self._month = ""

    def at(self, now: float) -> Instant:
        if not self._day_start <= now < self._day_end:
            start = datetime.fromtimestamp(now, UTC).replace(
                hour=0, minute=0, second=0, microsecond=0
            )
            next_month = (start.replace(day=1) + timedelta(days=32)).replace(day=1)
            self._day_start = start.timestamp()
            self._day_end = (start + timedelta(days=1)).timestamp()
            self._month_end = next_month.timestamp()
            self._day, self._month = start.strftime("%Y-%m-%d"), start.strftime("%Y-%m")
        minute = int(now // 60)
        return Instant(
            now=now,
            minute=minute,
            weight=1.0 - (now - minute * 60) / 60,
            day=self._day,
            month=self._month,
            to_next_day=self._day_end - now,
            to_next_month=self._month_end - now,
        )


def micro_usd(usd: float) -> int:
    return round(usd * 1_000_000)


def check_request(
    scopes: Sequence[LimitScope], tokens: int, cost_usd: float
) -> tuple[LimitScope, ...]:
    if tokens < 0 or cost_usd < 0:
        raise ValueError("tokens and cost must not be negative")
    scopes = tuple(scopes)
    if len({(s.kind, s.id) for s in scopes}) != len(scopes):
        raise ValueError("a principal appears twice among the limit scopes")
    return scopes


def new_reservation(
    scopes: tuple[LimitScope, ...], at: Instant, tokens: int, cost_usd: float, *, counted: bool
) -> Reservation:
    return Reservation(uuid7(), scopes, tokens, cost_usd, at.minute, at.day, at.month, counted)


@dataclass(frozen=True, slots=True)
class Denial:
    """One limit that did not fit: `used` is the current count (minute, slots or
    micro-dollars), `previous` the previous minute's count (per-minute limits only)."""

    scope: LimitScope
    check: Check
    previous: int
    used: int


def limit_error(
    denials: Sequence[Denial], at: Instant, tokens: int, cost_usd: float
) -> RateLimited | BudgetExceeded:
    """The error for the limit that frees last (one that never frees wins)."""
    errors = [_error(d, at, tokens, cost_usd) for d in denials]
    return max(errors, key=lambda e: float("inf") if e.retry_after is None else e.retry_after)


def _error(d: Denial, at: Instant, tokens: int, cost_usd: float) -> RateLimited | BudgetExceeded:
    who, limits = d.scope.label, d.scope.limits
    if d.check == "rpm":
        rpm = limits.rpm or 0
        wait = _window_wait(d.previous, d.used, 1, rpm, at)
        return RateLimited(
            f"Rate limit reached for {who}: {rpm} requests per minute", retry_after=wait
        )
    if d.check == "tpm":
        tpm = limits.tpm or 0
        if tokens > tpm:
            return RateLimited(
                f"Request too large for {who}: {tokens} tokens requested, "
                f"limit {tpm} tokens per minute",
                openai_type="tokens",
            )
        wait = _window_wait(d.previous, d.used, tokens, tpm, at)
        return RateLimited(
            f"Rate limit reached for {who}: {tpm} tokens per minute",
            retry_after=wait,
            openai_type="tokens",
        )
    if d.check == "concurrent":
        return RateLimited(
            f"Concurrency limit reached for {who}: {limits.max_concurrent} concurrent requests",
            retry_after=_CONCURRENCY_RETRY if limits.max_concurrent else None,
        )
    period, budget, wait = (
        ("day", limits.budget_day_usd or 0.0, at.to_next_day)
        if d.check == "budget_day"
        else ("month", limits.budget_month_usd or 0.0, at.to_next_month)
    )
    if micro_usd(cost_usd) > micro_usd(budget):
        return BudgetExceeded(
            f"Request too expensive for {who}: estimated ${cost_usd:.4f} exceeds "
            f"the budget of ${budget:.2f} per {period}"
        )
    return BudgetExceeded(
        f"Budget exhausted for {who}: ${budget:.2f} per {period}", retry_after=wait
    )


def _window_wait(previous: int, used: int, need: int, limit: int, at: Instant) -> float | None:
    """Seconds until `need` more fits the sliding window, if nothing else is counted;
    None if it never fits."""
    if need > limit:
        return None
    start = at.minute * 60
    if used + need <= limit:  # the previous minute must fade enough
        if previous <= 0:
            return 0.001
        until = start + 60 * (1 - (limit - used - need) / previous)
    else:  # wait for this minute to become the previous one, then to fade enough
        until = start + 60 + 60 * max(0.0, 1 - (limit - need) / used)
    return max(until - at.now, 0.001)


# -- one process ----------------------------------------------------------------------


@dataclass(slots=True)
class _Counts:
    minute: int = -2
    requests: int = 0
    tokens: int = 0
    prev_requests: int = 0
    prev_tokens: int = 0
    day: str = ""
    spent_day: int = 0
    month: str = ""
    spent_month: int = 0
    slots: set[str] = field(default_factory=set[str])

    def roll(self, at: Instant) -> None:
        if at.minute != self.minute:
            recent = at.minute == self.minute + 1
            self.prev_requests = self.requests if recent else 0
            self.prev_tokens = self.tokens if recent else 0
            self.requests = self.tokens = 0
            self.minute = at.minute
        if at.day != self.day:
            self.day, self.spent_day = at.day, 0
        if at.month != self.month:
            self.month, self.spent_month = at.month, 0

    def denials(self, scope: LimitScope, at: Instant, tokens: int, cost: int) -> list[Denial]:
        lim, out = scope.limits, list[Denial]()
        if lim.rpm is not None and self.prev_requests * at.weight + self.requests + 1 > lim.rpm:
            out.append(Denial(scope, "rpm", self.prev_requests, self.requests))
        if lim.tpm is not None and self.prev_tokens * at.weight + self.tokens + tokens > lim.tpm:
            out.append(Denial(scope, "tpm", self.prev_tokens, self.tokens))
        if lim.max_concurrent is not None and len(self.slots) + 1 > lim.max_concurrent:
            out.append(Denial(scope, "concurrent", 0, len(self.slots)))
        day, month = lim.budget_day_usd, lim.budget_month_usd
        if day is not None and self.spent_day + cost > micro_usd(day):
            out.append(Denial(scope, "budget_day", 0, self.spent_day))
        if month is not None and self.spent_month + cost > micro_usd(month):
            out.append(Denial(scope, "budget_month", 0, self.spent_month))
        return out


class MemoryLimiter:
    """Limits for one gateway process. Counters of every principal seen stay in memory
    (a few hundred bytes each). Call `settle` or `release` for every reservation: a
    forgotten one holds its concurrency slot until the process ends."""

    def __init__(self, *, clock: Clock = time.time) -> None:
        self._clock = clock
        self._calendar = Calendar()
        self._counts: dict[tuple[str, str], _Counts] = {}
        self._live: dict[str, Reservation] = {}

    @property
    def healthy(self) -> bool:
        return True

    async def start(self) -> None:
        pass

    async def reserve(
        self, scopes: Sequence[LimitScope], *, tokens: int, cost_usd: float
    ) -> Reservation:
        scopes = check_request(scopes, tokens, cost_usd)
        at = self._calendar.at(self._clock())
        if not scopes:
            return new_reservation(scopes, at, tokens, cost_usd, counted=False)
        cost = micro_usd(cost_usd)
        counts = [self._counts_of(s) for s in scopes]
        denials: list[Denial] = []
        for scope, c in zip(scopes, counts, strict=True):
            c.roll(at)
            denials += c.denials(scope, at, tokens, cost)
        if denials:
            raise limit_error(denials, at, tokens, cost_usd)
        reservation = new_reservation(scopes, at, tokens, cost_usd, counted=True)
        for c in counts:
            c.requests += 1
            c.tokens += tokens
            c.spent_day += cost
            c.spent_month += cost
            c.slots.add(reservation.id)
        self._live[reservation.id] = reservation
        return reservation

    async def settle(self, reservation: Reservation, *, tokens: int, cost_usd: float) -> None:
        cost = micro_usd(cost_usd) - micro_usd(reservation.cost_usd)
        self._finish(reservation, tokens - reservation.tokens, cost)

    async def release(self, reservation: Reservation) -> None:
        self._finish(reservation, -reservation.tokens, -micro_usd(reservation.cost_usd))

    async def usage(self, scope: LimitScope) -> Usage:
        at = self._calendar.at(self._clock())
        c = self._counts_of(scope)
        c.roll(at)
        return Usage(
            requests_per_minute=c.prev_requests * at.weight + c.requests,
            tokens_per_minute=c.prev_tokens * at.weight + c.tokens,
            concurrent=len(c.slots),
            day=at.day,
            spent_day_usd=c.spent_day / 1_000_000,
            month=at.month,
            spent_month_usd=c.spent_month / 1_000_000,
        )

    async def aclose(self) -> None:
        pass

    def _counts_of(self, scope: LimitScope) -> _Counts:
        key = (scope.kind, scope.id)
        counts = self._counts.get(key)
        if counts is None:
            counts = self._counts[key] = _Counts()
        return counts

    def _finish(self, r: Reservation, tokens: int, cost: int) -> None:
        if self._live.pop(r.id, None) is None:
            return
        for scope in r.scopes:
            c = self._counts_of(scope)
            c.slots.discard(r.id)
            if c.minute == r.minute:
                c.tokens += tokens
            elif c.minute == r.minute + 1:
                c.prev_tokens += tokens
            if c.day == r.day:
                c.spent_day += cost
            if c.month == r.month:
                c.spent_month += cost
