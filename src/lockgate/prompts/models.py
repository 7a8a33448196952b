"""The prompt registry's records: versions, labels and their history, experiments,
request outcomes and scores. Plain immutable values; the store persists them, the
services change them, the gateway reads them from memory."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "RESERVED_LABELS",
    "Arm",
    "Experiment",
    "LabelEvent",
    "Outcome",
    "PromptSummary",
    "PromptVersion",
    "Score",
    "Sticky",
]

Sticky = Literal["user", "session"]
RESERVED_LABELS = ("latest",)  # `prompt:NAME@latest` is always the newest version


@dataclass(frozen=True, slots=True)
class PromptVersion:
    """One immutable version. `content` is the canonical `PromptSpec` JSON."""

    id: str
    prompt: str
    version: int
    content_hash: str
    content: dict[str, Any]
    author: str
    message: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PromptSummary:
    name: str
    latest: int
    labels: dict[str, int]
    created_at: datetime
    updated_at: datetime  # of the newest version


@dataclass(frozen=True, slots=True)
class LabelEvent:
    """A label moved (or was removed: `version` None). `gate` is the gate's outcome when
    one covered the move: `{"passed", "failures", "run_id"}`; `reason` the override reason."""

    id: str
    prompt: str
    label: str
    version: int | None
    previous_version: int | None
    actor: str
    at: datetime
    reason: str | None = None
    gate: dict[str, Any] | None = None

    @property
    def overridden(self) -> bool:
        return self.gate is not None and not self.gate.get("passed", True)


@dataclass(frozen=True, slots=True)
class Arm:
    name: str
    weight: float
    version: int | None = None  # prompt experiments: the version served (None: the label's)
    model: str | None = None  # the model called instead


@dataclass(frozen=True, slots=True)
class Experiment:
    """A split of one prompt label's (or one model's) traffic between arms by weight."""

    id: str
    name: str
    prompt: str | None
    model: str | None
    label: str
    sticky: Sticky
    arms: tuple[Arm, ...]
    status: Literal["active", "stopped"]
    created_at: datetime
    created_by: str
    source: Literal["db", "config"] = "db"
    stopped_at: datetime | None = None

    @property
    def target(self) -> str:
        return f"prompt:{self.prompt}@{self.label}" if self.prompt else f"model:{self.model}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one request in an experiment, written behind in batches."""

    request_id: str
    experiment: str
    arm: str
    at: datetime
    status: int
    latency_ms: float
    prompt: str | None = None
    version: int | None = None
    model: str | None = None
    error_code: str | None = None
    ttft_ms: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class Score:
    """An evaluation score attached to a request (a user's thumbs up, a judge's grade)."""

    request_id: str
    name: str
    value: float
    id: str = ""
    at: datetime | None = None
    source: str = "api"
    comment: str | None = None
