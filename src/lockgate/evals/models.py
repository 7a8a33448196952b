"""The records of evaluation: dataset versions and their items, runs, per-item results."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = ["Dataset", "DatasetItem", "EvalRun", "ItemResult", "RunStatus", "Target"]

RunStatus = Literal["running", "finished"]


@dataclass(frozen=True, slots=True)
class DatasetItem:
    """One case: the input (a prompt's variables, a conversation, or both), what the
    answer should be (optional), and free-form metadata (`context`, `schema`, tags)."""

    key: str
    variables: dict[str, Any] | None = None
    messages: list[dict[str, Any]] | None = None
    expected: Any = None
    metadata: dict[str, Any] = field(default_factory=lambda: {})
    position: int = 0


@dataclass(frozen=True, slots=True)
class Dataset:
    id: str
    name: str
    version: int
    source: str
    content_hash: str
    item_count: int
    description: str
    created_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True, slots=True)
class Target:
    """What a run sends items to: a prompt version (served by the gateway) or a model."""

    prompt: str | None = None
    version: int | None = None
    model: str | None = None

    @property
    def ref(self) -> str:
        return f"prompt:{self.prompt}@{self.version}" if self.prompt else f"model:{self.model}"

    @property
    def request_model(self) -> str:
        """The `model` field of the chat request."""
        return f"prompt:{self.prompt}@{self.version}" if self.prompt else str(self.model)


@dataclass(frozen=True, slots=True)
class EvalRun:
    id: str
    target: Target
    dataset: Dataset
    evaluators: tuple[str, ...]
    evaluator_hash: str
    status: RunStatus
    item_count: int
    summary: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class ItemResult:
    """An item's answer and scores. `error`: the request failed, and every metric
    counts the item as 0. A score of None: the evaluator could not judge this item
    (e.g. no expected output, or every judge verdict was unparseable)."""

    item_key: str
    position: int
    output: str | None
    error: str | None
    scores: dict[str, float | None]
    details: dict[str, Any]
    latency_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    created_at: datetime | None = None
