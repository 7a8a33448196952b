"""The MCP gateway's records: registered upstream servers and tool pins.

Plain immutable values; the store persists them (`lockgate.store._mcp`), the registry
holds them in memory (`lockgate.mcp.registry`), the admin API and the CLI show them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = ["McpServerRecord", "PinStatus", "ServerStatus", "ToolPin", "Transport"]

Transport = Literal["http", "stdio"]
ServerStatus = Literal["quarantined", "approved"]
PinStatus = Literal["pending", "approved", "superseded", "rejected"]


@dataclass(frozen=True, slots=True)
class McpServerRecord:
    """An upstream MCP server lockgate knows. `headers` maps a header name to a secret
    reference (`env::NAME`) or a literal; for a config server it mirrors the config."""

    id: str
    name: str
    transport: Transport
    url: str | None
    command: str | None
    args: tuple[str, ...]
    headers: dict[str, str]
    description: str
    source: Literal["config", "admin"]
    status: ServerStatus
    created_at: datetime
    approved_at: datetime | None = None
    approved_by: str | None = None


@dataclass(frozen=True, slots=True)
class ToolPin:
    """One tool definition seen on a server: its digest (SHA-256 of the RFC 8785 form of
    name, description, input schema and annotations) and the definition itself."""

    id: str
    server_id: str
    tool: str
    digest: str
    definition: dict[str, Any] = field(hash=False, compare=True)
    status: PinStatus = "pending"
    first_seen_at: datetime | None = None
    decided_at: datetime | None = None
    decided_by: str | None = None
