"""Prompt registry and experiments.

Revision ID: 0004_prompt_registry
Revises: 0003_mcp_gateway
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lockgate.store.types import UTCDateTime

revision = "0004_prompt_registry"
down_revision: str | None = "0003_mcp_gateway"
branch_labels: str | None = None
depends_on: str | None = None

ID = 36
NAME = 200
HASH = 80


def _prompt_fk(**kw: object) -> sa.Column[object]:
    return sa.Column("prompt_id", sa.String(ID), sa.ForeignKey("prompts.id"), **kw)  # type: ignore[arg-type]


def upgrade() -> None:
    op.create_table(
        "prompts",
        sa.Column("id", sa.String(ID), primary_key=True),
        sa.Column("name", sa.String(NAME), nullable=False, unique=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(NAME), nullable=False),
    )
    op.create_table(
        "prompt_versions",
        sa.Column("id", sa.String(ID), primary_key=True),
        _prompt_fk(nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("content_hash", sa.String(HASH), nullable=False),
        sa.Column("content", sa.JSON, nullable=False),
        sa.Column("author", sa.String(NAME), nullable=False),
        sa.Column("message", sa.String(2000), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("uq_prompt_versions_prompt_id_version", "prompt_versions", ["prompt_id", "version"], unique=True)
    op.create_table(
        "prompt_labels",
        _prompt_fk(primary_key=True),
        sa.Column("label", sa.String(NAME), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("updated_by", sa.String(NAME), nullable=False),
    )
    op.create_table(
        "prompt_label_events",
        sa.Column("id", sa.String(ID), primary_key=True),
        _prompt_fk(nullable=False, index=True),
        sa.Column("label", sa.String(NAME), nullable=False),
        sa.Column("version", sa.Integer),
        sa.Column("previous_version", sa.Integer),
        sa.Column("actor", sa.String(NAME), nullable=False),
        sa.Column("reason", sa.String(2000)),
        sa.Column("gate", sa.JSON),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    _create_experiments()


def _create_experiments() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.String(ID), primary_key=True),
        sa.Column("name", sa.String(NAME), nullable=False, unique=True),
        sa.Column("prompt", sa.String(NAME)),
        sa.Column("model", sa.String(NAME)),
        sa.Column("label", sa.String(NAME), nullable=False),
        sa.Column("sticky", sa.String(16), nullable=False),
        sa.Column("arms", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(NAME), nullable=False),
        sa.Column("stopped_at", UTCDateTime),
    )
    op.create_table(
        "experiment_outcomes",
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("experiment", sa.String(NAME), nullable=False),
        sa.Column("arm", sa.String(NAME), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("error_code", sa.String(64)),
        sa.Column("latency_ms", sa.Double, nullable=False),
        sa.Column("ttft_ms", sa.Double),
        sa.Column("prompt", sa.String(NAME)),
        sa.Column("version", sa.Integer),
        sa.Column("model", sa.String(NAME)),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("cost_usd", sa.Double, nullable=False),
    )
    op.create_index("ix_experiment_outcomes_experiment_arm", "experiment_outcomes", ["experiment", "arm"])
    op.create_table(
        "request_scores",
        sa.Column("id", sa.String(ID), primary_key=True),
        sa.Column("request_id", sa.String(128), nullable=False, index=True),
        sa.Column("name", sa.String(NAME), nullable=False),
        sa.Column("value", sa.Double, nullable=False),
        sa.Column("source", sa.String(NAME), nullable=False),
        sa.Column("comment", sa.String(2000)),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "request_scores",
        "experiment_outcomes",
        "experiments",
        "prompt_label_events",
        "prompt_labels",
        "prompt_versions",
        "prompts",
    ):
        op.drop_table(table)
