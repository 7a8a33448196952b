"""`McpHost`: the MCP gateway's place in the app, without the `mcp` SDK until MCP is used.

Importing the SDK costs about half a second and tens of MB in every gateway start, so
this module (the `/mcp` routes, the admin API's handle, the lifespan's hook) imports
nothing of it. The service (`lockgate.mcp.service`, which does) starts:

- at start, when the config names `[mcp.servers]` or the database holds registered ones;
- else on first need, once, under a lock: the first `/mcp` request, an admin API call
  that registers a server, or a control-plane change after which a server exists (the
  CLI's `lockgate mcp servers add` writes the database directly; the access plane's
  `StateWatcher` delivers the change to every running gateway).

    host = await open_mcp(loaded, gateway, env)   # in the lifespan
    routes += mcp_routes(holder)                  # /mcp and /mcp/{virtual_server}
    svc = await host.ensure()                     # the running McpService
    await host.aclose()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lockgate.access.services import Notifier
from lockgate.access.state import AccessState
from lockgate.config.loader import LoadedConfig
from lockgate.mcp.control import McpControl

if TYPE_CHECKING:
    from lockgate.mcp.service import McpService

__all__ = ["McpHost", "mcp_routes", "open_mcp"]

_log = logging.getLogger("lockgate.mcp")


class McpHost:
    def __init__(self, loaded: LoadedConfig, gateway: Any, env: Mapping[str, str]) -> None:
        self._loaded = loaded
        self._gateway = gateway
        self._env = env
        config = loaded.config
        self.control = McpControl(
            gateway.access.store, Notifier(config.gateway.redis), config_servers=list(config.mcp.servers),
            audit=getattr(gateway, "audit", None),
        )
        self.service: McpService | None = None
        self._lock = asyncio.Lock()
        self._check: asyncio.Task[None] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._closed = False

    async def open(self) -> None:
        """Start the service now if MCP is configured or registered; else watch for it."""
        if self._loaded.config.mcp.servers or await self.control.store.list_mcp_servers():
            await self.ensure()
        else:
            self._gateway.access.watcher.listeners.append(self._on_state)

    async def ensure(self) -> McpService:
        """The running service, started (once) if it is not yet."""
        svc = self.service
        if svc is not None:
            return svc
        async with self._lock:
            svc = self.service
            if svc is None:
                if self._closed:
                    raise RuntimeError("the MCP gateway is closed")
                ready: asyncio.Future[McpService] = asyncio.get_running_loop().create_future()
                self._runner = asyncio.get_running_loop().create_task(self._run(ready), name="lockgate-mcp")
                self.service = svc = await asyncio.shield(ready)
                self._unlisten()
                _log.info("MCP gateway started")
            return svc

    async def _run(self, ready: asyncio.Future[McpService]) -> None:
        """The service's whole life in one task of its own: the SDK's task groups (anyio
        cancel scopes) must be left by the task that entered them, whichever task (a
        request, a control-plane change, the lifespan) first needed the service."""
        from lockgate.mcp.service import start_mcp

        try:
            svc = await start_mcp(self._loaded, self._gateway, self._env)
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            return
        ready.set_result(svc)
        try:
            await self._stop.wait()
        finally:
            await svc.aclose()

    def live(self, name: str) -> dict[str, Any]:
        """What this gateway sees of a server now (nothing, before the service runs)."""
        if self.service is None:
            return {"connected": False, "error": None, "live_tools": []}
        return self.service.live(name)

    def _on_state(self, state: AccessState) -> None:
        """A control-plane change: if a server is registered now, start the service."""
        if self.service is not None or (self._check is not None and not self._check.done()):
            return
        self._check = asyncio.get_running_loop().create_task(self._start_if_registered(), name="lockgate-mcp-check")

    async def _start_if_registered(self) -> None:
        try:
            if await self.control.store.list_mcp_servers():
                await self.ensure()
        except Exception as exc:  # the next change, or the first /mcp request, tries again
            _log.warning("MCP gateway did not start: %s", exc)

    def _unlisten(self) -> None:
        with contextlib.suppress(ValueError):
            self._gateway.access.watcher.listeners.remove(self._on_state)

    async def aclose(self) -> None:
        self._unlisten()
        check, self._check = self._check, None
        if check is not None and not check.done():
            check.cancel()
            with contextlib.suppress(BaseException):
                await check
        async with self._lock:
            self._closed = True
            self.service = None
            runner, self._runner = self._runner, None
        self._stop.set()
        if runner is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await runner


async def open_mcp(loaded: LoadedConfig, gateway: Any, env: Mapping[str, str]) -> McpHost:
    """The host, its service started when MCP is configured or registered already."""
    host = McpHost(loaded, gateway, env)
    await host.open()
    return host


class _LazyEndpoint:
    """The `/mcp` ASGI app, bound at request time to the lifespan's host; the first
    request starts the MCP service if nothing has yet."""

    def __init__(self, holder: Mapping[str, Any]) -> None:
        self._holder = holder

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        host: McpHost | None = getattr(self._holder.get("gateway"), "mcp", None)
        svc = self._running(host)
        if svc is None and host is not None:
            try:
                svc = await host.ensure()
            except Exception as exc:  # the boundary: the caller gets a JSON-RPC error
                _log.error("MCP gateway did not start: %s", exc)
        if svc is None:
            from starlette.responses import JSONResponse

            await JSONResponse({"jsonrpc": "2.0", "id": None, "error": {
                "code": -32603, "message": "The MCP gateway is not running."}}, status_code=503)(scope, receive, send)
            return
        await svc.endpoint(scope, receive, send)

    @staticmethod
    def _running(host: McpHost | None) -> McpService | None:
        return host.service if host is not None else None


def mcp_routes(holder: Mapping[str, Any]) -> list[Any]:
    """`/mcp` and `/mcp/{virtual_server}` for the app's route table; `holder["gateway"]`
    is the lifespan's gateway, once it runs."""
    from starlette.routing import Route

    endpoint = _LazyEndpoint(holder)
    return [Route("/mcp", endpoint), Route("/mcp/{virtual_server}", endpoint)]
