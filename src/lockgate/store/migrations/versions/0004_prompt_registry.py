"""Prompt registry and experiments.

Revision ID: 0004_prompt_registry
Revises: 0003_mcp_gateway
"""

from __future__ import annotations

revision = "0004_prompt_registry"
down_revision: str | None = "0003_mcp_gateway"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
