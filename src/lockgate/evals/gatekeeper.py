"""Quality gates: does a prompt version's eval run meet a gate's thresholds, and does it
do no worse than the version the gate's label holds now?

A gate (`[gates.NAME]`) covers some prompts and labels and pins a dataset version. The
gate looks up the newest *finished* run of the version on that dataset version whose
evaluators include the gate's metrics and score the way the configuration says now (the
same evaluator spec hash): a run scored with an older rubric does not count. No such
run is a failure that says which command makes one. The prompt registry calls
`GateKeeper.check_promotion` before it moves a covered label; `lockgate eval gate` calls
`GateKeeper.evaluate` for CI.

Failures read like `exact_match 0.60 < 0.80`, `error_rate 0.20 > 0.05`, or
`exact_match 0.70 < 0.90 (production v2)` for a regression.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from lockgate.config.evals import GateConfig
from lockgate.config.loader import LoadedConfig
from lockgate.config.schema import Config
from lockgate.errors import InvalidRequest, NotFound
from lockgate.evals.evaluator import EvaluatorEnv
from lockgate.evals.models import Dataset, EvalRun, Target
from lockgate.evals.registry import build_evaluators, spec_hash
from lockgate.evals.summary import ERROR_RATE, metric_value
from lockgate.store.store import Store

__all__ = ["GateKeeper", "GateOutcome", "GateReport", "run_command"]

LabelLookup = Callable[[str], Awaitable[dict[str, int]]]


@dataclass(frozen=True, slots=True)
class GateOutcome:
    """What a promotion learns: passed, the failing metrics, the run that was judged."""

    passed: bool
    failures: list[str]
    run_id: str | None


@dataclass(frozen=True, slots=True)
class GateReport:
    gate: str
    prompt: str
    version: int
    passed: bool
    failures: list[str]
    run: EvalRun | None = None
    values: dict[str, float | None] = field(default_factory=lambda: {})
    baseline_label: str | None = None
    baseline_version: int | None = None
    baseline: EvalRun | None = None
    baseline_values: dict[str, float | None] = field(default_factory=lambda: {})


def run_command(prompt: str, version: int, dataset: str, evaluators: list[str]) -> str:
    flags = " ".join(f"--evaluator {e}" for e in evaluators)
    return f"lockgate eval run --prompt {prompt}@{version} --dataset {dataset} {flags}".strip()


def _fmt(value: float, bound: float) -> tuple[str, str]:
    for digits in (2, 4, 6):
        a, b = f"{value:.{digits}f}", f"{bound:.{digits}f}"
        if a != b:
            return a, b
    return f"{value!r}", f"{bound!r}"


class GateKeeper:
    """Built from the config and the store: `GateKeeper(config=..., store=...)`."""

    def __init__(self, config: Config | LoadedConfig, store: Store, *, labels: LabelLookup | None = None,
                 **_: Any) -> None:
        self._config = config.config if isinstance(config, LoadedConfig) else config
        self._store = store
        self._labels = labels

    def gates_covering(self, prompt: str, label: str) -> list[str]:
        return [name for name, gate in self._config.gates.items() if gate.covers(prompt, label)]

    async def check_promotion(self, *, prompt: str, version: int, label: str) -> GateOutcome | None:
        """None when no gate covers moving `label` of `prompt`; otherwise every covering
        gate's verdict on `version`, failures together."""
        names = self.gates_covering(prompt, label)
        if not names:
            return None
        reports = [await self.evaluate(name, prompt=prompt, version=version) for name in names]
        failures = [f if len(reports) == 1 else f"gate {r.gate}: {f}" for r in reports for f in r.failures]
        run_id = next((r.run.id for r in reports if r.run is not None), None)
        return GateOutcome(passed=all(r.passed for r in reports), failures=failures, run_id=run_id)

    async def evaluate(self, gate_name: str, *, prompt: str, version: int) -> GateReport:
        gate = self._config.gates.get(gate_name)
        if gate is None:
            known = ", ".join(sorted(self._config.gates)) or "none configured"
            raise NotFound(f"No gate {gate_name!r} (known: {known}).")
        name, dataset_version = gate.dataset_ref
        try:
            dataset = await self._store.get_dataset(name, dataset_version)
        except NotFound:
            return GateReport(gate_name, prompt, version, False, [
                f"the gate's dataset {gate.dataset} does not exist: import it with "
                f"`lockgate datasets import {name} FILE` (it must become version {dataset_version})"
            ])
        try:
            hashes = self._spec_hashes(gate)
        except InvalidRequest as exc:
            return GateReport(gate_name, prompt, version, False, [f"gate {gate_name}: {exc.message}"])
        run = await self._find_run(Target(prompt=prompt, version=version), dataset, hashes)
        if run is None:
            return GateReport(gate_name, prompt, version, False, [
                f"no finished eval run of {prompt}@{version} on dataset {gate.dataset} with the gate's "
                f"evaluators: run `{run_command(prompt, version, gate.dataset, list(hashes))}`"
            ])
        values = {m: metric_value(run.summary, m) for m in gate.metrics}
        failures = self._threshold_failures(gate, values)
        report = GateReport(gate_name, prompt, version, False, failures, run=run, values=values)
        if gate.no_regression:
            report = await self._regression(gate, report, dataset, hashes)
        return replace(report, passed=not report.failures)

    def _spec_hashes(self, gate: GateConfig) -> dict[str, str]:
        names = [m for m in gate.metrics if m != ERROR_RATE]
        if not names:
            return {}
        evaluators = build_evaluators(names, self._config.evals, EvaluatorEnv(self._config.evals))
        return {e.name: spec_hash([e]) for e in evaluators}

    async def _find_run(self, target: Target, dataset: Dataset, hashes: dict[str, str]) -> EvalRun | None:
        for run in await self._store.find_eval_runs(target=target, dataset_id=dataset.id, status="finished"):
            have: Any = (run.summary or {}).get("spec_hashes") or {}
            if all(have.get(m) == h for m, h in hashes.items()):
                return run
        return None

    @staticmethod
    def _threshold_failures(gate: GateConfig, values: dict[str, float | None]) -> list[str]:
        failures: list[str] = []
        for metric, bound in gate.metrics.items():
            value = values.get(metric)
            if value is None:
                failures.append(f"{metric}: no score (no item could be scored)")
                continue
            if bound.min is not None and value < bound.min:
                a, b = _fmt(value, bound.min)
                failures.append(f"{metric} {a} < {b}")
            if bound.max is not None and value > bound.max:
                a, b = _fmt(value, bound.max)
                failures.append(f"{metric} {a} > {b}")
        return failures

    async def _label_versions(self, prompt: str) -> dict[str, int]:
        lookup = self._labels or getattr(self._store, "get_prompt_labels", None)
        if lookup is None:
            return {}
        try:
            labels: dict[str, int] = await lookup(prompt)
        except NotFound:
            return {}
        return labels

    async def _regression(self, gate: GateConfig, report: GateReport, dataset: Dataset,
                          hashes: dict[str, str]) -> GateReport:
        label = gate.labels[0]
        current = (await self._label_versions(report.prompt)).get(label)
        if current is None or current == report.version:
            return report  # nothing to regress against
        report = replace(report, baseline_label=label, baseline_version=current)
        baseline = await self._find_run(Target(prompt=report.prompt, version=current), dataset, hashes)
        if baseline is None:
            command = run_command(report.prompt, current, gate.dataset, list(hashes))
            return replace(report, failures=[*report.failures, (
                f"no baseline: no finished eval run of {report.prompt}@{current} ({label}) on dataset "
                f"{gate.dataset}: run `{command}`"
            )])
        base_values = {m: metric_value(baseline.summary, m) for m in gate.metrics}
        failures = list(report.failures)
        for metric in gate.metrics:
            value, base = report.values.get(metric), base_values.get(metric)
            if value is None or base is None:
                continue
            higher_is_better = metric != ERROR_RATE
            worse = base - value if higher_is_better else value - base
            if worse > gate.regression_tolerance + 1e-12:
                a, b = _fmt(value, base)
                sign = "<" if higher_is_better else ">"
                failures.append(f"{metric} {a} {sign} {b} ({label} v{current})")
        return replace(report, failures=failures, baseline=baseline, baseline_values=base_values)

