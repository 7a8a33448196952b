"""Audit ledger and approvals.

Revision ID: 0002_audit_ledger
Revises: 0001_access_control
"""

from __future__ import annotations

revision = "0002_audit_ledger"
down_revision: str | None = "0001_access_control"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
