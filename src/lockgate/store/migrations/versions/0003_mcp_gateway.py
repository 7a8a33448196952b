"""MCP gateway: upstream servers, tool pins.

Revision ID: 0003_mcp_gateway
Revises: 0002_audit_ledger
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lockgate.store.types import StringTuple, UTCDateTime

revision = "0003_mcp_gateway"
down_revision: str | None = "0002_audit_ledger"
branch_labels: str | None = None
depends_on: str | None = None

ID = 36
NAME = 200


def upgrade() -> None:
    op.create_table(
        "mcp_servers",
        sa.Column("id", sa.String(ID), primary_key=True),
        sa.Column("name", sa.String(NAME), nullable=False, unique=True),
        sa.Column("transport", sa.String(16), nullable=False),
        sa.Column("url", sa.Text),
        sa.Column("command", sa.Text),
        sa.Column("args", StringTuple, nullable=False),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("approved_at", UTCDateTime),
        sa.Column("approved_by", sa.String(NAME)),
    )
    op.create_table(
        "mcp_tool_pins",
        sa.Column("id", sa.String(ID), primary_key=True),
        sa.Column("server_id", sa.String(ID), sa.ForeignKey("mcp_servers.id"), nullable=False),
        sa.Column("tool", sa.String(NAME), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("first_seen_at", UTCDateTime, nullable=False),
        sa.Column("decided_at", UTCDateTime),
        sa.Column("decided_by", sa.String(NAME)),
        sa.UniqueConstraint("server_id", "tool", "digest"),
    )
    op.create_index("ix_mcp_tool_pins_server_id_status", "mcp_tool_pins", ["server_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_mcp_tool_pins_server_id_status", table_name="mcp_tool_pins")
    op.drop_table("mcp_tool_pins")
    op.drop_table("mcp_servers")
