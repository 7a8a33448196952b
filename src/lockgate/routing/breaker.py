"""A circuit breaker per route: closed -> open after N consecutive failures -> one
half-open probe after a cooldown -> closed on success, open again on failure."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import IntEnum

__all__ = ["BreakerState", "CircuitBreaker"]


class BreakerState(IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    __slots__ = ("_clock", "_cooldown", "_failures", "_opened_at", "_probing", "_threshold", "on_change")

    def __init__(
        self,
        *,
        threshold: int,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        self._threshold = threshold
        self._cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self.on_change = on_change

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._probing or self._clock() - self._opened_at >= self._cooldown:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self) -> bool:
        """May a request use this route now? In half-open state only one probe at a time."""
        if self._opened_at is None:
            return True
        if self._probing or self._clock() - self._opened_at < self._cooldown:
            return False
        self._probing = True
        self._notify()
        return True

    def success(self) -> None:
        if self._opened_at is not None or self._failures:
            was_open = self._opened_at is not None
            self._failures = 0
            self._opened_at = None
            self._probing = False
            if was_open:
                self._notify()

    def failure(self) -> None:
        self._failures += 1
        if self._probing or (self._opened_at is None and self._failures >= self._threshold):
            self._opened_at = self._clock()
            self._probing = False
            self._notify()

    def release(self) -> None:
        """A probe ended without a verdict (e.g. the client went away): allow another."""
        self._probing = False

    def _notify(self) -> None:
        if self.on_change is not None:
            self.on_change(self.state)
