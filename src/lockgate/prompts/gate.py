"""What the promote service asks before it moves a label: the quality gate.

The evaluations package implements it (`lockgate.evals.gatekeeper.GateKeeper`); the
registry only needs this shape, so it works (with no gate) when that package is absent:

    outcome = await gate.check_promotion(prompt="support-reply", version=4, label="production")
    # None: no gate covers this prompt and label
    # outcome.passed, outcome.failures (e.g. ["exact_match 0.60 < 0.80"]), outcome.run_id
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

__all__ = ["GateResult", "PromotionGate", "find_gatekeeper", "gate_record"]


class GateResult(Protocol):
    @property
    def passed(self) -> bool: ...

    @property
    def failures(self) -> Sequence[str]: ...

    @property
    def run_id(self) -> str | None: ...


class PromotionGate(Protocol):
    async def check_promotion(self, *, prompt: str, version: int, label: str) -> GateResult | None: ...


def gate_record(outcome: GateResult) -> dict[str, Any]:
    """The outcome as stored in a label's history."""
    return {"passed": bool(outcome.passed), "failures": list(outcome.failures), "run_id": outcome.run_id}


def find_gatekeeper(**kwargs: Any) -> PromotionGate | None:
    """The evaluations package's `GateKeeper`, built with `kwargs` (imported lazily:
    None when the package or its factory is not installed, i.e. no gate)."""
    try:
        from lockgate.evals import gatekeeper  # pyright: ignore[reportMissingImports]
    except ImportError:
        return None
    factory: Any = getattr(gatekeeper, "GateKeeper", None)
    if factory is None:
        return None
    keeper: PromotionGate = factory(**kwargs)
    return keeper
