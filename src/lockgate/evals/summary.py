"""A run's summary: per metric the mean score, how many items it scored and could not
score, judge verdicts that could not be parsed; error rate, latency and tokens.

An item whose request failed counts as 0 for every metric (a failing version must not
look better by failing); an item an evaluator could not judge (score None) is left out
of that metric's mean and counted in `unscored`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

from lockgate.evals.models import ItemResult

__all__ = ["ERROR_RATE", "item_score", "metric_value", "summarize"]

ERROR_RATE = "error_rate"


def item_score(result: ItemResult, metric: str) -> float | None:
    """An item's score for comparisons: 0 when its request failed."""
    return 0.0 if result.error else result.scores.get(metric)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summarize(
    evaluators: Sequence[str], results: Sequence[ItemResult], *, item_count: int,
    spec_hashes: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    metrics: dict[str, dict[str, Any]] = {}
    for name in evaluators:
        values: list[float] = []
        unscored = unparseable = 0
        for r in results:
            score = item_score(r, name)
            if score is None:
                unscored += 1
            else:
                values.append(score)
            detail: Any = r.details.get(name)
            if isinstance(detail, dict) and isinstance(detail.get("unparseable"), int):
                unparseable += int(detail["unparseable"])  # pyright: ignore[reportUnknownArgumentType]
        entry: dict[str, Any] = {
            "mean": round(sum(values) / len(values), 6) if values else None,
            "scored": len(values),
            "unscored": unscored,
        }
        if any(isinstance(r.details.get(name), dict) and "unparseable" in r.details[name] for r in results):
            entry["unparseable"] = unparseable
        metrics[name] = entry
    errors = sum(1 for r in results if r.error)
    latencies = [r.latency_ms for r in results if r.latency_ms is not None and not r.error]
    return {
        "items": item_count,
        "done": len(results),
        "errors": errors,
        ERROR_RATE: round(errors / len(results), 6) if results else None,
        "metrics": metrics,
        "latency_ms": {
            "mean": round(sum(latencies) / len(latencies), 1) if latencies else None,
            "p50": _percentile(latencies, 0.5),
            "p95": _percentile(latencies, 0.95),
        },
        "tokens": {
            "input": sum(r.input_tokens or 0 for r in results),
            "output": sum(r.output_tokens or 0 for r in results),
        },
        "spec_hashes": dict(spec_hashes or {}),
    }


def metric_value(summary: Mapping[str, Any] | None, metric: str) -> float | None:
    """A metric of a summary: `error_rate`, or an evaluator's mean score."""
    if not summary:
        return None
    if metric == ERROR_RATE:
        value = summary.get(ERROR_RATE)
        return float(value) if isinstance(value, int | float) else None
    metrics: Any = summary.get("metrics") or {}
    entry: Any = metrics.get(metric)
    mean: Any = cast("dict[str, Any]", entry).get("mean") if isinstance(entry, dict) else None
    return float(mean) if isinstance(mean, int | float) else None
