"""Prompt registry and experiments: the tables, on the shared `metadata` (see `tables.py` for the conventions).

Versions are immutable rows numbered per prompt; a label is a movable pointer (one row
per prompt and label) and every move is appended to `prompt_label_events`. Changes to
prompts, labels and experiments bump `state_version`, so gateways reload their
in-memory registry. Outcomes and scores are append-only data written in batches and
bump nothing.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Double, ForeignKey, Index, Integer, String, Table

from lockgate.store.tables import ID, NAME, metadata
from lockgate.store.types import UTCDateTime

__all__ = [
    "experiment_outcomes",
    "experiments",
    "prompt_label_events",
    "prompt_labels",
    "prompt_versions",
    "prompts",
    "request_scores",
]

HASH = 80  # "sha256:" + 64 hex digits

prompts = Table(
    "prompts",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", String(NAME), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(NAME), nullable=False),
)

prompt_versions = Table(
    "prompt_versions",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("prompt_id", String(ID), ForeignKey("prompts.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("content_hash", String(HASH), nullable=False),
    Column("content", JSON, nullable=False),
    Column("author", String(NAME), nullable=False),
    Column("message", String(2000), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
Index("uq_prompt_versions_prompt_id_version", prompt_versions.c.prompt_id, prompt_versions.c.version, unique=True)

prompt_labels = Table(
    "prompt_labels",
    metadata,
    Column("prompt_id", String(ID), ForeignKey("prompts.id"), primary_key=True),
    Column("label", String(NAME), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String(NAME), nullable=False),
)

prompt_label_events = Table(
    "prompt_label_events",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("prompt_id", String(ID), ForeignKey("prompts.id"), nullable=False, index=True),
    Column("label", String(NAME), nullable=False),
    Column("version", Integer),  # None: the label was removed
    Column("previous_version", Integer),
    Column("actor", String(NAME), nullable=False),
    Column("reason", String(2000)),  # the override reason, or why a label was removed
    Column("gate", JSON),  # {"passed", "failures", "run_id"} when a gate covered the move
    Column("created_at", UTCDateTime, nullable=False),
)

experiments = Table(
    "experiments",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", String(NAME), nullable=False, unique=True),
    Column("prompt", String(NAME)),
    Column("model", String(NAME)),
    Column("label", String(NAME), nullable=False),
    Column("sticky", String(16), nullable=False),
    Column("arms", JSON, nullable=False),  # [{"name", "weight", "version", "model"}]
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(NAME), nullable=False),
    Column("stopped_at", UTCDateTime),
)

experiment_outcomes = Table(
    "experiment_outcomes",
    metadata,
    Column("request_id", String(128), primary_key=True),
    Column("experiment", String(NAME), nullable=False),
    Column("arm", String(NAME), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("status", Integer, nullable=False),
    Column("error_code", String(64)),
    Column("latency_ms", Double, nullable=False),
    Column("ttft_ms", Double),
    Column("prompt", String(NAME)),
    Column("version", Integer),
    Column("model", String(NAME)),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cost_usd", Double, nullable=False),
)
Index("ix_experiment_outcomes_experiment_arm", experiment_outcomes.c.experiment, experiment_outcomes.c.arm)

request_scores = Table(
    "request_scores",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("request_id", String(128), nullable=False, index=True),
    Column("name", String(NAME), nullable=False),
    Column("value", Double, nullable=False),
    Column("source", String(NAME), nullable=False),
    Column("comment", String(2000)),
    Column("created_at", UTCDateTime, nullable=False),
)
