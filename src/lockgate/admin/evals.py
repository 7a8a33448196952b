"""The admin API of datasets, eval runs and quality gates (see docs/evals.md).

    POST /admin/datasets                       a new version from JSON items (unchanged content: 200, no version)
    GET  /admin/datasets                       every dataset version
    GET  /admin/datasets/{name}?version=       one version (default: the newest)
    GET  /admin/datasets/{name}/items?version= its items
    GET  /admin/evals/runs?prompt=&status=     recent runs, newest first
    GET  /admin/evals/runs/{run}               a run and its summary
    GET  /admin/evals/runs/{run}/results       its per-item results
    GET  /admin/evals/compare?a=RUN&b=RUN      item-level regressions and improvements of b against a
    POST /admin/evals/gates/{gate}/check       {"prompt", "version"}: the gate's verdict (200 either way)

Runs are made by `lockgate eval run` (a client of the gateway, not a job of it): the
gateway never spends its event loop on an evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from fastapi import Depends, FastAPI, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from lockgate.evals.compare import ItemDelta, compare_runs
from lockgate.evals.datasets import item_from_dict, unique_keys
from lockgate.evals.gatekeeper import GateKeeper
from lockgate.evals.models import Dataset, DatasetItem, EvalRun, ItemResult

__all__ = ["include_eval_routes"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetIn(_Body):
    name: str = Field(min_length=1, max_length=200)
    items: list[dict[str, Any]] = Field(min_length=1, max_length=100_000)
    """Items in the JSONL form: id, variables, messages, input, expected, metadata, context."""
    description: str = Field(default="", max_length=2000)


class GateCheckIn(_Body):
    prompt: str = Field(min_length=1, max_length=200)
    version: int = Field(ge=1)


def dataset_out(d: Dataset) -> dict[str, Any]:
    return {"id": d.id, "name": d.name, "version": d.version, "ref": d.ref, "item_count": d.item_count,
            "source": d.source, "content_hash": d.content_hash, "description": d.description,
            "created_at": d.created_at.isoformat()}


def _item_out(i: DatasetItem) -> dict[str, Any]:
    return {"id": i.key, "position": i.position, "variables": i.variables, "messages": i.messages,
            "expected": i.expected, "metadata": i.metadata}


def run_out(r: EvalRun) -> dict[str, Any]:
    return {"id": r.id, "target": r.target.ref, "prompt": r.target.prompt, "prompt_version": r.target.version,
            "model": r.target.model, "dataset": dataset_out(r.dataset), "evaluators": list(r.evaluators),
            "status": r.status, "item_count": r.item_count, "summary": r.summary,
            "created_at": r.created_at.isoformat(), "updated_at": r.updated_at.isoformat(),
            "finished_at": r.finished_at.isoformat() if r.finished_at else None}


def _result_out(r: ItemResult) -> dict[str, Any]:
    return {"id": r.item_key, "position": r.position, "output": r.output, "error": r.error, "scores": r.scores,
            "details": r.details, "latency_ms": r.latency_ms, "input_tokens": r.input_tokens,
            "output_tokens": r.output_tokens}


def _delta_out(d: ItemDelta) -> dict[str, Any]:
    return {"id": d.key, "metric": d.metric, "a": d.a, "b": d.b, "delta": round(d.delta, 6),
            "output_a": d.output_a, "output_b": d.output_b}


def include_eval_routes(app: FastAPI, require_admin: Callable[..., str], gateway: Callable[[], Any]) -> None:
    """`gateway()` is the running gateway: its `.access.store` and `.config`."""

    def store() -> Any:
        return gateway().access.store

    @app.post("/datasets", status_code=201)
    async def create_dataset(body: DatasetIn, _: str = Depends(require_admin)) -> Any:
        items = [item_from_dict(raw, f"items[{n}]") for n, raw in enumerate(body.items)]
        dataset, created = await store().create_dataset(
            body.name, unique_keys(items, "items"), source="api", description=body.description
        )
        out = {**dataset_out(dataset), "created": created}
        return out if created else JSONResponse(out, status_code=200)

    @app.get("/datasets")
    async def list_datasets(_: str = Depends(require_admin), name: str | None = None) -> list[dict[str, Any]]:
        return [dataset_out(d) for d in await store().list_datasets(name)]

    @app.get("/datasets/{name}")
    async def get_dataset(name: str, _: str = Depends(require_admin), version: int | None = None) -> dict[str, Any]:
        return dataset_out(await store().get_dataset(name, version))

    @app.get("/datasets/{name}/items")
    async def dataset_items(name: str, _: str = Depends(require_admin), version: int | None = None) -> list[dict[str, Any]]:
        dataset = await store().get_dataset(name, version)
        return [_item_out(i) for i in await store().dataset_items(dataset.id)]

    @app.get("/evals/runs")
    async def list_runs(
        _: str = Depends(require_admin), prompt: str | None = None,
        status: Literal["running", "finished"] | None = None, limit: int = Query(default=50, ge=1, le=1000),
    ) -> list[dict[str, Any]]:
        return [run_out(r) for r in await store().find_eval_runs(prompt=prompt, status=status, limit=limit)]

    @app.get("/evals/runs/{run}")
    async def get_run(run: str, _: str = Depends(require_admin)) -> dict[str, Any]:
        found = await store().get_eval_run(run)
        return {**run_out(found), "done": await store().count_eval_results(found.id)}

    @app.get("/evals/runs/{run}/results")
    async def run_results(run: str, _: str = Depends(require_admin)) -> list[dict[str, Any]]:
        found = await store().get_eval_run(run)
        return [_result_out(r) for r in await store().eval_results(found.id)]

    @app.get("/evals/compare")
    async def compare(a: str, b: str, _: str = Depends(require_admin)) -> dict[str, Any]:
        run_a, run_b = await store().get_eval_run(a), await store().get_eval_run(b)
        c = compare_runs(run_a, await store().eval_results(run_a.id), run_b, await store().eval_results(run_b.id))
        return {"a": run_a.id, "b": run_b.id, "shared_items": c.shared,
                "metrics": {m: {"a": va, "b": vb} for m, (va, vb) in c.metrics.items()},
                "regressions": [_delta_out(d) for d in c.regressions],
                "improvements": [_delta_out(d) for d in c.improvements], "only_a": c.only_a, "only_b": c.only_b}

    @app.post("/evals/gates/{gate}/check")
    async def check_gate(gate: str, body: GateCheckIn, _: str = Depends(require_admin)) -> dict[str, Any]:
        report = await GateKeeper(gateway().config, store()).evaluate(gate, prompt=body.prompt, version=body.version)
        return {"gate": report.gate, "prompt": report.prompt, "version": report.version, "passed": report.passed,
                "failures": report.failures, "run_id": report.run.id if report.run else None,
                "values": report.values, "baseline_label": report.baseline_label,
                "baseline_version": report.baseline_version,
                "baseline_run_id": report.baseline.id if report.baseline else None,
                "baseline_values": report.baseline_values}
