"""Datasets, evaluation runs and gate results.

Revision ID: 0005_evaluations
Revises: 0004_prompt_registry
"""

from __future__ import annotations

revision = "0005_evaluations"
down_revision: str | None = "0004_prompt_registry"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
