"""What the eval commands print, and the driver of `lockgate eval run` (a progress bar on
stderr, the run id announced before the first item so an interrupted run can be named)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click

from lockgate.errors import LockgateError

if TYPE_CHECKING:
    from lockgate.config.loader import LoadedConfig
    from lockgate.evals.compare import Comparison
    from lockgate.evals.gatekeeper import GateReport
    from lockgate.evals.models import EvalRun, Target

__all__ = ["num", "print_comparison", "print_gate", "print_summary", "run_eval", "table"]


def num(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        cells = [c.upper() if n == 0 else c for c in row]
        click.echo("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())


def print_summary(summary: Mapping[str, Any]) -> None:
    rows = [["metric", "mean", "scored", "unscored", "unparseable"]]
    metrics: dict[str, Any] = summary.get("metrics") or {}
    for name, m in metrics.items():
        rows.append([name, num(m.get("mean")), str(m.get("scored")), str(m.get("unscored")),
                     num(m.get("unparseable"))])
    table(rows)
    latency: dict[str, Any] = summary.get("latency_ms") or {}
    tokens: dict[str, Any] = summary.get("tokens") or {}
    click.echo(f"errors {summary.get('errors')}/{summary.get('done')} (error_rate {num(summary.get('error_rate'))}); "
               f"latency p50 {num(latency.get('p50'))} ms, p95 {num(latency.get('p95'))} ms; "
               f"tokens in {tokens.get('input')}, out {tokens.get('output')}")


def _run_command(run: EvalRun, evaluators: list[str]) -> str:
    target = f"--prompt {run.target.prompt}@{run.target.version}" if run.target.prompt else f"--model {run.target.model}"
    flags = " ".join(f"--evaluator {e}" for e in evaluators)
    return f"lockgate eval run {target} --dataset {run.dataset.ref} {flags} --resume {run.id}"


def run_eval(
    loaded: LoadedConfig, *, target: Target, dataset: tuple[str, int | None], evaluators: list[str],
    concurrency: int, resume: str | None, fresh: bool, base_url: str, api_key: str | None,
    params: Mapping[str, Any], as_json: bool,
) -> int:
    """Run (or resume) an eval; the exit code."""
    from lockgate.evals.client import GatewayClient
    from lockgate.evals.evaluator import EvaluatorEnv
    from lockgate.evals.registry import build_evaluators
    from lockgate.evals.runner import execute, plan_run
    from lockgate.store.store import Store

    cfg = loaded.config.evals
    started: dict[str, EvalRun] = {}

    async def go() -> EvalRun:
        store = await Store.open(loaded.config.gateway.database)
        client = GatewayClient(base_url, api_key, timeout=cfg.request_timeout, retries=cfg.retries)
        try:
            built = build_evaluators(evaluators, cfg, EvaluatorEnv(cfg, chat=client.chat))
            ds = await store.get_dataset(*dataset)
            plan = await plan_run(store, target=target, dataset=ds, evaluators=built, resume=resume, fresh=fresh)
            started["run"] = plan.run
            state = "resumed" if plan.resumed else "new"
            click.echo(f"run {plan.run.id} ({state}): {target.ref} on {ds.ref}, "
                       f"{len(plan.todo)} of {len(plan.items)} items to go", err=True)
            with click.progressbar(length=len(plan.todo), label="items", file=sys.stderr) as bar:
                return await execute(store, plan, built, client, concurrency=concurrency, params=params,
                                     on_item=lambda _: bar.update(1))
        finally:
            await client.aclose()
            await store.aclose()

    try:
        run = asyncio.run(go())
    except LockgateError as exc:
        click.echo(f"error: {exc.message}", err=True)
        if "run" in started:
            click.echo(f"run {started['run'].id} is unfinished; the same command resumes it", err=True)
        return 2
    except KeyboardInterrupt:
        if "run" in started:
            click.echo(f"\ninterrupted: finished items are stored; resume with\n  "
                       f"{_run_command(started['run'], evaluators)}", err=True)
        return 130
    if as_json:
        click.echo(json.dumps({"id": run.id, "target": run.target.ref, "dataset": run.dataset.ref,
                               "status": run.status, "summary": run.summary}, indent=2))
    else:
        click.echo(f"run {run.id}: {run.target.ref} on {run.dataset.ref}, {run.status}")
        if run.summary:
            print_summary(run.summary)
    return 0


def print_comparison(c: Comparison, *, as_json: bool) -> None:
    if as_json:
        def delta(d: Any) -> dict[str, Any]:
            return {"id": d.key, "metric": d.metric, "a": d.a, "b": d.b, "delta": round(d.delta, 6),
                    "output_a": d.output_a, "output_b": d.output_b}

        click.echo(json.dumps({
            "run_a": c.run_a.id, "run_b": c.run_b.id, "shared_items": c.shared,
            "metrics": {m: {"a": a, "b": b} for m, (a, b) in c.metrics.items()},
            "regressions": [delta(d) for d in c.regressions], "improvements": [delta(d) for d in c.improvements],
            "only_a": c.only_a, "only_b": c.only_b,
        }, indent=2))
        return
    click.echo(f"A {c.run_a.id}: {c.run_a.target.ref} on {c.run_a.dataset.ref}")
    click.echo(f"B {c.run_b.id}: {c.run_b.target.ref} on {c.run_b.dataset.ref}")
    rows = [["metric", "a", "b", "delta"]]
    for metric, (a, b) in c.metrics.items():
        rows.append([metric, num(a), num(b), num(b - a) if a is not None and b is not None else "-"])
    table(rows)
    click.echo(f"{c.shared} shared items: {len(c.regressions)} regressions, {len(c.improvements)} improvements")
    if c.regressions:
        click.echo("regressions:")
        rows = [["item", "metric", "a", "b", "output b"]]
        rows += [[d.key, d.metric, num(d.a), num(d.b), (d.output_b or "").replace("\n", " ")[:60]]
                 for d in c.regressions]
        table(rows)
    if c.only_a or c.only_b:
        click.echo(f"only in A: {len(c.only_a)} items; only in B: {len(c.only_b)} items")


def print_gate(report: GateReport, *, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({
            "gate": report.gate, "prompt": report.prompt, "version": report.version, "passed": report.passed,
            "failures": report.failures, "run_id": report.run.id if report.run else None, "values": report.values,
            "baseline": {"label": report.baseline_label, "version": report.baseline_version,
                         "run_id": report.baseline.id if report.baseline else None,
                         "values": report.baseline_values} if report.baseline_label else None,
        }, indent=2))
        return
    verdict = "passed" if report.passed else "FAILED"
    run = f" (run {report.run.id})" if report.run else ""
    click.echo(f"gate {report.gate}: {report.prompt}@{report.version} {verdict}{run}")
    for metric, value in report.values.items():
        base = report.baseline_values.get(metric) if report.baseline_values else None
        versus = f"  ({report.baseline_label} v{report.baseline_version}: {num(base)})" if report.baseline else ""
        click.echo(f"  {metric} {num(value)}{versus}")
    for failure in report.failures:
        click.echo(f"  failed: {failure}", err=not as_json)
