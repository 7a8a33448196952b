"""Keep the data plane's `AccessState` current.

Every `interval` seconds one cheap `SELECT version` tells whether the control plane
changed; with Redis, a change published on `lockgate:state` triggers the refresh at
once. A refresh loads one snapshot and swaps it in whole. If the database is briefly
unreachable the gateway keeps serving its last state and says so (`healthy`, and the
`lockgate_control_plane_up` gauge).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lockgate.access.state import AccessState

if TYPE_CHECKING:
    from lockgate.store.store import Store

__all__ = ["CHANNEL", "StateWatcher", "state_from_snapshot"]

CHANNEL = "lockgate:state"
_log = logging.getLogger("lockgate.access")


def state_from_snapshot(snap: Any) -> AccessState:
    return AccessState.build(
        version=snap.version,
        keys=snap.keys,
        grants=snap.grants,
        agents=snap.agents,
        teams=snap.teams,
        users=snap.users,
        kills=snap.kill_switches,
    )


class StateWatcher:
    def __init__(self, store: Store, *, interval: float, redis_url: str | None = None) -> None:
        self._store = store
        self._interval = interval
        self._redis_url = redis_url
        self.state = AccessState()
        self.healthy = True
        self.listeners: list[Callable[[AccessState], None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    def current(self) -> AccessState:
        return self.state

    async def start(self) -> None:
        await self.refresh(force=True)
        self._tasks.append(
            asyncio.get_running_loop().create_task(self._poll(), name="lockgate-state-poll")
        )
        if self._redis_url:
            self._tasks.append(
                asyncio.get_running_loop().create_task(
                    self._subscribe(self._redis_url), name="lockgate-state-sub"
                )
            )

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def refresh(self, *, force: bool = False) -> bool:
        """Reload if the version moved; True when a new state was swapped in."""
        async with self._lock:
            version = await self._store.current_version()
            if not force and version == self.state.version:
                return False
            state = state_from_snapshot(await self._store.load_snapshot())
            self.state = state
        for listener in self.listeners:
            listener(state)
        return True

    async def _poll(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            try:
                await self.refresh()
                if not self.healthy:
                    _log.warning("control plane reachable again")
                self.healthy = True
            except Exception as exc:
                if self.healthy:
                    _log.warning(
                        "control plane unreachable; serving cached state",
                        extra={"error": type(exc).__name__},
                    )
                self.healthy = False

    async def _subscribe(self, url: str) -> None:
        import redis.asyncio as aioredis

        while True:
            try:
                client = aioredis.from_url(url)
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    async for message in pubsub.listen():  # pyright: ignore[reportUnknownVariableType]
                        if isinstance(message, dict) and message.get("type") == "message":  # pyright: ignore[reportUnknownMemberType]
                            self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(1.0)
