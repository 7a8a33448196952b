"""Comparing two runs item by item: which items got worse (or better) on which metric.

Items are matched by key, so runs over different versions of a dataset compare on the
items they share. A failed request scores 0; an item a metric could not score on either
side is skipped for that metric.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from lockgate.evals.models import EvalRun, ItemResult
from lockgate.evals.summary import item_score, metric_value, summarize

__all__ = ["Comparison", "ItemDelta", "compare_runs"]


@dataclass(frozen=True, slots=True)
class ItemDelta:
    key: str
    metric: str
    a: float
    b: float
    output_a: str | None
    output_b: str | None

    @property
    def delta(self) -> float:
        return self.b - self.a


@dataclass(frozen=True, slots=True)
class Comparison:
    run_a: EvalRun
    run_b: EvalRun
    metrics: dict[str, tuple[float | None, float | None]]  # metric -> (mean in A, mean in B)
    regressions: list[ItemDelta] = field(default_factory=lambda: [])
    improvements: list[ItemDelta] = field(default_factory=lambda: [])
    only_a: list[str] = field(default_factory=lambda: [])
    only_b: list[str] = field(default_factory=lambda: [])
    shared: int = 0


def compare_runs(
    run_a: EvalRun, results_a: Sequence[ItemResult], run_b: EvalRun, results_b: Sequence[ItemResult],
    *, tolerance: float = 1e-9,
) -> Comparison:
    """B against A: a regression is an item whose score on a metric both runs have fell
    by more than `tolerance`."""
    by_a = {r.item_key: r for r in results_a}
    by_b = {r.item_key: r for r in results_b}
    common = [m for m in run_a.evaluators if m in run_b.evaluators]
    regressions: list[ItemDelta] = []
    improvements: list[ItemDelta] = []
    shared = [k for k in by_a if k in by_b]
    for key in shared:
        ra, rb = by_a[key], by_b[key]
        for metric in common:
            a, b = item_score(ra, metric), item_score(rb, metric)
            if a is None or b is None:
                continue
            delta = ItemDelta(key, metric, a, b, ra.output if not ra.error else f"error: {ra.error}",
                              rb.output if not rb.error else f"error: {rb.error}")
            if b < a - tolerance:
                regressions.append(delta)
            elif b > a + tolerance:
                improvements.append(delta)
    sum_a = summarize(common, results_a, item_count=len(results_a))
    sum_b = summarize(common, results_b, item_count=len(results_b))
    regressions.sort(key=lambda d: (d.delta, d.key, d.metric))
    improvements.sort(key=lambda d: (-d.delta, d.key, d.metric))
    return Comparison(
        run_a=run_a, run_b=run_b,
        metrics={m: (metric_value(sum_a, m), metric_value(sum_b, m)) for m in common},
        regressions=regressions, improvements=improvements,
        only_a=[k for k in by_a if k not in by_b], only_b=[k for k in by_b if k not in by_a], shared=len(shared),
    )
