"""MCP gateway records: upstream servers (quarantined until approved) and tool pins.

Every change bumps the state version, so running gateways reload their registry; reads
never do. A server whose address changes (url, command or args) goes back to quarantine.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from lockgate.core.ids import uuid7
from lockgate.errors import Conflict, NotFound
from lockgate.mcp.models import McpServerRecord, PinStatus, ToolPin, Transport
from lockgate.store import _validate as check
from lockgate.store._base import StoreBase
from lockgate.store.tables_mcp import mcp_servers, mcp_tool_pins

__all__ = ["McpMixin"]


def _server_from(row: Row[Any]) -> McpServerRecord:
    return McpServerRecord(
        id=row.id, name=row.name, transport=cast("Transport", row.transport), url=row.url,
        command=row.command, args=tuple(row.args or ()), headers=dict(row.headers or {}),
        description=row.description, source=row.source, status=row.status,
        created_at=row.created_at, approved_at=row.approved_at, approved_by=row.approved_by,
    )


def _pin_from(row: Row[Any]) -> ToolPin:
    return ToolPin(
        id=row.id, server_id=row.server_id, tool=row.tool, digest=row.digest,
        definition=dict(row.definition), status=cast("PinStatus", row.status),
        first_seen_at=row.first_seen_at, decided_at=row.decided_at, decided_by=row.decided_by,
    )


class McpMixin(StoreBase):
    async def upsert_mcp_server(
        self, name: str, *, transport: Transport, url: str | None = None, command: str | None = None,
        args: Sequence[str] = (), headers: dict[str, str] | None = None, description: str = "",
        source: str = "config",
    ) -> McpServerRecord:
        """Insert a server (quarantined), or update a config server in place. A changed
        address sends it back to quarantine. Unchanged: nothing written."""
        name = check.text(name, "name")
        values = {
            "transport": transport, "url": url, "command": command, "args": tuple(args),
            "headers": dict(headers or {}), "description": description,
        }
        async with self._write() as conn:
            row = (await conn.execute(select(mcp_servers).where(mcp_servers.c.name == name))).first()
            if row is None:
                record_id = uuid7()
                await conn.execute(mcp_servers.insert().values(
                    id=record_id, name=name, source=source, status="quarantined",
                    created_at=self._now(), **values,
                ))
                await self._bump(conn)
                return _server_from(await self._find(conn, mcp_servers, record_id, kind="MCP server"))
            current = _server_from(row)
            if source == "admin" or current.source != source:
                raise Conflict(f"An MCP server named {name!r} is already registered ({current.source}).")
            moved = (current.transport, current.url, current.command, current.args) != (
                transport, url, command, tuple(args))
            same = not moved and (current.headers, current.description) == (values["headers"], description)
            if same:
                return current
            changes: dict[str, Any] = dict(values)
            if moved:
                changes.update(status="quarantined", approved_at=None, approved_by=None)
            await conn.execute(update(mcp_servers).where(mcp_servers.c.id == current.id).values(**changes))
            await self._bump(conn)
            return _server_from(await self._find(conn, mcp_servers, current.id, kind="MCP server"))

    async def get_mcp_server(self, server: str) -> McpServerRecord:
        async with self._read() as conn:
            return _server_from(await self._find(conn, mcp_servers, server, kind="MCP server", alt="name"))

    async def list_mcp_servers(self) -> list[McpServerRecord]:
        async with self._read() as conn:
            return [_server_from(r) for r in await conn.execute(select(mcp_servers).order_by(mcp_servers.c.name))]

    async def set_mcp_server_status(self, server: str, *, approved: bool, actor: str) -> McpServerRecord:
        """Approve a server (its pending tool definitions are approved with it, see
        `approve_tool_pins`) or put it back in quarantine."""
        actor = check.text(actor, "actor")
        async with self._write() as conn:
            row = await self._find(conn, mcp_servers, server, kind="MCP server", alt="name")
            changes: dict[str, Any] = (
                {"status": "approved", "approved_at": self._now(), "approved_by": actor} if approved
                else {"status": "quarantined", "approved_at": None, "approved_by": None}
            )
            await conn.execute(update(mcp_servers).where(mcp_servers.c.id == row.id).values(**changes))
            await self._bump(conn)
            return _server_from(await self._find(conn, mcp_servers, row.id, kind="MCP server"))

    async def delete_mcp_server(self, server: str) -> McpServerRecord:
        async with self._write() as conn:
            row = await self._find(conn, mcp_servers, server, kind="MCP server", alt="name")
            await conn.execute(mcp_tool_pins.delete().where(mcp_tool_pins.c.server_id == row.id))
            await conn.execute(mcp_servers.delete().where(mcp_servers.c.id == row.id))
            await self._bump(conn)
            return _server_from(row)

    async def record_tool_definitions(
        self, server_id: str, definitions: Iterable[tuple[str, str, dict[str, Any]]]
    ) -> int:
        """Record (tool, digest, definition) as `pending` unless already known; returns
        how many were new. Safe to race: the (server, tool, digest) triple is unique."""
        t = mcp_tool_pins.c
        async with self._write() as conn:
            known = {
                (r.tool, r.digest)
                for r in await conn.execute(select(t.tool, t.digest).where(t.server_id == server_id))
            }
            fresh = [(tool, digest, d) for tool, digest, d in definitions if (tool, digest) not in known]
            for tool, digest, definition in fresh:
                await conn.execute(
                    self._upsert(mcp_tool_pins).values(
                        id=uuid7(), server_id=server_id, tool=tool, digest=digest, definition=definition,
                        status="pending", first_seen_at=self._now(),
                    ).on_conflict_do_nothing()
                )
            if fresh:
                await self._bump(conn)
            return len(fresh)

    async def list_tool_pins(
        self, *, server_id: str | None = None, status: Sequence[str] | None = None
    ) -> list[ToolPin]:
        query = select(mcp_tool_pins).order_by(mcp_tool_pins.c.server_id, mcp_tool_pins.c.tool, mcp_tool_pins.c.id)
        if server_id is not None:
            query = query.where(mcp_tool_pins.c.server_id == server_id)
        if status:
            query = query.where(mcp_tool_pins.c.status.in_(list(status)))
        async with self._read() as conn:
            return [_pin_from(r) for r in await conn.execute(query)]

    async def decide_tool_pins(
        self, server_id: str, *, approve: bool, actor: str, tools: Sequence[str] | None = None,
        pin_id: str | None = None,
    ) -> list[ToolPin]:
        """Approve (or reject) the pending definitions of a server: all, those of `tools`,
        or the one `pin_id`. An approved definition supersedes the tool's previous one."""
        actor = check.text(actor, "actor")
        t = mcp_tool_pins.c
        async with self._write() as conn:
            query = select(mcp_tool_pins).where(t.server_id == server_id, t.status == "pending")
            if pin_id is not None:
                query = select(mcp_tool_pins).where(t.server_id == server_id, t.id == pin_id)
            elif tools is not None:
                query = query.where(t.tool.in_(list(tools)))
            rows = list(await conn.execute(query.order_by(t.id)))
            if pin_id is not None and not rows:
                raise NotFound(f"No tool definition with id {pin_id!r} on this server.")
            decided = await self._decide(conn, rows, approve=approve, actor=actor)
            if decided:
                await self._bump(conn)
            return decided

    async def _decide(
        self, conn: AsyncConnection, rows: list[Row[Any]], *, approve: bool, actor: str
    ) -> list[ToolPin]:
        t = mcp_tool_pins.c
        now = self._now()
        latest: dict[str, Row[Any]] = {}
        for row in rows:  # oldest first: the newest pending definition of a tool wins
            latest[row.tool] = row
        decided: list[ToolPin] = []
        for tool, row in latest.items():
            if row.status == "approved" and approve:
                decided.append(_pin_from(row))
                continue
            if approve:
                await conn.execute(
                    update(mcp_tool_pins).where(t.server_id == row.server_id, t.tool == tool, t.status == "approved")
                    .values(status="superseded")
                )
            status = "approved" if approve else "rejected"
            await conn.execute(
                update(mcp_tool_pins).where(t.id == row.id).values(status=status, decided_at=now, decided_by=actor)
            )
            decided.append(_pin_from(await self._find(conn, mcp_tool_pins, row.id, kind="tool definition")))
        for row in rows:  # older pending definitions of the same tools are settled too
            if row.status == "pending" and latest[row.tool].id != row.id:
                await conn.execute(
                    update(mcp_tool_pins).where(t.id == row.id).values(status="rejected", decided_at=now, decided_by=actor)
                )
        return decided

    async def load_mcp_registry(self) -> tuple[list[McpServerRecord], list[ToolPin]]:
        """Every server and every approved or pending definition, in one transaction."""
        async with self._read() as conn:
            servers = [_server_from(r) for r in await conn.execute(select(mcp_servers).order_by(mcp_servers.c.name))]
            pins = [
                _pin_from(r)
                for r in await conn.execute(
                    select(mcp_tool_pins).where(mcp_tool_pins.c.status.in_(["approved", "pending"]))
                    .order_by(mcp_tool_pins.c.id)
                )
            ]
        return servers, pins
