"""Per-principal usage, counted in memory on the hot path and written to the store in
batches (write-behind) every few seconds: requests, tokens, spend, last activity, and
which models each agent used (for privilege drift)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from lockgate.access.shadow import ShadowRecorder
from lockgate.core.context import RequestContext

if TYPE_CHECKING:
    from lockgate.store.store import Store

__all__ = ["UsageRecorder"]

_log = logging.getLogger("lockgate.access")


class UsageRecorder:
    name = "usage"

    def __init__(
        self,
        store: Store,
        shadows: ShadowRecorder,
        *,
        interval: float = 2.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._shadows = shadows
        self._interval = interval
        self._clock = clock
        # (kind, id, day) -> [requests, input, output, cost]
        self._rows: dict[tuple[str, str, date], list[float]] = {}
        self._keys_used: dict[str, datetime] = {}
        self._agents_seen: dict[str, datetime] = {}
        self._permissions: dict[tuple[str, str, date], int] = {}
        self._task: asyncio.Task[None] | None = None
        # Final usage and cost of a request (the record stage's `meter`, bound by the
        # gateway): this stage completes before the record stage does.
        self.meter: Callable[[RequestContext], Awaitable[None]] | None = None

    async def admit(self, ctx: RequestContext) -> None:
        return None

    async def complete(self, ctx: RequestContext) -> None:
        p = ctx.principal
        if p is None or (p.kind in ("anonymous",) and p.agent_id is None):
            return
        if self.meter is not None:
            await self.meter(ctx)
        now = self._clock()
        day = now.date()
        usage = ctx.usage
        add = (
            1,
            usage.input_tokens if usage else 0,
            usage.output_tokens if usage else 0,
            ctx.cost or 0.0,
        )
        for kind, entity in (
            ("key", p.id if p.kind == "key" else None),
            ("grant", p.id if p.kind == "grant" else None),
            ("user", p.user_id),
            ("team", p.team_id),
            ("agent", p.agent_id),
        ):
            if entity is None:
                continue
            row = self._rows.setdefault((kind, entity, day), [0, 0, 0, 0.0])
            for i, v in enumerate(add):
                row[i] += v
        if p.kind == "key":
            self._keys_used[p.id] = now
        if p.agent_id is not None:
            self._agents_seen[p.agent_id] = now
            if ctx.error is None and ctx.model:
                perm = (p.agent_id, f"model:{ctx.model}", day)
                self._permissions[perm] = self._permissions.get(perm, 0) + 1

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._loop(), name="lockgate-usage-flush"
        )

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.flush()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except Exception as exc:
                _log.warning("usage flush failed", extra={"error": type(exc).__name__})

    async def flush(self) -> None:
        from lockgate.store._usage import UsageRow

        rows, self._rows = self._rows, {}
        keys, self._keys_used = self._keys_used, {}
        agents, self._agents_seen = self._agents_seen, {}
        perms, self._permissions = self._permissions, {}
        sightings = self._shadows.drain()
        if rows:
            await self._store.add_usage(
                UsageRow(kind, entity, day, int(v[0]), int(v[1]), int(v[2]), float(v[3]))  # type: ignore[arg-type]
                for (kind, entity, day), v in rows.items()
            )
        if keys:
            await self._store.touch_keys_last_used(keys)
        if agents:
            await self._store.touch_agents_last_seen(agents)
        if perms:
            await self._store.add_permission_use(
                [(agent, perm, day, count) for (agent, perm, day), count in perms.items()]
            )
        if sightings:
            await self._store.record_shadow_agents(
                [(s.name, s.last_seen, s.count, s.last_key_prefix) for s in sightings]
            )
