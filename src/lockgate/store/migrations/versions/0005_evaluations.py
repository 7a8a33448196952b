"""Datasets, evaluation runs and gate results.

Revision ID: 0005_evaluations
Revises: 0004_prompt_registry
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lockgate.store.types import StringTuple, UTCDateTime

revision = "0005_evaluations"
down_revision: str | None = "0004_prompt_registry"
branch_labels: str | None = None
depends_on: str | None = None

ID = 36
NAME = 200


def upgrade() -> None:
    op.create_table(
        "eval_datasets",
        sa.Column("id", sa.String(ID), primary_key=True),
        sa.Column("name", sa.String(NAME), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("source", sa.String(2000), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("item_count", sa.Integer, nullable=False),
        sa.Column("description", sa.String(2000), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("uq_eval_datasets_name_version", "eval_datasets", ["name", "version"], unique=True)
    op.create_table(
        "eval_dataset_items",
        sa.Column("dataset_id", sa.String(ID), sa.ForeignKey("eval_datasets.id"), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(NAME), nullable=False),
        sa.Column("variables", sa.JSON),
        sa.Column("messages", sa.JSON),
        sa.Column("expected", sa.JSON),
        sa.Column("meta", sa.JSON, nullable=False),
    )
    op.create_table(
        "eval_runs",
        sa.Column("id", sa.String(ID), primary_key=True),
        sa.Column("target", sa.String(NAME), nullable=False),
        sa.Column("prompt", sa.String(NAME)),
        sa.Column("prompt_version", sa.Integer),
        sa.Column("model", sa.String(NAME)),
        sa.Column("dataset_id", sa.String(ID), sa.ForeignKey("eval_datasets.id"), nullable=False, index=True),
        sa.Column("evaluators", StringTuple, nullable=False),
        sa.Column("evaluator_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("item_count", sa.Integer, nullable=False),
        sa.Column("summary", sa.JSON),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime),
    )
    op.create_index("ix_eval_runs_prompt_version", "eval_runs", ["prompt", "prompt_version"])
    op.create_table(
        "eval_results",
        sa.Column("run_id", sa.String(ID), sa.ForeignKey("eval_runs.id"), primary_key=True),
        sa.Column("item_key", sa.String(NAME), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("output", sa.Text),
        sa.Column("error", sa.String(2000)),
        sa.Column("scores", sa.JSON, nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("latency_ms", sa.Double),
        sa.Column("input_tokens", sa.Integer),
        sa.Column("output_tokens", sa.Integer),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("eval_results")
    op.drop_index("ix_eval_runs_prompt_version", table_name="eval_runs")
    op.drop_table("eval_runs")
    op.drop_table("eval_dataset_items")
    op.drop_index("uq_eval_datasets_name_version", table_name="eval_datasets")
    op.drop_table("eval_datasets")
