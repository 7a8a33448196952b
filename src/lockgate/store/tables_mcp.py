"""MCP gateway: upstream servers and tool pins, on the shared `metadata` (see `tables.py`
for the conventions).

`mcp_servers` holds every upstream lockgate knows, from the config (`source = "config"`,
synced at start) or registered through the admin API (`source = "admin"`, HTTP only).
`status` is `quarantined` until an admin approves the server, then `approved`.

`mcp_tool_pins` holds one row per tool definition seen: the SHA-256 of the RFC 8785
form of its name, description, input schema and annotations, and that definition.
`status`: `pending` (seen, waiting for an admin), `approved` (the pin calls are checked
against; at most one per server and tool), `superseded` (an earlier approved
definition), `rejected`. Changes bump `state_version`, so every gateway reloads.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, ForeignKey, Index, String, Table, Text, UniqueConstraint

from lockgate.store.tables import ID, NAME, metadata
from lockgate.store.types import StringTuple, UTCDateTime

__all__ = ["mcp_servers", "mcp_tool_pins"]

mcp_servers = Table(
    "mcp_servers",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", String(NAME), nullable=False, unique=True),
    Column("transport", String(16), nullable=False),  # "http" | "stdio"
    Column("url", Text),
    Column("command", Text),
    Column("args", StringTuple, nullable=False),
    Column("headers", JSON, nullable=False),  # name -> secret reference or literal
    Column("description", Text, nullable=False),
    Column("source", String(16), nullable=False),  # "config" | "admin"
    Column("status", String(16), nullable=False),  # "quarantined" | "approved"
    Column("created_at", UTCDateTime, nullable=False),
    Column("approved_at", UTCDateTime),
    Column("approved_by", String(NAME)),
)

mcp_tool_pins = Table(
    "mcp_tool_pins",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("server_id", String(ID), ForeignKey("mcp_servers.id"), nullable=False),
    Column("tool", String(NAME), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("definition", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("decided_at", UTCDateTime),
    Column("decided_by", String(NAME)),
    UniqueConstraint("server_id", "tool", "digest"),
    Index(None, "server_id", "status"),
)
