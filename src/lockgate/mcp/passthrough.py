"""Resources and prompts of the upstreams, passed through under the tools' rules.

A server's resources and prompts are offered only when the server is approved and not
stopped by a kill switch, and (on `/mcp/{virtual}`) the virtual server lists it in
`servers`. Each resource and prompt is then checked like a tool named
`server__NAME`: allow-lists, and Cedar `call_tool` on `Lockgate::Tool::"server/NAME"`.
Prompts are namespaced `server__prompt`; resources keep their URIs (the first server,
in name order, that lists a URI serves it). Read results and prompts pass the
guardrails like tool results.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mcp.types import GetPromptResult, Prompt, ReadResourceResult, Resource

from lockgate.access.kill import tool_switch
from lockgate.errors import NotFound, PermissionDenied
from lockgate.mcp.calls import Caller, ToolCalls
from lockgate.mcp.catalog import namespaced, split_name
from lockgate.mcp.registry import Registry
from lockgate.mcp.upstream import Upstream

__all__ = ["Passthrough"]

_log = logging.getLogger("lockgate.mcp")
_MAX_URIS = 10_000


class Passthrough:
    def __init__(self, registry: Registry, calls: ToolCalls) -> None:
        self._registry = registry
        self._calls = calls
        self._owners: dict[str, tuple[str, str]] = {}  # resource URI -> (server, resource name)

    def _servers(self, caller: Caller) -> list[Upstream]:
        state = self._calls.s.state()
        out: list[Upstream] = []
        for name, upstream in sorted(self._registry.upstreams.items()):
            record = self._registry.servers.get(name)
            if record is None or record.status != "approved":
                continue
            if caller.virtual is not None and name not in caller.virtual.servers:
                continue
            if state.kills and tool_switch(state, caller.principal, name, "*") is not None:
                continue
            out.append(upstream)
        return out

    def _allowed(self, caller: Caller, server: str, name: str) -> bool:
        return self._calls.permitted(caller, [(namespaced(server, name), server, name, False)])[0]

    async def _gather(self, caller: Caller, what: str, method: str) -> list[tuple[Upstream, Any]]:
        servers = self._servers(caller)

        async def one(upstream: Upstream) -> Any:
            return await upstream.request(what, lambda c: getattr(c, method)())

        results = await asyncio.gather(*(one(u) for u in servers), return_exceptions=True)
        pairs: list[tuple[Upstream, Any]] = []
        for upstream, result in zip(servers, results, strict=True):
            if isinstance(result, BaseException):
                _log.info("MCP server %s: %s failed: %s", upstream.name, what, result)
            else:
                pairs.append((upstream, result))
        return pairs

    # --- resources -----------------------------------------------------------------

    async def list_resources(self, caller: Caller) -> list[Resource]:
        out: list[Resource] = []
        seen: set[str] = set()
        for upstream, result in await self._gather(caller, "resources/list", "list_resources"):
            for resource in result.resources:
                uri = str(resource.uri)
                if uri in seen or not self._allowed(caller, upstream.name, resource.name):
                    continue
                seen.add(uri)
                if len(self._owners) < _MAX_URIS:
                    self._owners.setdefault(uri, (upstream.name, resource.name))
                out.append(resource)
        return out

    async def read_resource(self, caller: Caller, uri: str) -> ReadResourceResult:
        owner = self._owners.get(uri)
        if owner is None:
            await self.list_resources(caller)
            owner = self._owners.get(uri)
        upstream = self._registry.upstreams.get(owner[0]) if owner else None
        if owner is None or upstream is None or upstream not in self._servers(caller):
            raise NotFound(f"Unknown resource: {uri!r}.", param="uri")
        if not self._allowed(caller, owner[0], owner[1]):
            raise PermissionDenied(f"Resource {uri!r} of MCP server '{owner[0]}' is not allowed for this caller.")
        result: ReadResourceResult = await upstream.request(
            f"resource {uri!r}", lambda c: c.read_resource(uri)
        )
        return await self._screen(caller, f"resource:{owner[0]}:{uri}", result.model_copy(update={"meta": None}))

    # --- prompts -------------------------------------------------------------------

    async def list_prompts(self, caller: Caller) -> list[Prompt]:
        out: list[Prompt] = []
        for upstream, result in await self._gather(caller, "prompts/list", "list_prompts"):
            for prompt in result.prompts:
                if self._allowed(caller, upstream.name, prompt.name):
                    out.append(prompt.model_copy(update={"name": namespaced(upstream.name, prompt.name)}))
        return out

    async def get_prompt(self, caller: Caller, name: str, arguments: dict[str, str] | None) -> GetPromptResult:
        parts = split_name(name)
        upstream = self._registry.upstreams.get(parts[0]) if parts else None
        if parts is None or upstream is None or upstream not in self._servers(caller):
            raise NotFound(f"Unknown prompt: {name!r}. Prompts are named `server__prompt`.", param="name")
        if not self._allowed(caller, parts[0], parts[1]):
            raise PermissionDenied(f"Prompt {name} is not allowed for this caller.")
        result: GetPromptResult = await upstream.request(
            f"prompt {parts[1]!r}", lambda c: c.get_prompt(parts[1], arguments)
        )
        return await self._screen(caller, f"prompt:{name}", result.model_copy(update={"meta": None}))

    async def _screen(self, caller: Caller, what: str, result: Any) -> Any:
        """Guardrails on content coming back: a block withholds it; a flag is noted."""
        dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        verdict = await self._calls._guard(caller, what, result=dumped)  # pyright: ignore[reportPrivateUsage]
        if verdict is None or verdict.action == "pass":
            return result
        if verdict.action in ("block", "needs_approval"):
            raise PermissionDenied(f"lockgate withheld {what}: guardrails flagged it ({verdict.action}).")
        notice = {"action": verdict.action, "verdicts": list(verdict.verdicts)}
        return result.model_copy(update={"meta": {**(result.meta or {}), "lockgate/guard": notice}})
