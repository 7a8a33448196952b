"""Control-plane operations of the MCP gateway: register, list, show and approve servers,
show and approve tool definitions. The admin API (`lockgate.admin.mcp`) and the CLI
(`lockgate mcp ...`) are thin layers over this; running gateways pick every change up
through the state version (at once with Redis).

The admin API registers streamable HTTP servers only: a stdio server is a command
lockgate runs, and only the config file (the operator) may name commands.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from lockgate.access.services import Notifier
from lockgate.config.mcp import SERVER_NAME, is_secret_ref
from lockgate.errors import Conflict, InvalidRequest, NotFound
from lockgate.mcp.catalog import namespaced, split_name
from lockgate.mcp.models import McpServerRecord, ToolPin
from lockgate.store.store import Store

__all__ = ["McpControl", "pin_out", "server_out"]


def server_out(record: McpServerRecord) -> dict[str, Any]:
    out = asdict(record)
    out["headers"] = {k: (v if is_secret_ref(v.rpartition(" ")[2]) else "***") for k, v in record.headers.items()}
    for key in ("created_at", "approved_at"):
        out[key] = out[key].isoformat() if out[key] else None
    out["args"] = list(record.args)
    return out


def pin_out(pin: ToolPin, server: str) -> dict[str, Any]:
    return {
        "id": pin.id, "server": server, "tool": pin.tool, "name": namespaced(server, pin.tool),
        "digest": pin.digest, "status": pin.status, "definition": pin.definition,
        "first_seen_at": pin.first_seen_at.isoformat() if pin.first_seen_at else None,
        "decided_at": pin.decided_at.isoformat() if pin.decided_at else None, "decided_by": pin.decided_by,
    }


class McpControl:
    def __init__(
        self, store: Store, notifier: Notifier, *, config_servers: Sequence[str] = (), audit: Any = None
    ) -> None:
        self.store = store
        self._notifier = notifier
        self._config_servers = set(config_servers)
        self.audit = audit  # the ledger, when on: every change here is an `admin.change` event

    async def _changed(self, obj: str, *, action: str, actor: str = "admin", **data: Any) -> None:
        """Tell every gateway, and put the change in the ledger."""
        await self._notifier.publish()
        if self.audit is not None:
            await self.audit.record(
                "admin.change", actor={"kind": "operator", "principal": actor}, target={"object": obj},
                data={"action": action, **data},
            )

    async def register_server(
        self, name: str, *, url: str, headers: Mapping[str, str] | None = None, description: str = ""
    ) -> McpServerRecord:
        if not SERVER_NAME.match(name):
            raise InvalidRequest(
                "name: use 1-64 letters, digits and hyphens (no '_': it would clash with `server__tool`).",
                param="name",
            )
        if not url.startswith(("http://", "https://")):
            raise InvalidRequest("url must be an http:// or https:// URL.", param="url")
        for key, value in (headers or {}).items():
            if key.lower() == "authorization" and not is_secret_ref(value.rpartition(" ")[2]):
                raise InvalidRequest(
                    f"headers.{key}: name the credential by where it lives (\"Bearer env::CRM_TOKEN\"); "
                    "lockgate does not store credentials.", param=f"headers.{key}",
                )
        if name in self._config_servers:
            raise Conflict(f"An MCP server named {name!r} is defined in the config.")
        record = await self.store.upsert_mcp_server(
            name, transport="http", url=url, headers=dict(headers or {}), description=description, source="admin",
        )
        await self._changed(f"mcp_server:{name}", action="mcp_server.register", url=url)
        return record

    async def servers(self) -> list[dict[str, Any]]:
        pins = await self.store.list_tool_pins(status=["approved", "pending"])
        out: list[dict[str, Any]] = []
        for record in await self.store.list_mcp_servers():
            mine = [p for p in pins if p.server_id == record.id]
            out.append(server_out(record) | {
                "tools_approved": sum(p.status == "approved" for p in mine),
                "tools_pending": sum(p.status == "pending" for p in mine),
            })
        return out

    async def server(self, name: str) -> dict[str, Any]:
        record = await self.store.get_mcp_server(name)
        pins = await self.store.list_tool_pins(server_id=record.id, status=["approved", "pending"])
        return server_out(record) | {"tools": [pin_out(p, record.name) for p in pins]}

    async def approve_server(self, name: str, *, actor: str, tools: Sequence[str] | None = None) -> dict[str, Any]:
        """Approve the server and its pending tool definitions (all, or those named)."""
        record = await self.store.set_mcp_server_status(name, approved=True, actor=actor)
        decided = await self.store.decide_tool_pins(record.id, approve=True, actor=actor, tools=tools)
        await self._changed(f"mcp_server:{record.name}", action="mcp_server.approve", actor=actor, tools=[p.tool for p in decided])
        return server_out(record) | {"approved_tools": [pin_out(p, record.name) for p in decided]}

    async def quarantine_server(self, name: str, *, actor: str) -> McpServerRecord:
        record = await self.store.set_mcp_server_status(name, approved=False, actor=actor)
        await self._changed(f"mcp_server:{record.name}", action="mcp_server.quarantine", actor=actor)
        return record

    async def delete_server(self, name: str) -> McpServerRecord:
        record = await self.store.get_mcp_server(name)
        if record.source == "config":
            raise Conflict(f"MCP server {record.name!r} comes from the config; remove it there.")
        deleted = await self.store.delete_mcp_server(record.id)
        await self._changed(f"mcp_server:{record.name}", action="mcp_server.delete")
        return deleted

    async def tools(self, *, server: str | None = None, status: Sequence[str] | None = None) -> list[dict[str, Any]]:
        records = {r.id: r for r in await self.store.list_mcp_servers()}
        server_id = (await self.store.get_mcp_server(server)).id if server else None
        pins = await self.store.list_tool_pins(server_id=server_id, status=status or ["approved", "pending"])
        return [pin_out(p, records[p.server_id].name) for p in pins if p.server_id in records]

    async def tool(self, name: str) -> dict[str, Any]:
        record, tool = await self._split(name)
        pins = await self.store.list_tool_pins(server_id=record.id)
        mine = [pin_out(p, record.name) for p in pins if p.tool == tool]
        if not mine:
            raise NotFound(f"No tool {name!r} has been seen on MCP server {record.name!r}.")
        return {"name": name, "server": record.name, "tool": tool, "definitions": mine}

    async def decide_tool(self, name: str, *, approve: bool, actor: str, pin_id: str | None = None) -> list[dict[str, Any]]:
        record, tool = await self._split(name)
        decided = await self.store.decide_tool_pins(
            record.id, approve=approve, actor=actor, tools=[tool], pin_id=pin_id
        )
        if not decided:
            raise NotFound(f"Tool {name!r} has no definition waiting for a decision.")
        await self._changed(f"tool:{name}", action="tool.approve" if approve else "tool.reject", actor=actor, digests=[p.digest for p in decided])
        return [pin_out(p, record.name) for p in decided]

    async def _split(self, name: str) -> tuple[McpServerRecord, str]:
        parts = split_name(name)
        if parts is None:
            raise InvalidRequest(f"Tool names are `server__tool`, not {name!r}.", param="name")
        return await self.store.get_mcp_server(parts[0]), parts[1]
