"""The `[evals]` and `[gates.NAME]` sections (see docs/evals.md).

    [evals]
    judge_model = "judge"           # a model the gateway serves; pinned: never a label
    judge_trials = 3
    concurrency = 4

    [evals.evaluators.polite]       # a named evaluator: a registered type + its options
    type = "judge"
    options = { rubric = "Is the answer polite? PASS or FAIL." }

    [gates.support-quality]
    prompts = ["support-reply"]     # the prompts whose label moves it covers
    labels = ["production"]
    dataset = "support-golden@3"    # a pinned dataset version
    metrics = { exact_match = 0.8, polite = { min = 0.7 } }
    no_regression = true            # no metric may fall below the label's current version
    regression_tolerance = 0.0
"""

from __future__ import annotations

import re
from typing import Any, Self

from pydantic import Field, field_validator, model_validator

from lockgate.config._base import Strict

__all__ = ["EvalsConfig", "EvaluatorConfig", "GateConfig", "GateMetric", "split_pinned"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def split_pinned(ref: str) -> tuple[str, int]:
    """`NAME@VERSION` -> (name, version); ValueError when the version is not a number."""
    name, sep, version = ref.rpartition("@")
    if not sep or not name or not version.isdigit() or int(version) < 1:
        raise ValueError(f"{ref!r}: expected NAME@VERSION with a version number, e.g. golden@3")
    return name, int(version)


class EvaluatorConfig(Strict):
    type: str
    """A registered evaluator type (entry point group `lockgate.evaluators`)."""
    options: dict[str, Any] = Field(default_factory=dict)
    """The type's options (e.g. `pattern` for `regex`, `rubric` for `judge`)."""


class EvalsConfig(Strict):
    judge_model: str | None = None
    """The model judge-based evaluators call through the gateway, unless their options name one.
    Pinned: a model name or `prompt:NAME@VERSION`, never a label."""
    judge_trials: int = Field(default=3, ge=1, le=20)
    """How many times the judge is asked per item; the verdicts are averaged."""
    concurrency: int = Field(default=4, ge=1, le=256)
    """Items in flight at once in `lockgate eval run` (the `--concurrency` default)."""
    request_timeout: float = Field(default=120.0, gt=0)
    """Seconds to wait for one answer from the gateway."""
    retries: int = Field(default=2, ge=0, le=10)
    """Retries of an item's request on 429, 5xx and connection errors."""
    embedding_threads: int = Field(default=1, ge=1, le=64)
    """Threads onnxruntime may use for the embedding evaluator."""
    evaluators: dict[str, EvaluatorConfig] = Field(default_factory=dict)
    """Named evaluators: `--evaluator NAME` and gate metrics refer to these names."""

    @field_validator("evaluators")
    @classmethod
    def _names(cls, value: dict[str, EvaluatorConfig]) -> dict[str, EvaluatorConfig]:
        for name in value:
            if not _NAME.match(name):
                raise ValueError(f"evaluator name {name!r}: 1-100 letters, digits, '_', '.' or '-'")
        return value

    @field_validator("judge_model")
    @classmethod
    def _pinned(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("prompt:"):
            _, _, ref = value.partition(":")
            split_pinned(ref)  # a label moves: the judge must not
        return value


class GateMetric(Strict):
    min: float | None = None
    """The metric's mean over the dataset must be at least this."""
    max: float | None = None
    """... at most this (e.g. `error_rate`)."""

    @model_validator(mode="after")
    def _some_bound(self) -> Self:
        if self.min is None and self.max is None:
            raise ValueError("a gate metric needs `min` or `max`")
        return self


class GateConfig(Strict):
    prompts: list[str] = Field(min_length=1)
    """The prompts this gate covers (`*` for every prompt)."""
    labels: list[str] = Field(default_factory=lambda: ["production"], min_length=1)
    """The labels whose moves it guards; the first is the no-regression baseline."""
    dataset: str
    """The pinned dataset version, `NAME@VERSION`."""
    metrics: dict[str, GateMetric] = Field(min_length=1)
    """Metric -> bound: an evaluator's name (mean score), or `error_rate`. A bare number
    is a minimum."""
    no_regression: bool = True
    """Each metric must also reach the run of the version the first label holds now."""
    regression_tolerance: float = Field(default=0.0, ge=0, le=1)
    """How far below the baseline a metric may fall and still pass."""

    @field_validator("metrics", mode="before")
    @classmethod
    def _bare_numbers(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: {"min": v} if isinstance(v, int | float) else v for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType]
        return value

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, value: str) -> str:
        split_pinned(value)
        return value

    @property
    def dataset_ref(self) -> tuple[str, int]:
        return split_pinned(self.dataset)

    def covers(self, prompt: str, label: str) -> bool:
        return label in self.labels and ("*" in self.prompts or prompt in self.prompts)
