"""Quality gates (GateKeeper.check_promotion / evaluate) and run comparison, on stored
runs (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest

from lockgate.config.evals import EvaluatorConfig
from lockgate.config.schema import Config
from lockgate.errors import NotFound
from lockgate.evals.compare import compare_runs
from lockgate.evals.evaluator import EvaluatorEnv
from lockgate.evals.gatekeeper import GateKeeper, GateOutcome
from lockgate.evals.models import Dataset, DatasetItem, EvalRun, ItemResult, Target
from lockgate.evals.registry import build_evaluators, spec_hash
from lockgate.evals.summary import summarize
from lockgate.store import Store

ITEMS = [DatasetItem(key=f"i{n}", variables={"n": n}, expected=str(n), position=n) for n in range(5)]


def config(**gate: Any) -> Config:
    return Config.model_validate({
        "gates": {"quality": {"prompts": ["support"], "dataset": "golden@1",
                              "metrics": {"exact_match": 0.8, "error_rate": {"max": 0.2}}, **gate}},
    })


async def finished_run(store: Store, cfg: Config, dataset: Dataset, version: int, scores: list[float | None],
                       *, errors: tuple[int, ...] = (), prompt: str = "support") -> EvalRun:
    evaluators = build_evaluators(["exact_match"], cfg.evals, EvaluatorEnv(cfg.evals))
    run = await store.create_eval_run(Target(prompt=prompt, version=version), dataset, ["exact_match"],
                                      spec_hash(evaluators))
    results = [
        ItemResult(item_key=f"i{n}", position=n, output=None if n in errors else "x",
                   error="502 boom" if n in errors else None, scores={"exact_match": s}, details={})
        for n, s in enumerate(scores)
    ]
    for result in results:
        await store.save_eval_result(run.id, result)
    summary = summarize(["exact_match"], results, item_count=len(results),
                        spec_hashes={e.name: spec_hash([e]) for e in evaluators})
    return await store.finish_eval_run(run.id, summary)


def labels(mapping: dict[str, int]) -> Any:
    async def lookup(prompt: str) -> dict[str, int]:
        if prompt != "support":
            raise NotFound("no such prompt")
        return mapping

    return lookup


async def test_no_gate_covers_other_prompts_or_labels(store: Store) -> None:
    keeper = GateKeeper(config(), store)
    assert await keeper.check_promotion(prompt="other", version=2, label="production") is None
    assert await keeper.check_promotion(prompt="support", version=2, label="staging") is None


async def test_missing_dataset_and_missing_run_say_what_to_run(store: Store) -> None:
    keeper = GateKeeper(config(), store, labels=labels({}))
    outcome = await keeper.check_promotion(prompt="support", version=2, label="production")
    assert outcome is not None and not outcome.passed and outcome.run_id is None
    assert outcome.failures == ["the gate's dataset golden@1 does not exist: import it with "
                                "`lockgate datasets import golden FILE` (it must become version 1)"]

    await store.create_dataset("golden", ITEMS, source="x")
    outcome = await keeper.check_promotion(prompt="support", version=2, label="production")
    assert outcome == GateOutcome(passed=False, run_id=None, failures=[
        "no finished eval run of support@2 on dataset golden@1 with the gate's evaluators: run "
        "`lockgate eval run --prompt support@2 --dataset golden@1 --evaluator exact_match`"
    ])


async def test_thresholds_name_the_failing_metrics(store: Store) -> None:
    cfg = config()
    dataset, _ = await store.create_dataset("golden", ITEMS, source="x")
    run = await finished_run(store, cfg, dataset, 2, [1, 1, 1, 0, 0], errors=(4,))
    keeper = GateKeeper(cfg, store, labels=labels({}))

    outcome = await keeper.check_promotion(prompt="support", version=2, label="production")

    assert outcome == GateOutcome(passed=False, failures=["exact_match 0.60 < 0.80"], run_id=run.id)
    failing_errors = await finished_run(store, cfg, dataset, 3, [1, 1, 1, 1, 1], errors=(3, 4))
    report = await keeper.evaluate("quality", prompt="support", version=3)
    assert report.failures == ["exact_match 0.60 < 0.80", "error_rate 0.40 > 0.20"]
    assert report.run == failing_errors and report.values == {"exact_match": 0.6, "error_rate": 0.4}


async def test_a_passing_version_and_the_no_regression_rule(store: Store) -> None:
    cfg = config()
    dataset, _ = await store.create_dataset("golden", ITEMS, source="x")
    await finished_run(store, cfg, dataset, 1, [1, 1, 1, 1, 1])
    candidate = await finished_run(store, cfg, dataset, 2, [1, 1, 1, 1, 0])

    first = GateKeeper(cfg, store, labels=labels({}))  # nothing in production yet: no baseline needed
    assert await first.check_promotion(prompt="support", version=2, label="production") == GateOutcome(
        passed=True, failures=[], run_id=candidate.id)

    keeper = GateKeeper(cfg, store, labels=labels({"production": 1}))
    outcome = await keeper.check_promotion(prompt="support", version=2, label="production")
    assert outcome is not None and outcome.failures == ["exact_match 0.80 < 1.00 (production v1)"]

    tolerant = GateKeeper(config(regression_tolerance=0.25), store, labels=labels({"production": 1}))
    passed = await tolerant.check_promotion(prompt="support", version=2, label="production")
    assert passed is not None and passed.passed
    unchecked = GateKeeper(config(no_regression=False), store, labels=labels({"production": 1}))
    assert (await unchecked.evaluate("quality", prompt="support", version=2)).passed


async def test_a_baseline_without_a_run_fails(store: Store) -> None:
    cfg = config()
    dataset, _ = await store.create_dataset("golden", ITEMS, source="x")
    await finished_run(store, cfg, dataset, 2, [1, 1, 1, 1, 1])
    report = await GateKeeper(cfg, store, labels=labels({"production": 1})).evaluate("quality", prompt="support",
                                                                                      version=2)
    assert not report.passed and report.baseline_version == 1
    assert report.failures == ["no baseline: no finished eval run of support@1 (production) on dataset golden@1: run "
                               "`lockgate eval run --prompt support@1 --dataset golden@1 --evaluator exact_match`"]


async def test_a_run_scored_differently_than_the_config_says_does_not_count(store: Store) -> None:
    dataset, _ = await store.create_dataset("golden", ITEMS, source="x")
    await finished_run(store, config(), dataset, 2, [1, 1, 1, 1, 1])
    changed = config().model_copy(update={"evals": config().evals.model_copy(update={"evaluators": {
        "exact_match": EvaluatorConfig(type="exact_match", options={"case_sensitive": False})}})})
    report = await GateKeeper(changed, store, labels=labels({})).evaluate("quality", prompt="support", version=2)
    assert not report.passed and report.failures[0].startswith("no finished eval run of support@2")


async def test_several_gates_all_count_and_unknown_gates_are_not_found(store: Store) -> None:
    cfg = Config.model_validate({"gates": {
        "a": {"prompts": ["*"], "dataset": "golden@1", "metrics": {"exact_match": 0.5}},
        "b": {"prompts": ["support"], "dataset": "golden@1", "metrics": {"exact_match": 0.9}},
    }})
    dataset, _ = await store.create_dataset("golden", ITEMS, source="x")
    await finished_run(store, cfg, dataset, 2, [1, 1, 1, 1, 0])
    outcome = await GateKeeper(cfg, store, labels=labels({})).check_promotion(prompt="support", version=2,
                                                                              label="production")
    assert outcome is not None and outcome.failures == ["gate b: exact_match 0.80 < 0.90"]
    with pytest.raises(NotFound, match="No gate 'c'"):
        await GateKeeper(cfg, store).evaluate("c", prompt="support", version=2)


def test_gate_config_is_checked() -> None:
    with pytest.raises(ValueError, match="NAME@VERSION"):
        config(dataset="golden")
    with pytest.raises(ValueError, match="needs `min` or `max`"):
        Config.model_validate({"gates": {"g": {"prompts": ["p"], "dataset": "d@1", "metrics": {"m": {}}}}})
    assert config().gates["quality"].metrics["exact_match"].min == 0.8


async def test_compare_finds_item_level_regressions(store: Store) -> None:
    cfg = config()
    dataset, _ = await store.create_dataset("golden", ITEMS, source="x")
    a = await finished_run(store, cfg, dataset, 1, [1, 1, 0, 1, None])
    b = await finished_run(store, cfg, dataset, 2, [1, 0, 1, 1, 1], errors=(3,))

    c = compare_runs(a, await store.eval_results(a.id), b, await store.eval_results(b.id))

    assert [(d.key, d.metric, d.a, d.b) for d in c.regressions] == [("i1", "exact_match", 1.0, 0.0),
                                                                    ("i3", "exact_match", 1.0, 0.0)]
    assert c.regressions[1].output_b == "error: 502 boom"
    assert [d.key for d in c.improvements] == ["i2"]
    assert c.shared == 5 and c.only_a == [] and c.only_b == []
    assert c.metrics == {"exact_match": (0.75, 0.6)}
