"""Experiment outcomes, written behind in batches.

The resolve stage hands each finished request's `Outcome` to `OutcomeRecorder.add`,
which only appends to a bounded in-memory queue; a background task writes the queue
to the store every `prompts.flush_interval` seconds in one transaction. A failed write
keeps the batch for the next try; beyond `prompts.max_pending` the oldest outcomes are
dropped (and counted in `dropped`), so a database outage never grows memory without
bound or slows a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

from lockgate.prompts.models import Outcome

__all__ = ["OutcomeRecorder"]

_log = logging.getLogger("lockgate.prompts")


class OutcomeRecorder:
    def __init__(self, store: Any, *, interval: float = 1.0, max_pending: int = 100_000) -> None:
        self._store = store
        self._interval = interval
        self._pending: deque[Outcome] = deque(maxlen=max_pending)
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.dropped = 0

    def add(self, outcome: Outcome) -> None:
        if len(self._pending) == self._pending.maxlen:
            self.dropped += 1
        self._pending.append(outcome)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="lockgate-outcomes-flush")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.flush()

    async def flush(self) -> int:
        """Write what is pending; the number written."""
        async with self._lock:
            batch = list(self._pending)
            if not batch:
                return 0
            self._pending.clear()
            try:
                await self._store.add_experiment_outcomes(batch)
            except BaseException:
                # Keep them before what arrived meanwhile, for the next try; beyond the
                # bound the oldest go.
                keep = [*batch, *self._pending]
                limit = self._pending.maxlen or len(keep)
                self.dropped += max(0, len(keep) - limit)
                self._pending = deque(keep[-limit:], maxlen=self._pending.maxlen)
                raise
            return len(batch)

    async def _loop(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
                failing = False
            except Exception as exc:  # the boundary: keep the outcomes, try again later
                if not failing:
                    _log.warning("experiment outcomes flush failed", extra={"error": type(exc).__name__})
                failing = True
