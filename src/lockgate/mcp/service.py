"""`McpService`: the MCP gateway while lockgate runs, built in the app's lifespan.

    svc = McpService(loaded, access=access, tracing=tracing, plugins=lookup, env=env)
    await svc.start()     # config servers into the store, registry, upstreams, endpoint
    app: svc.endpoint      # the ASGI app for /mcp and /mcp/{virtual_server}
    await svc.aclose()

Importing this module imports the `mcp` SDK: the app reaches it only through
`lockgate.mcp.host`, which starts the service when MCP is used.

It owns the registry (servers, live tools, pins), the upstream connections, the rules,
the call pipeline and the SDK's session manager. It listens to the access state: a
change of the control plane reloads the registry (approvals, registrations), rebuilds
the policy entities, and stops calls a kill switch now covers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from lockgate.access.authorize import records_of
from lockgate.access.plane import AccessPlane
from lockgate.access.services import Notifier
from lockgate.access.state import AccessState
from lockgate.config.loader import LoadedConfig
from lockgate.mcp.calls import Services, ToolCalls
from lockgate.mcp.control import McpControl
from lockgate.mcp.endpoint import McpEndpoint, build_server
from lockgate.mcp.fastpath import FastCall
from lockgate.mcp.passthrough import Passthrough
from lockgate.mcp.registry import Registry, read_secret
from lockgate.mcp.rules import McpRules
from lockgate.monitor.tracing import Tracing

__all__ = ["McpService", "start_mcp"]

_log = logging.getLogger("lockgate.mcp")


class McpService:
    def __init__(
        self, loaded: LoadedConfig, *, access: AccessPlane, tracing: Tracing,
        plugins: Callable[[str], Any], env: Mapping[str, str],
    ) -> None:
        config = loaded.config.mcp
        self.config = config
        self._access = access
        self.registry = Registry(config, access.store, secret=read_secret(env, loaded.secrets))
        self.rules = McpRules(config)
        self.control = McpControl(
            access.store, Notifier(loaded.config.gateway.redis), config_servers=list(config.servers),
            audit=plugins("audit"),
        )
        self._entities = access.policy.entities(records_of(access.state()))
        self.calls = ToolCalls(Services(
            registry=self.registry, rules=self.rules, state=access.state, policy=access.policy,
            entities=lambda: self._entities, limiter=access.limiter, tracing=tracing, plugins=plugins,
            approval_timeout=config.approval_timeout,
        ))
        self.passthrough = Passthrough(self.registry, self.calls)
        self.server = build_server(self)
        self.manager = StreamableHTTPSessionManager(
            self.server, json_response=True, stateless=True, max_request_body_size=config.max_body_bytes,
        )
        self.endpoint = McpEndpoint(
            self, access.identify.identify, config.max_body_bytes, FastCall(self, self.server)
        )
        self._stack = contextlib.AsyncExitStack()
        self._tasks: list[asyncio.Task[None]] = []
        self._reload_task: asyncio.Task[None] | None = None
        self._reload_again = False
        self._version = access.state().version

    async def start(self) -> None:
        await self.registry.sync_config()
        await self.registry.reload()
        await self._stack.enter_async_context(self.manager.run())
        self._access.watcher.listeners.append(self._on_state)
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._refresher(), name="lockgate-mcp-refresh"))

    async def aclose(self) -> None:
        with contextlib.suppress(ValueError):
            self._access.watcher.listeners.remove(self._on_state)
        tasks = [*self._tasks, *([self._reload_task] if self._reload_task else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        await self.registry.aclose()
        await self._stack.aclose()

    def _on_state(self, state: AccessState) -> None:
        self._entities = self._access.policy.entities(records_of(state))
        self.calls.on_state_change(state)
        if state.version == self._version:
            return
        self._version = state.version
        if self._reload_task is not None and not self._reload_task.done():
            self._reload_again = True
            return
        self._reload_task = asyncio.get_running_loop().create_task(self._reload(), name="lockgate-mcp-reload")

    async def _reload(self) -> None:
        while True:
            self._reload_again = False
            try:
                before = set(self.registry.upstreams)
                await self.registry.reload()
                fresh = [u for n, u in self.registry.upstreams.items() if n not in before]
                if fresh:
                    await asyncio.gather(*(u.refresh() for u in fresh), return_exceptions=True)
            except Exception as exc:
                _log.warning("MCP registry reload failed: %s", exc)
            if not self._reload_again:
                return

    async def _refresher(self) -> None:
        """Re-list each upstream every `refresh_interval`; one that failed is retried
        sooner, backing off from 0.5 s up to the interval."""
        loop = asyncio.get_running_loop()
        due: dict[str, float] = {}
        backoff: dict[str, float] = {}
        interval = self.config.refresh_interval
        while True:
            now = loop.time()
            names = [n for n in self.registry.upstreams if due.get(n, 0.0) <= now]
            results = await asyncio.gather(
                *(self.registry.upstreams[n].refresh() for n in names), return_exceptions=True
            )
            for name, result in zip(names, results, strict=True):
                if isinstance(result, BaseException):
                    backoff[name] = min(interval, backoff.get(name, 0.25) * 2)
                    _log.info("MCP server %s: %s", name, result)
                else:
                    backoff.pop(name, None)
                due[name] = loop.time() + backoff.get(name, interval)
            await asyncio.sleep(min(0.5, interval))

    def live(self, name: str) -> dict[str, Any]:
        """What this gateway sees of a server now: connected, last error, live tools."""
        upstream = self.registry.upstreams.get(name)
        if upstream is None:
            return {"connected": False, "error": None, "live_tools": []}
        tools = [
            {"name": e.tool.full_name, "digest": e.tool.digest, "status": e.status,
             "destructive": e.tool.destructive}
            for e in self.registry.entries.values() if e.tool.server == name
        ]
        return {"connected": upstream.connected, "error": upstream.error, "live_tools": tools}


async def start_mcp(loaded: LoadedConfig, gateway: Any, env: Mapping[str, str]) -> McpService:
    """Build and start the service; audit, guard and oversight are read off `gateway` per call."""
    svc = McpService(
        loaded, access=gateway.access, tracing=gateway.tracing,
        plugins=lambda name: getattr(gateway, name, None), env=env,
    )
    try:
        await svc.start()
    except BaseException:
        await svc.aclose()
        raise
    return svc
