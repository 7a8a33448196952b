"""The evaluator protocol: one small interface for built-in and custom evaluators.

An evaluator type is a class registered under the entry point group
`lockgate.evaluators`; lockgate constructs it as `cls(name, options, env)`:

    class Shouty:
        def __init__(self, name: str, options: Mapping[str, Any], env: EvaluatorEnv) -> None:
            self.name = name
        def spec(self) -> dict[str, Any]:
            return {"type": "shouty"}
        async def evaluate(self, case: Case) -> Score:
            return Score(1.0 if case.output.isupper() else 0.0)

    # pyproject.toml
    [project.entry-points."lockgate.evaluators"]
    shouty = "mypkg.evals:Shouty"

`spec()` returns what determines the evaluator's behaviour (its options, the judge
model...): it is hashed into the run, so a run is resumed only by the same evaluators.
Bad options raise `InvalidRequest` from the constructor.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast, runtime_checkable

from lockgate.config.evals import EvalsConfig
from lockgate.errors import InvalidRequest
from lockgate.evals.models import DatasetItem

if TYPE_CHECKING:
    from lockgate.evals.embedding import MiniLM

__all__ = ["Case", "ChatFn", "Evaluator", "EvaluatorEnv", "Score", "expected_text", "known_options", "option"]

T = TypeVar("T")

ChatFn = Callable[..., Awaitable[str]]
"""`await chat(model, messages, **params) -> str`: a chat completion through the gateway."""


@dataclass(frozen=True, slots=True)
class Score:
    """A score in [0, 1], or None when this item cannot be judged by this evaluator
    (counted apart, never as a 0). `detail` says what the evaluator saw."""

    value: float | None
    detail: dict[str, Any] = field(default_factory=lambda: {})


@dataclass(frozen=True, slots=True)
class Case:
    """An item and the answer the target gave for it."""

    item: DatasetItem
    output: str


@runtime_checkable
class Evaluator(Protocol):
    name: str

    def spec(self) -> dict[str, Any]: ...

    async def evaluate(self, case: Case) -> Score: ...


class EvaluatorEnv:
    """What evaluators may use: the `[evals]` settings, a chat function that calls the
    gateway (None when no gateway is at hand), and the shared embedding model, loaded
    on first use."""

    def __init__(self, config: EvalsConfig, *, chat: ChatFn | None = None) -> None:
        self.config = config
        self.chat = chat
        self._embedder: MiniLM | None = None
        self._lock = threading.Lock()

    def embedder(self) -> MiniLM:
        with self._lock:
            if self._embedder is None:
                from lockgate.evals.embedding import MiniLM

                self._embedder = MiniLM(threads=self.config.embedding_threads)
            return self._embedder

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """Unit vectors for `texts`, computed off the event loop."""
        return await asyncio.to_thread(lambda: self.embedder().embed(texts))


def option(options: Mapping[str, Any], key: str, kind: type[T], default: T, *, evaluator: str) -> T:
    """A typed option, or InvalidRequest naming the evaluator and the key."""
    value: Any = options.get(key, default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise InvalidRequest(f"evaluator {evaluator}: option {key!r} must be a {kind.__name__}.", param=key)
    return cast("T", value)


def known_options(name: str, options: Mapping[str, Any], known: set[str]) -> None:
    """InvalidRequest for an option the evaluator does not know (a typo must not pass silently)."""
    unknown = sorted(set(options) - known)
    if unknown:
        raise InvalidRequest(
            f"evaluator {name}: unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(known))}).",
            param=unknown[0],
        )


def expected_text(item: DatasetItem) -> str | None:
    """The expected output as text: strings as they are, other JSON values encoded."""
    import json

    if item.expected is None:
        return None
    if isinstance(item.expected, str):
        return item.expected
    return json.dumps(item.expected, ensure_ascii=False, sort_keys=True)
