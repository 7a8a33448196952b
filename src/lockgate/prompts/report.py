"""`lockgate experiments report NAME`: per arm, what the traffic did and how it scored.

Per arm: requests and their share against the weight's; errors (status >= 400) with a
95% Wilson interval on the rate; latency p50/p95 of the successful requests; input and
output tokens; cost; and for each score name, the mean with a 95% t interval and the
difference from the first (control) arm with a 95% Welch interval.

Sample-ratio mismatch: a chi-square goodness-of-fit test of the requests per arm against
the weights. A p-value below 0.001 says the split is not what the weights say (a bug
in assignment, a arm that fails before it is counted, bots on one arm): the comparison
should not be trusted until that is explained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from lockgate.prompts.models import Experiment, Outcome
from lockgate.prompts.stats import chi_square_p, mean_ci, percentile, welch, wilson

__all__ = ["SRM_ALPHA", "ArmReport", "ExperimentReport", "SampleRatio", "ScoreStats", "build_report", "format_report"]

SRM_ALPHA = 0.001


@dataclass(frozen=True, slots=True)
class ScoreStats:
    name: str
    n: int
    mean: float
    low: float | None
    high: float | None
    delta: float | None = None  # mean minus the control arm's
    delta_low: float | None = None
    delta_high: float | None = None


@dataclass(frozen=True, slots=True)
class ArmReport:
    name: str
    weight: float
    expected_share: float
    requests: int
    share: float
    errors: int
    error_rate: float | None
    error_low: float | None
    error_high: float | None
    p50_ms: float | None
    p95_ms: float | None
    input_tokens: int
    output_tokens: int
    cost_usd: float
    scores: list[ScoreStats] = field(default_factory=lambda: list[ScoreStats]())


@dataclass(frozen=True, slots=True)
class SampleRatio:
    chi_square: float
    df: int
    p_value: float
    mismatch: bool


@dataclass(frozen=True, slots=True)
class ExperimentReport:
    experiment: Experiment
    requests: int
    arms: list[ArmReport]
    srm: SampleRatio | None

    def as_json(self) -> dict[str, Any]:
        e = self.experiment
        return {
            "experiment": {"name": e.name, "target": e.target, "sticky": e.sticky, "status": e.status, "source": e.source},
            "requests": self.requests,
            "arms": [asdict(a) for a in self.arms],
            "sample_ratio": asdict(self.srm) if self.srm is not None else None,
        }


def build_report(
    experiment: Experiment, outcomes: Sequence[Outcome], scores: Sequence[tuple[str, str, float]]
) -> ExperimentReport:
    by_arm: dict[str, list[Outcome]] = {a.name: [] for a in experiment.arms}
    for o in outcomes:
        by_arm.setdefault(o.arm, []).append(o)
    score_values: dict[str, dict[str, list[float]]] = {}
    for arm, name, value in scores:
        score_values.setdefault(name, {}).setdefault(arm, []).append(value)
    weights = {a.name: a.weight for a in experiment.arms}
    total_weight = sum(weights.values())
    total = len(outcomes)
    control = experiment.arms[0].name
    arms = [
        _arm(name, rows, weights.get(name, 0.0), total_weight, total, score_values, control)
        for name, rows in by_arm.items()
    ]
    return ExperimentReport(experiment=experiment, requests=total, arms=arms, srm=_srm(arms, total))


def _arm(
    name: str, rows: list[Outcome], weight: float, total_weight: float, total: int,
    score_values: dict[str, dict[str, list[float]]], control: str,
) -> ArmReport:
    n = len(rows)
    errors = sum(1 for o in rows if o.status >= 400)
    rate, low, high = wilson(errors, n) if n else (None, None, None)
    ok = [o.latency_ms for o in rows if o.status < 400]
    stats: list[ScoreStats] = []
    for score, per_arm in sorted(score_values.items()):
        values = per_arm.get(name)
        if not values:
            continue
        mean, lo, hi = mean_ci(values)
        delta = d_lo = d_hi = None
        base = per_arm.get(control)
        if name != control and base:
            delta, d_lo, d_hi = welch(base, values)
        stats.append(ScoreStats(score, len(values), mean, lo, hi, delta, d_lo, d_hi))
    return ArmReport(
        name=name, weight=weight, expected_share=weight / total_weight if total_weight else 0.0, requests=n,
        share=n / total if total else 0.0, errors=errors, error_rate=rate, error_low=low, error_high=high,
        p50_ms=percentile(ok, 50), p95_ms=percentile(ok, 95),
        input_tokens=sum(o.input_tokens for o in rows), output_tokens=sum(o.output_tokens for o in rows),
        cost_usd=sum(o.cost_usd for o in rows), scores=stats,
    )


def _srm(arms: list[ArmReport], total: int) -> SampleRatio | None:
    weighted = [a for a in arms if a.weight > 0]
    if total == 0 or len(weighted) < 2:
        return None
    counted = sum(a.requests for a in weighted)
    if counted == 0:
        return None
    statistic = sum((a.requests - counted * a.expected_share) ** 2 / (counted * a.expected_share) for a in weighted)
    df = len(weighted) - 1
    p = chi_square_p(statistic, df)
    return SampleRatio(chi_square=statistic, df=df, p_value=p, mismatch=p < SRM_ALPHA)


def _ci(low: float | None, high: float | None, fmt: str = "{:.3f}") -> str:
    return "-" if low is None or high is None else f"[{fmt.format(low)}, {fmt.format(high)}]"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_report(report: ExperimentReport) -> str:
    e = report.experiment
    lines = [f"experiment {e.name}: {e.target}, sticky by {e.sticky}, {e.status} ({e.source}); {report.requests} requests", ""]
    header = ("ARM", "WEIGHT", "REQUESTS", "SHARE", "ERRORS", "ERROR RATE 95% CI", "P50 MS", "P95 MS", "TOKENS IN", "TOKENS OUT", "COST USD")
    rows = [
        (a.name, f"{a.expected_share:.1%}", str(a.requests), f"{a.share:.1%}", str(a.errors),
         _ci(a.error_low, a.error_high, "{:.1%}") if a.error_rate is not None else "-",
         _ms(a.p50_ms), _ms(a.p95_ms), str(a.input_tokens), str(a.output_tokens), f"{a.cost_usd:.6f}")
        for a in report.arms
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    scored = [(a.name, s) for a in report.arms for s in a.scores]
    if scored:
        lines += ["", "scores (mean, 95% CI; delta vs the first arm, 95% Welch CI):"]
        for arm, s in sorted(scored, key=lambda t: (t[1].name, t[0])):
            delta = "" if s.delta is None else f"  delta {s.delta:+.3f} {_ci(s.delta_low, s.delta_high, '{:+.3f}')}"
            lines.append(f"  {s.name:<16} {arm:<12} n={s.n:<5} mean {s.mean:.3f} {_ci(s.low, s.high)}{delta}")
    lines.append("")
    srm = report.srm
    if srm is None:
        lines.append("sample ratio: not enough traffic to check")
    elif srm.mismatch:
        lines.append(
            f"sample ratio MISMATCH: chi-square {srm.chi_square:.2f} (df {srm.df}), p = {srm.p_value:.2g} < {SRM_ALPHA}: "
            "the split is not what the weights say; do not trust the comparison until that is explained"
        )
    else:
        lines.append(f"sample ratio: ok (chi-square {srm.chi_square:.2f}, df {srm.df}, p = {srm.p_value:.3f})")
    return "\n".join(lines)
