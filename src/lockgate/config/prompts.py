"""The `[prompts]` and `[experiments.NAME]` sections (see docs/prompts.md).

    [prompts]
    dirs = ["prompts"]              # prompts as code: the folders `push`/`pull` default to
    flush_interval = 1.0            # experiment outcomes are written behind this often

    [experiments.reply-tone]
    prompt = "support-reply"        # or: model = "fast" (split a plain model's traffic)
    label = "production"
    sticky = "user"
    arms = [ { name = "control", weight = 50, version = 3 },
             { name = "warm", weight = 50, version = 4 } ]
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from lockgate.config._base import Strict

__all__ = ["ArmConfig", "ExperimentConfig", "PromptsConfig"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError("names are 1-100 letters, digits, '_', '.' or '-', starting with a letter or digit")
    return value


class PromptsConfig(Strict):
    dirs: list[str] = Field(default_factory=list)
    """Folders of prompt files (`NAME.toml`) that `lockgate prompts push|pull` use when no
    folder is given; relative to the current directory."""
    flush_interval: float = Field(default=1.0, gt=0, le=60)
    """Seconds between batched writes of experiment outcomes (never on the request path)."""
    max_pending: int = Field(default=100_000, ge=100)
    """Outcomes held in memory while the database is unreachable; the oldest are dropped beyond."""


class ArmConfig(Strict):
    name: str
    weight: float = Field(gt=0)
    """A relative share of the experiment's traffic."""
    version: int | None = Field(default=None, ge=1)
    """The prompt version this arm serves (default: the experiment's label's version)."""
    model: str | None = None
    """The model this arm calls instead of the prompt's (or the requested) one."""

    _v_name = field_validator("name")(staticmethod(_check_name))


class ExperimentConfig(Strict):
    prompt: str | None = None
    """The prompt whose requests by `label` are split (exactly one of `prompt`, `model`)."""
    model: str | None = None
    """A configured model whose requests are split between arms with their own `model`."""
    label: str = "production"
    sticky: Literal["user", "session"] = "user"
    """The key that keeps a caller on one arm: the request's `user` field (then the
    `x-lockgate-session` header), or that header first."""
    arms: list[ArmConfig] = Field(min_length=2)

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if (self.prompt is None) == (self.model is None):
            raise ValueError("an experiment names exactly one of `prompt` or `model`")
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError("arm names must be unique")
        if self.model is not None and any(a.version is not None for a in self.arms):
            raise ValueError("arms of a model experiment have no `version`")
        return self

    def model_problems(self, models: Collection[str]) -> list[tuple[tuple[str | int, ...], str]]:
        """Model names this experiment uses that `[models]` does not define."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        if self.model is not None and self.model not in models:
            problems.append((("model",), f"unknown model {self.model!r}"))
        for i, arm in enumerate(self.arms):
            if arm.model is not None and arm.model not in models:
                problems.append((("arms", i, "model"), f"unknown model {arm.model!r}"))
        return problems
