"""Eval runs: send a dataset version's items through the gateway, score each answer,
and store each item's result the moment it is scored.

Because results are stored one by one, a run that is interrupted (Ctrl-C, a crash, a
SIGKILL) loses at most the items in flight. Resuming (`--resume RUN_ID`, or by default
the newest unfinished run with the same target, dataset version and evaluator specs)
sends only the items without a stored answer; items whose request failed are retried.

    plan = await plan_run(store, target=..., dataset=..., evaluators=..., resume=None)
    run = await execute(store, plan, evaluators, client, concurrency=4, on_item=bar.update)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lockgate.errors import (
    AuthenticationFailed,
    InvalidRequest,
    LockgateError,
    NotFound,
    UpstreamUnavailable,
)
from lockgate.evals.client import GatewayClient
from lockgate.evals.evaluator import Case, Evaluator, Score
from lockgate.evals.models import Dataset, DatasetItem, EvalRun, ItemResult, Target
from lockgate.evals.registry import spec_hash
from lockgate.evals.summary import summarize
from lockgate.store.store import Store

__all__ = ["RunPlan", "execute", "plan_run", "request_body"]


@dataclass(frozen=True, slots=True)
class RunPlan:
    run: EvalRun
    items: list[DatasetItem]
    todo: list[DatasetItem]
    resumed: bool


def request_body(target: Target, item: DatasetItem, params: Mapping[str, Any]) -> dict[str, Any]:
    """The chat request for an item: the prompt version (rendered by the gateway from
    `prompt_variables`) or the model, the item's messages, and the run's parameters.
    A model run sends no variables (the gateway accepts them only with a prompt)."""
    body: dict[str, Any] = {"model": target.request_model, "messages": list(item.messages or [])}
    if item.variables and target.prompt is not None:
        body["prompt_variables"] = item.variables
    body.update({k: v for k, v in params.items() if v is not None})
    return body


async def plan_run(
    store: Store,
    *,
    target: Target,
    dataset: Dataset,
    evaluators: Sequence[Evaluator],
    resume: str | None = None,
    fresh: bool = False,
) -> RunPlan:
    """The run to work on (resumed or new) and the items it still needs."""
    items = await store.dataset_items(dataset.id)
    if target.prompt is None:
        bare = [i.key for i in items if not i.messages]
        if bare:
            raise InvalidRequest(
                f"{len(bare)} item(s) of {dataset.ref} have no messages (e.g. {bare[0]!r}): a model run sends "
                "the items' messages; items with only variables need --prompt NAME@VERSION"
            )
    names = [e.name for e in evaluators]
    digest = spec_hash(evaluators)
    run: EvalRun | None = None
    if resume is not None:
        run = await store.get_eval_run(resume)
        if (run.target, run.dataset.id, run.evaluator_hash) != (target, dataset.id, digest):
            raise InvalidRequest(
                f"Run {run.id} was made for {run.target.ref} on {run.dataset.ref} with evaluators "
                f"{', '.join(run.evaluators)}; resume it with the same target, dataset and evaluators."
            )
    elif not fresh:
        unfinished = await store.find_eval_runs(
            target=target, dataset_id=dataset.id, evaluator_hash=digest, status="running", limit=1
        )
        run = unfinished[0] if unfinished else None
    if run is None:
        run = await store.create_eval_run(target, dataset, names, digest)
        return RunPlan(run=run, items=items, todo=items, resumed=False)
    done = {r.item_key for r in await store.eval_results(run.id) if not r.error}
    todo = [i for i in items if i.key not in done]
    if todo and run.status == "finished":
        run = await store.reopen_eval_run(run.id)
    return RunPlan(run=run, items=items, todo=todo, resumed=True)


async def _score(evaluators: Sequence[Evaluator], case: Case) -> dict[str, Score]:
    async def one(evaluator: Evaluator) -> Score:
        try:
            return await evaluator.evaluate(case)
        except Exception as exc:  # a plugin's bug must not end the run: the item is unscored
            return Score(None, {"error": f"{type(exc).__name__}: {exc}"[:500]})

    scores = await asyncio.gather(*(one(e) for e in evaluators))
    return {e.name: s for e, s in zip(evaluators, scores, strict=True)}


async def _run_item(
    item: DatasetItem, run: EvalRun, evaluators: Sequence[Evaluator], client: GatewayClient,
    params: Mapping[str, Any],
) -> ItemResult:
    try:
        answer = await client.complete(request_body(run.target, item, params))
    except (AuthenticationFailed, NotFound, UpstreamUnavailable):
        raise  # the run's problem, not the item's: stop, the run stays resumable
    except LockgateError as exc:
        return ItemResult(item_key=item.key, position=item.position, output=None,
                          error=f"{exc.status} {exc.message}", scores={e.name: None for e in evaluators}, details={})
    served = answer.headers.get("x-lockgate-prompt-version")
    if run.target.prompt is not None and served is not None and served != str(run.target.version):
        return ItemResult(item_key=item.key, position=item.position, output=answer.text,
                          error=f"the gateway served version {served}, not {run.target.version}",
                          scores={e.name: None for e in evaluators}, details={})
    scores = await _score(evaluators, Case(item=item, output=answer.text))
    return ItemResult(
        item_key=item.key, position=item.position, output=answer.text, error=None,
        scores={name: s.value for name, s in scores.items()},
        details={name: s.detail for name, s in scores.items() if s.detail},
        latency_ms=round(answer.latency_ms, 2), input_tokens=answer.input_tokens,
        output_tokens=answer.output_tokens,
    )


async def execute(
    store: Store,
    plan: RunPlan,
    evaluators: Sequence[Evaluator],
    client: GatewayClient,
    *,
    concurrency: int,
    params: Mapping[str, Any] | None = None,
    on_item: Callable[[ItemResult], None] | None = None,
) -> EvalRun:
    """Work through the plan's items, `concurrency` at a time; then summarise the run
    and mark it finished. A wrong key (401), an unknown model or prompt version (404)
    or an unreachable gateway stops the run with that error (it stays resumable);
    other request errors are stored as the item's error."""
    queue: asyncio.Queue[DatasetItem] = asyncio.Queue()
    for item in plan.todo:
        queue.put_nowait(item)

    async def worker() -> None:
        while True:
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            result = await _run_item(item, plan.run, evaluators, client, params or {})
            await store.save_eval_result(plan.run.id, result)
            if on_item is not None:
                on_item(result)

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(max(1, min(concurrency, len(plan.todo)))):
                group.create_task(worker())
    except* LockgateError as failed:
        raise failed.exceptions[0] from None
    results = await store.eval_results(plan.run.id)
    summary = summarize([e.name for e in evaluators], results, item_count=len(plan.items),
                        spec_hashes={e.name: spec_hash([e]) for e in evaluators})
    return await store.finish_eval_run(plan.run.id, summary)
