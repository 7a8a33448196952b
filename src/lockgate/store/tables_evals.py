"""Datasets, evaluation runs and gate results: the tables, on the shared `metadata` (see `tables.py` for the conventions).

A dataset version is immutable: importing changed content adds a version. Items keep
a stable `key` (the file's `id`, else a hash of the input) so runs over different
versions compare item by item. A run stores one result row per item as soon as the
item is scored, which is what lets an interrupted run resume.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Double, ForeignKey, Index, Integer, String, Table, Text

from lockgate.store.tables import ID, NAME, metadata
from lockgate.store.types import StringTuple, UTCDateTime

__all__ = ["eval_dataset_items", "eval_datasets", "eval_results", "eval_runs"]

eval_datasets = Table(
    "eval_datasets",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", String(NAME), nullable=False),
    Column("version", Integer, nullable=False),
    Column("source", String(2000), nullable=False),  # jsonl:PATH, csv:PATH, capture:PATH
    Column("content_hash", String(64), nullable=False),
    Column("item_count", Integer, nullable=False),
    Column("description", String(2000), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
Index("uq_eval_datasets_name_version", eval_datasets.c.name, eval_datasets.c.version, unique=True)

eval_dataset_items = Table(
    "eval_dataset_items",
    metadata,
    Column("dataset_id", String(ID), ForeignKey("eval_datasets.id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("key", String(NAME), nullable=False),
    Column("variables", JSON),  # {name: value}: a prompt's input variables
    Column("messages", JSON),  # [{role, content}]: a conversation
    Column("expected", JSON),  # the expected output (text, number or JSON), or null
    Column("meta", JSON, nullable=False),  # the item's metadata, free-form: context, schema, tags, ...
)

eval_runs = Table(
    "eval_runs",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("target", String(NAME), nullable=False),  # prompt:NAME@VERSION or model:NAME
    Column("prompt", String(NAME)),
    Column("prompt_version", Integer),
    Column("model", String(NAME)),
    Column("dataset_id", String(ID), ForeignKey("eval_datasets.id"), nullable=False, index=True),
    Column("evaluators", StringTuple, nullable=False),
    Column("evaluator_hash", String(64), nullable=False),  # the evaluators' specs, hashed
    Column("status", String(16), nullable=False),  # running, finished
    Column("item_count", Integer, nullable=False),
    Column("summary", JSON),  # metric -> mean, counts; set when finished
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
)
Index("ix_eval_runs_prompt_version", eval_runs.c.prompt, eval_runs.c.prompt_version)

eval_results = Table(
    "eval_results",
    metadata,
    Column("run_id", String(ID), ForeignKey("eval_runs.id"), primary_key=True),
    Column("item_key", String(NAME), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("output", Text),
    Column("error", String(2000)),  # the request failed: every metric scores 0
    Column("scores", JSON, nullable=False),  # evaluator -> score in [0, 1], or null
    Column("details", JSON, nullable=False),  # evaluator -> what it saw (verdicts, reasons)
    Column("latency_ms", Double),
    Column("input_tokens", Integer),
    Column("output_tokens", Integer),
    Column("created_at", UTCDateTime, nullable=False),
)
