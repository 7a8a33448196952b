"""The runner against a mock gateway (httpx.MockTransport): bounded concurrency, per-item
storage, resuming, retries, errors, and the run's summary."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from lockgate.config.evals import EvalsConfig
from lockgate.errors import AuthenticationFailed, InvalidRequest, NotFound, UpstreamUnavailable
from lockgate.evals.client import GatewayClient
from lockgate.evals.evaluator import Case, Evaluator, EvaluatorEnv, Score
from lockgate.evals.models import DatasetItem, ItemResult, Target
from lockgate.evals.registry import build_evaluators
from lockgate.evals.runner import execute, plan_run, request_body
from lockgate.store import Store

ITEMS = [DatasetItem(key=f"i{n}", messages=[{"role": "user", "content": f"q{n}"}], expected=f"a{n}", position=n)
         for n in range(6)]


class MockGateway:
    """Answers `a<n>` to `q<n>` (or what `answers` says), records bodies and the most
    requests it had in flight at once."""

    def __init__(self, *, delay: float = 0.01) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.answers: dict[str, str] = {}
        self.statuses: list[int] = []
        self.headers: dict[str, str] = {}
        self.delay = delay
        self.in_flight = self.max_in_flight = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        if self.statuses:
            status = self.statuses.pop(0)
            return httpx.Response(status, json={"error": {"message": f"scripted {status}"}}, headers={"retry-after": "0"})
        question = body["messages"][-1]["content"] if body["messages"] else json.dumps(body.get("prompt_variables"))
        text = self.answers.get(question, question.replace("q", "a"))
        return httpx.Response(200, headers=self.headers, json={
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3},
        })

    def client(self) -> GatewayClient:
        return GatewayClient("http://gw/v1", "sk-test", retries=2, backoff=0.001, transport=httpx.MockTransport(self))


def evaluators(*names: str) -> list[Evaluator]:
    cfg = EvalsConfig()
    return build_evaluators(list(names) or ["exact_match"], cfg, EvaluatorEnv(cfg))


async def test_a_run_scores_every_item_with_bounded_concurrency(store: Store) -> None:
    dataset, _ = await store.create_dataset("golden", ITEMS, source="x")
    gateway = MockGateway()
    gateway.answers = {"q4": "wrong", "q5": "wrong"}
    seen: list[str] = []
    plan = await plan_run(store, target=Target(model="fast"), dataset=dataset, evaluators=evaluators())
    client = gateway.client()

    run = await execute(store, plan, evaluators(), client, concurrency=2, on_item=lambda r: seen.append(r.item_key),
                        params={"max_tokens": 5, "temperature": None})
    await client.aclose()

    assert gateway.max_in_flight == 2 and sorted(seen) == [i.key for i in ITEMS]
    assert gateway.bodies[0] == {"model": "fast", "messages": [{"role": "user", "content": "q0"}], "max_tokens": 5}
    assert run.status == "finished" and run.summary is not None
    assert run.summary["metrics"] == {"exact_match": {"mean": round(4 / 6, 6), "scored": 6, "unscored": 0}}
    assert (run.summary["items"], run.summary["done"], run.summary["errors"]) == (6, 6, 0)
    assert run.summary["tokens"] == {"input": 12, "output": 6}
    results = await store.eval_results(run.id)
    assert [r.scores["exact_match"] for r in results] == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    assert results[4].output == "wrong" and results[0].latency_ms is not None


async def test_resume_sends_only_the_items_without_an_answer(store: Store) -> None:
    dataset, _ = await store.create_dataset("golden", ITEMS, source="x")
    target = Target(model="fast")
    first = await plan_run(store, target=target, dataset=dataset, evaluators=evaluators())
    # As if the process died after three items, one of which had failed.
    for n, error in ((0, None), (1, None), (2, "502 upstream")):
        await store.save_eval_result(first.run.id, ItemResult(
            item_key=f"i{n}", position=n, output=None if error else f"a{n}", error=error,
            scores={"exact_match": None if error else 1.0}, details={}))

    again = await plan_run(store, target=target, dataset=dataset, evaluators=evaluators())
    assert again.resumed and again.run.id == first.run.id
    assert [i.key for i in again.todo] == ["i2", "i3", "i4", "i5"]  # the failed one is retried

    gateway = MockGateway()
    client = gateway.client()
    run = await execute(store, again, evaluators(), client, concurrency=3)
    await client.aclose()
    assert sorted(b["messages"][0]["content"] for b in gateway.bodies) == ["q2", "q3", "q4", "q5"]
    assert run.status == "finished" and run.summary is not None and run.summary["metrics"]["exact_match"]["mean"] == 1.0

    # A finished run is not resumed by default: the next one is new; --resume names one.
    fresh = await plan_run(store, target=target, dataset=dataset, evaluators=evaluators())
    assert not fresh.resumed and fresh.run.id != run.id
    named = await plan_run(store, target=target, dataset=dataset, evaluators=evaluators(), resume=run.id)
    assert named.resumed and named.todo == []


async def test_resume_refuses_a_different_run(store: Store) -> None:
    dataset, _ = await store.create_dataset("golden", ITEMS, source="x")
    plan = await plan_run(store, target=Target(model="fast"), dataset=dataset, evaluators=evaluators())
    with pytest.raises(InvalidRequest, match="resume it with the same target, dataset and evaluators"):
        await plan_run(store, target=Target(model="fast"), dataset=dataset, evaluators=evaluators("contains"),
                       resume=plan.run.id)
    other = await plan_run(store, target=Target(model="fast"), dataset=dataset, evaluators=evaluators("contains"))
    assert not other.resumed  # other evaluators: another run
    new = await plan_run(store, target=Target(model="fast"), dataset=dataset, evaluators=evaluators(), fresh=True)
    assert new.run.id != plan.run.id


async def test_a_model_run_needs_messages_and_a_prompt_run_sends_variables(store: Store) -> None:
    with_vars = [DatasetItem(key="v", variables={"name": "Ada"}, expected="Hi Ada")]
    dataset, _ = await store.create_dataset("vars", with_vars, source="x")
    with pytest.raises(InvalidRequest, match="need --prompt NAME@VERSION"):
        await plan_run(store, target=Target(model="fast"), dataset=dataset, evaluators=evaluators())
    assert request_body(Target(prompt="greet", version=2), with_vars[0], {}) == {
        "model": "prompt:greet@2", "messages": [], "prompt_variables": {"name": "Ada"}}
    mixed = DatasetItem(key="m", variables={"x": 1}, messages=[{"role": "user", "content": "hi"}])
    assert "prompt_variables" not in request_body(Target(model="fast"), mixed, {})


async def test_retries_errors_and_a_wrong_served_version(store: Store) -> None:
    dataset, _ = await store.create_dataset("golden", ITEMS[:2], source="x")
    gateway = MockGateway()
    gateway.statuses = [503, 400]  # i0: retried after a 503 then refused (400), not retried
    client = gateway.client()
    plan = await plan_run(store, target=Target(model="fast"), dataset=dataset, evaluators=evaluators())
    run = await execute(store, plan, evaluators(), client, concurrency=1)
    results = await store.eval_results(run.id)
    assert results[0].error == "400 scripted 400" and results[0].scores == {"exact_match": None}
    assert results[1].error is None and len(gateway.bodies) == 3
    assert run.summary is not None and run.summary["error_rate"] == 0.5
    assert run.summary["metrics"]["exact_match"]["mean"] == 0.5  # a failed item counts as 0

    gateway.headers = {"x-lockgate-prompt-version": "7"}
    items = [DatasetItem(key="p", variables={"q": 1}, expected="x")]
    prompt_ds, _ = await store.create_dataset("p", items, source="x")
    plan = await plan_run(store, target=Target(prompt="greet", version=2), dataset=prompt_ds, evaluators=evaluators())
    run = await execute(store, plan, evaluators(), client, concurrency=1)
    await client.aclose()
    [result] = await store.eval_results(run.id)
    assert result.error == "the gateway served version 7, not 2"


class Broken:
    name = "broken"

    def spec(self) -> dict[str, Any]:
        return {"type": "broken"}

    async def evaluate(self, case: Case) -> Score:
        raise RuntimeError("plugin bug")


async def test_a_failing_evaluator_leaves_the_item_unscored(store: Store) -> None:
    dataset, _ = await store.create_dataset("golden", ITEMS[:1], source="x")
    chosen: list[Evaluator] = [*evaluators(), Broken()]
    plan = await plan_run(store, target=Target(model="fast"), dataset=dataset, evaluators=chosen)
    client = MockGateway().client()
    run = await execute(store, plan, chosen, client, concurrency=1)
    await client.aclose()
    [result] = await store.eval_results(run.id)
    assert result.scores == {"exact_match": 1.0, "broken": None}
    assert result.details == {"broken": {"error": "RuntimeError: plugin bug"}}
    assert run.summary is not None and run.summary["metrics"]["broken"] == {"mean": None, "scored": 0, "unscored": 1}


@pytest.mark.parametrize(("status", "error"), [(401, AuthenticationFailed), (404, NotFound)])
async def test_a_wrong_key_or_unknown_target_stops_the_run(store: Store, status: int, error: type[Exception]) -> None:
    dataset, _ = await store.create_dataset("golden", ITEMS, source="x")
    gateway = MockGateway()
    gateway.statuses = [status] * 10
    client = gateway.client()
    plan = await plan_run(store, target=Target(model="fast"), dataset=dataset, evaluators=evaluators())
    with pytest.raises(error, match=f"scripted {status}"):
        await execute(store, plan, evaluators(), client, concurrency=2)
    await client.aclose()
    assert (await store.get_eval_run(plan.run.id)).status == "running"  # resumable
    assert await store.count_eval_results(plan.run.id) == 0


async def test_an_unreachable_gateway_stops_the_run(store: Store) -> None:
    dataset, _ = await store.create_dataset("golden", ITEMS[:2], source="x")

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = GatewayClient("http://gw", None, retries=1, backoff=0.001, transport=httpx.MockTransport(refuse))
    plan = await plan_run(store, target=Target(model="fast"), dataset=dataset, evaluators=evaluators())
    with pytest.raises(UpstreamUnavailable, match="did not answer: ConnectError"):
        await execute(store, plan, evaluators(), client, concurrency=2)
    await client.aclose()
    assert await store.count_eval_results(plan.run.id) == 0
