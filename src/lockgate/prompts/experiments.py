"""Control-plane operations on experiments and request scores.

Experiments live in the config file (`[experiments.NAME]`, always on while they are
there) or in the database (`lockgate experiments create`, `POST /admin/experiments`,
stopped with `stop`). Gateways pick database changes up like any registry change.
Scores attach to a request id (`POST /admin/scores`); a report joins them with the
experiment outcomes the gateways wrote behind.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from lockgate.core.ids import uuid7
from lockgate.errors import Conflict, InvalidRequest, NotFound
from lockgate.prompts.models import Arm, Experiment, Score, Sticky
from lockgate.prompts.report import ExperimentReport, build_report
from lockgate.prompts.service import check_label
from lockgate.prompts.spec import check_prompt_name

__all__ = ["ExperimentService"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class _Notifier(Protocol):
    async def publish(self) -> None: ...


class ExperimentService:
    def __init__(
        self,
        store: Any,
        *,
        notifier: _Notifier | None = None,
        static: Iterable[Experiment] = (),
        known_models: Iterable[str] | None = None,
    ) -> None:
        self.store = store
        self._notifier = notifier
        self._static = {e.name: e for e in static}
        self._models = set(known_models) if known_models is not None else None

    async def create(
        self, name: str, *, arms: Sequence[Arm], actor: str, prompt: str | None = None, model: str | None = None,
        label: str = "production", sticky: Sticky = "user",
    ) -> Experiment:
        if not isinstance(name, str) or not _NAME.match(name):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise InvalidRequest(f"name: 1-100 letters, digits, '_', '.' or '-' (got {name!r}).", param="name")
        if name in self._static:
            raise Conflict(f"An experiment named {name!r} is defined in the config file.")
        if (prompt is None) == (model is None):
            raise InvalidRequest("An experiment splits exactly one of a prompt or a model.", param="prompt")
        if sticky not in ("user", "session"):
            raise InvalidRequest("sticky must be 'user' or 'session'.", param="sticky")
        await self._check_arms(arms, prompt=prompt, model=model, label=check_label(label))
        for e in self._static.values():
            if (e.prompt, e.label, e.model) == (prompt, label if prompt else e.label, model):
                raise Conflict(f"Experiment {e.name!r} (config) already splits {e.target}.")
        experiment = Experiment(
            id=uuid7(), name=name, prompt=prompt, model=model, label=label, sticky=sticky, arms=tuple(arms),
            status="active", created_at=datetime.now(UTC), created_by=actor,
        )
        stored = await self.store.create_experiment(experiment)
        await self._notify()
        return stored

    async def _check_arms(self, arms: Sequence[Arm], *, prompt: str | None, model: str | None, label: str) -> None:
        if len(arms) < 2:
            raise InvalidRequest("An experiment has at least two arms.", param="arms")
        names = [a.name for a in arms]
        if len(set(names)) != len(names):
            raise InvalidRequest("Arm names must be unique.", param="arms")
        for i, arm in enumerate(arms):
            if not _NAME.match(arm.name):
                raise InvalidRequest(f"arms[{i}].name: 1-100 letters, digits, '_', '.' or '-'.", param=f"arms[{i}].name")
            if not (isinstance(arm.weight, int | float) and math.isfinite(arm.weight) and arm.weight > 0):  # pyright: ignore[reportUnnecessaryIsInstance]
                raise InvalidRequest(f"arms[{i}].weight must be a positive number.", param=f"arms[{i}].weight")
            if arm.model is not None and self._models is not None and arm.model not in self._models:
                raise InvalidRequest(f"arms[{i}].model: unknown model {arm.model!r}.", param=f"arms[{i}].model")
            if model is not None and arm.version is not None:
                raise InvalidRequest(f"arms[{i}]: a model experiment's arms have no version.", param=f"arms[{i}].version")
            if prompt is not None and arm.version is not None:
                await self.store.get_prompt_version(check_prompt_name(prompt, "prompt"), version=arm.version)
        if prompt is not None:
            await self.store.get_prompt_version(check_prompt_name(prompt, "prompt"))  # NotFound unless it exists
        if model is not None and self._models is not None and model not in self._models:
            raise InvalidRequest(f"model: unknown model {model!r}.", param="model")

    async def list(self) -> list[Experiment]:
        stored = [e for e in await self.store.list_experiments() if e.name not in self._static]
        return sorted([*self._static.values(), *stored], key=lambda e: e.name)

    async def get(self, name: str) -> Experiment:
        if name in self._static:
            return self._static[name]
        return await self.store.get_experiment(name)

    async def stop(self, name: str) -> Experiment:
        if name in self._static:
            raise Conflict(f"Experiment {name!r} is defined in the config file: remove it there to stop it.")
        experiment = await self.store.stop_experiment(name)
        await self._notify()
        return experiment

    async def report(self, name: str) -> ExperimentReport:
        experiment = await self.get(name)
        outcomes = await self.store.experiment_outcomes(name)
        scores = await self.store.experiment_scores(name)
        return build_report(experiment, outcomes, scores)

    async def add_scores(self, scores: Sequence[Score]) -> list[Score]:
        for i, s in enumerate(scores):
            if not math.isfinite(s.value):
                raise InvalidRequest(f"scores[{i}].value must be a finite number.", param=f"scores[{i}].value")
        return await self.store.add_request_scores(scores)

    async def scores_of(self, request_id: str) -> list[Score]:
        found = await self.store.request_scores(request_id)
        if not found:
            raise NotFound(f"No scores for request {request_id!r}.")
        return found

    async def _notify(self) -> None:
        if self._notifier is not None:
            await self._notifier.publish()
