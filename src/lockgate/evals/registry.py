"""Evaluator types by name, found through the `lockgate.evaluators` entry points.

The built-in types are declared there too (pyproject.toml), through the same door as a
third party's. `BUILTIN` names where each built-in lives, so an install whose metadata
predates one (an old editable install) still finds it; an entry point of the same name
wins.

A name on the command line or in a gate is either a configured evaluator
(`[evals.evaluators.NAME]`: a type and its options) or a type used with its defaults.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import Any

from lockgate.config.evals import EvalsConfig
from lockgate.errors import InvalidRequest
from lockgate.evals.evaluator import Evaluator, EvaluatorEnv

__all__ = ["BUILTIN", "GROUP", "build_evaluators", "evaluator_types", "spec_hash"]

GROUP = "lockgate.evaluators"
BUILTIN = {
    "exact_match": "lockgate.evals.evaluators.basic:ExactMatch",
    "contains": "lockgate.evals.evaluators.basic:Contains",
    "regex": "lockgate.evals.evaluators.basic:Regex",
    "json_schema": "lockgate.evals.evaluators.basic:JsonSchema",
    "numeric": "lockgate.evals.evaluators.basic:Numeric",
    "embedding_similarity": "lockgate.evals.evaluators.model_based:EmbeddingSimilarity",
    "judge": "lockgate.evals.evaluators.model_based:Judge",
    "groundedness": "lockgate.evals.evaluators.model_based:Groundedness",
}


def _import(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def evaluator_types() -> dict[str, Callable[[], Any]]:
    """Type name -> a loader of its class (loaded only when used)."""
    found: dict[str, Callable[[], Any]] = {name: (lambda p=path: _import(p)) for name, path in BUILTIN.items()}
    for ep in entry_points(group=GROUP):
        found[ep.name] = ep.load
    return found


def build_evaluators(names: Sequence[str], config: EvalsConfig, env: EvaluatorEnv) -> list[Evaluator]:
    """The evaluators `names` refer to, constructed (their options checked)."""
    if not names:
        raise InvalidRequest("Name at least one evaluator.", param="evaluator")
    if len(set(names)) != len(names):
        raise InvalidRequest("An evaluator is named twice.", param="evaluator")
    types = evaluator_types()
    built: list[Evaluator] = []
    for name in names:
        configured = config.evaluators.get(name)
        kind, options = (configured.type, configured.options) if configured else (name, {})
        loader = types.get(kind)
        if loader is None:
            known = ", ".join(sorted({*types, *config.evaluators}))
            raise InvalidRequest(f"Unknown evaluator {name!r} (known: {known}).", param="evaluator")
        try:
            cls = loader()
        except ImportError as exc:
            raise InvalidRequest(f"Cannot load evaluator type {kind!r}: {exc}", param="evaluator") from None
        evaluator = cls(name, dict(options), env)
        if not isinstance(evaluator, Evaluator):
            raise InvalidRequest(f"Evaluator type {kind!r} does not implement the evaluator protocol.")
        built.append(evaluator)
    return built


def spec_hash(evaluators: Sequence[Evaluator]) -> str:
    """One hash of every evaluator's name and spec: equal hashes, equal scoring."""
    specs = [{"name": e.name, "spec": e.spec()} for e in evaluators]
    raw = json.dumps(specs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()
