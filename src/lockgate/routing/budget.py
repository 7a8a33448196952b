"""A retry budget: retries may be at most a fraction of recent first attempts.

A token bucket that first attempts fill by `ratio` tokens and each retry drains by
one, plus a floor of `min_per_second` retries. Shared by every route in a process,
so a chain of fallbacks whose routes all fail cannot multiply load on a sick upstream.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["RetryBudget"]


class RetryBudget:
    __slots__ = ("_clock", "_floor", "_floor_used", "_floor_window", "_max", "_ratio", "_tokens")

    def __init__(
        self,
        *,
        ratio: float,
        min_per_second: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ratio = ratio
        self._floor = min_per_second
        self._clock = clock
        self._tokens = 0.0
        self._max = max(10.0, 100 * ratio)
        self._floor_window = 0
        self._floor_used = 0

    def record_attempt(self) -> None:
        self._tokens = min(self._max, self._tokens + self._ratio)

    def try_retry(self) -> bool:
        window = int(self._clock())
        if window != self._floor_window:
            self._floor_window = window
            self._floor_used = 0
        if self._floor_used < self._floor:
            self._floor_used += 1
            return True
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
