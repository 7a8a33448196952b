"""MCP gateway: upstream servers, tool pins.

Revision ID: 0003_mcp_gateway
Revises: 0002_audit_ledger
"""

from __future__ import annotations

revision = "0003_mcp_gateway"
down_revision: str | None = "0002_audit_ledger"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
