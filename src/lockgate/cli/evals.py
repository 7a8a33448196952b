"""`lockgate datasets import|list|show` and `lockgate eval run|show|list|compare|gate`.

Datasets, runs and results live in the database named by the config. `eval run` sends
items through a running gateway (`--base-url`, else the config's host and port) with the
key from `--api-key` or `LOCKGATE_API_KEY`. Exit codes: 0 success, 1 a gate failed (or
`compare --fail-on-regression` found one), 2 a usage or input error, 130 interrupted.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from lockgate.config.evals import split_pinned
from lockgate.config.loader import LoadedConfig, load_config
from lockgate.errors import ConfigError, LockgateError
from lockgate.evals.console import num, table
from lockgate.evals.models import Target

if TYPE_CHECKING:
    from lockgate.evals.models import Dataset, EvalRun

__all__ = ["register"]

T = TypeVar("T")

_config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), default=None,
    help="Config file (default: ./lockgate.toml, else the embedded default).",
)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def register(cli: click.Group) -> None:
    cli.add_command(datasets)
    cli.add_command(eval_group)


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(2)


def _loaded(config_path: str | None) -> LoadedConfig:
    try:
        return load_config(config_path, os.environ)
    except ConfigError as exc:
        _fail("; ".join(exc.problems))
        raise  # unreachable


def _run(loaded: LoadedConfig, action: Callable[[Any], Awaitable[T]]) -> T:
    from lockgate.store.store import Store

    async def go() -> T:
        store = await Store.open(loaded.config.gateway.database)
        try:
            return await action(store)
        finally:
            await store.aclose()

    try:
        return asyncio.run(go())
    except LockgateError as exc:
        _fail(exc.message)
        raise  # unreachable


def _dataset_ref(ref: str) -> tuple[str, int | None]:
    if "@" not in ref:
        return ref, None
    try:
        return split_pinned(ref)
    except ValueError as exc:
        _fail(str(exc))
        raise  # unreachable


def _dataset_json(d: Dataset) -> dict[str, Any]:
    return {"id": d.id, "name": d.name, "version": d.version, "ref": d.ref, "items": d.item_count,
            "source": d.source, "content_hash": d.content_hash, "description": d.description,
            "created_at": d.created_at.isoformat()}


def _run_json(r: EvalRun) -> dict[str, Any]:
    return {"id": r.id, "target": r.target.ref, "dataset": r.dataset.ref, "evaluators": list(r.evaluators),
            "status": r.status, "items": r.item_count, "summary": r.summary,
            "created_at": r.created_at.isoformat(), "finished_at": r.finished_at.isoformat() if r.finished_at else None}


# --- datasets ----------------------------------------------------------------------------


@click.group()
def datasets() -> None:
    """Versioned evaluation datasets."""


@datasets.command("import")
@click.argument("name")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "capture"]), default=None,
              help="Default: from the extension (.csv, else jsonl). capture: a JSONL export of requests.")
@click.option("--description", default="", help="What this version holds.")
@_config_option
@_json_option
def datasets_import(name: str, path: str, fmt: str | None, description: str, config_path: str | None,
                    as_json: bool) -> None:
    """Import FILE as the next version of dataset NAME (unchanged content: no new version)."""
    from lockgate.evals.datasets import read_items

    loaded = _loaded(config_path)
    try:
        items = read_items(path, fmt)  # type: ignore[arg-type]
    except LockgateError as exc:
        _fail(exc.message)
        return
    source = f"{fmt or ('csv' if path.lower().endswith('.csv') else 'jsonl')}:{os.path.basename(path)}"
    dataset, created = _run(loaded, lambda s: s.create_dataset(name, items, source=source, description=description))
    if as_json:
        click.echo(json.dumps({**_dataset_json(dataset), "created": created}, indent=2))
    elif created:
        click.echo(f"created {dataset.ref} ({dataset.item_count} items)")
    else:
        click.echo(f"unchanged: {dataset.ref} already holds these {dataset.item_count} items")


@datasets.command("list")
@click.argument("name", required=False)
@_config_option
@_json_option
def datasets_list(name: str | None, config_path: str | None, as_json: bool) -> None:
    """Every dataset version (of NAME)."""
    found: list[Dataset] = _run(_loaded(config_path), lambda s: s.list_datasets(name))
    if as_json:
        click.echo(json.dumps([_dataset_json(d) for d in found], indent=2))
        return
    rows = [["dataset", "items", "source", "created"]]
    rows += [[d.ref, str(d.item_count), d.source, d.created_at.strftime("%Y-%m-%d %H:%M")] for d in found]
    table(rows)


@datasets.command("show")
@click.argument("ref")
@click.option("--limit", type=click.IntRange(0), default=20, help="Items to print (0: all).")
@_config_option
@_json_option
def datasets_show(ref: str, limit: int, config_path: str | None, as_json: bool) -> None:
    """A dataset version (NAME or NAME@VERSION) and its items."""
    name, version = _dataset_ref(ref)

    async def action(store: Any) -> tuple[Dataset, list[Any]]:
        dataset = await store.get_dataset(name, version)
        return dataset, await store.dataset_items(dataset.id)

    dataset, items = _run(_loaded(config_path), action)
    shown = items if limit == 0 else items[:limit]
    if as_json:
        click.echo(json.dumps({**_dataset_json(dataset), "items_list": [
            {"id": i.key, "variables": i.variables, "messages": i.messages, "expected": i.expected,
             "metadata": i.metadata} for i in shown]}, indent=2, default=str))
        return
    click.echo(f"{dataset.ref}: {dataset.item_count} items, from {dataset.source}")
    for item in shown:
        given = json.dumps(item.variables or item.messages, ensure_ascii=False, default=str)
        click.echo(f"  {item.key}: {given[:100]} -> {json.dumps(item.expected, ensure_ascii=False)[:60]}")
    if len(shown) < len(items):
        click.echo(f"  ... {len(items) - len(shown)} more (--limit 0 shows all)")


# --- eval ----------------------------------------------------------------------------------


@click.group("eval")
def eval_group() -> None:
    """Evaluation runs, comparisons and quality gates."""


@eval_group.command("run")
@click.option("--prompt", "prompt_ref", default=None, help="NAME@VERSION: a prompt version the gateway serves.")
@click.option("--model", default=None, help="A model instead of a prompt (items need messages).")
@click.option("--dataset", "dataset_ref", required=True, help="NAME or NAME@VERSION (default: the newest).")
@click.option("--evaluator", "evaluator_names", multiple=True,
              help="A configured evaluator or an evaluator type; repeat for several (default: exact_match).")
@click.option("--concurrency", type=click.IntRange(1, 256), default=None, help="Items in flight ([evals] concurrency).")
@click.option("--resume", "resume_id", default=None, help="Resume this run (default: the unfinished run "
              "with the same target, dataset version and evaluators, if any).")
@click.option("--new", "fresh", is_flag=True, help="Start a new run even if an unfinished one matches.")
@click.option("--base-url", default=None, help="The gateway (default: http://HOST:PORT from the config).")
@click.option("--api-key", envvar="LOCKGATE_API_KEY", default=None, help="Gateway key (or LOCKGATE_API_KEY).")
@click.option("--max-tokens", type=click.IntRange(1), default=None, help="Sent with every item.")
@click.option("--temperature", type=click.FloatRange(0, 2), default=None, help="Sent with every item.")
@_config_option
@_json_option
def eval_run(prompt_ref: str | None, model: str | None, dataset_ref: str, evaluator_names: tuple[str, ...],
             concurrency: int | None, resume_id: str | None, fresh: bool, base_url: str | None,
             api_key: str | None, max_tokens: int | None, temperature: float | None, config_path: str | None,
             as_json: bool) -> None:
    """Send a dataset's items through the gateway, score them, store every result."""
    from lockgate.evals.console import run_eval

    if (prompt_ref is None) == (model is None):
        _fail("give exactly one of --prompt NAME@VERSION or --model NAME")
    target = Target(model=model)
    if prompt_ref is not None:
        try:
            name, version = split_pinned(prompt_ref)
        except ValueError as exc:
            _fail(f"--prompt {exc}")
            return
        target = Target(prompt=name, version=version)
    loaded = _loaded(config_path)
    gw = loaded.config.gateway
    host = "127.0.0.1" if gw.host in ("0.0.0.0", "::", "") else gw.host
    code = run_eval(
        loaded, target=target, dataset=_dataset_ref(dataset_ref), evaluators=list(evaluator_names) or ["exact_match"],
        concurrency=concurrency or loaded.config.evals.concurrency, resume=resume_id, fresh=fresh,
        base_url=base_url or f"http://{host}:{gw.port}", api_key=api_key,
        params={"max_tokens": max_tokens, "temperature": temperature}, as_json=as_json,
    )
    sys.exit(code)


@eval_group.command("show")
@click.argument("run_id")
@click.option("--items", "show_items", is_flag=True, help="Print every item's scores.")
@_config_option
@_json_option
def eval_show(run_id: str, show_items: bool, config_path: str | None, as_json: bool) -> None:
    """A run's summary (and its items)."""
    from lockgate.evals.console import print_summary

    async def action(store: Any) -> tuple[EvalRun, list[Any]]:
        run = await store.get_eval_run(run_id)
        return run, await store.eval_results(run.id)

    run, results = _run(_loaded(config_path), action)
    if as_json:
        click.echo(json.dumps({**_run_json(run), "done": len(results), "results": [
            {"id": r.item_key, "output": r.output, "error": r.error, "scores": r.scores, "details": r.details}
            for r in results] if show_items else None}, indent=2, default=str))
        return
    click.echo(f"run {run.id}: {run.target.ref} on {run.dataset.ref}, {run.status}, "
               f"{len(results)}/{run.item_count} items")
    if run.summary:
        print_summary(run.summary)
    if show_items:
        rows = [["item", *run.evaluators, "error"]]
        rows += [[r.item_key, *(num(r.scores.get(e)) for e in run.evaluators), r.error or ""] for r in results]
        table(rows)


@eval_group.command("list")
@click.option("--prompt", default=None, help="Only runs of this prompt.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20)
@_config_option
@_json_option
def eval_list(prompt: str | None, limit: int, config_path: str | None, as_json: bool) -> None:
    """Recent runs, newest first."""
    runs: list[EvalRun] = _run(_loaded(config_path), lambda s: s.find_eval_runs(prompt=prompt, limit=limit))
    if as_json:
        click.echo(json.dumps([_run_json(r) for r in runs], indent=2, default=str))
        return
    rows = [["run", "target", "dataset", "status", "evaluators"]]
    rows += [[r.id, r.target.ref, r.dataset.ref, r.status, ",".join(r.evaluators)] for r in runs]
    table(rows)


@eval_group.command("compare")
@click.argument("run_a")
@click.argument("run_b")
@click.option("--fail-on-regression", is_flag=True, help="Exit 1 when an item regressed.")
@_config_option
@_json_option
def eval_compare(run_a: str, run_b: str, fail_on_regression: bool, config_path: str | None, as_json: bool) -> None:
    """Item by item: what got worse (and better) in RUN_B than in RUN_A."""
    from lockgate.evals.compare import Comparison, compare_runs
    from lockgate.evals.console import print_comparison

    async def action(store: Any) -> Comparison:
        a, b = await store.get_eval_run(run_a), await store.get_eval_run(run_b)
        return compare_runs(a, await store.eval_results(a.id), b, await store.eval_results(b.id))

    comparison = _run(_loaded(config_path), action)
    print_comparison(comparison, as_json=as_json)
    sys.exit(1 if fail_on_regression and comparison.regressions else 0)


@eval_group.command("gate")
@click.option("--prompt", "prompt_ref", required=True, help="NAME@VERSION")
@click.option("--gate", "gate_name", required=True, help="A gate of the config ([gates.NAME]).")
@_config_option
@_json_option
def eval_gate(prompt_ref: str, gate_name: str, config_path: str | None, as_json: bool) -> None:
    """Check a prompt version against a gate: exit 0 when it passes, 1 naming the failing metrics."""
    from lockgate.evals.console import print_gate
    from lockgate.evals.gatekeeper import GateKeeper, GateReport

    try:
        name, version = split_pinned(prompt_ref)
    except ValueError as exc:
        _fail(f"--prompt {exc}")
        return
    loaded = _loaded(config_path)

    async def action(store: Any) -> GateReport:
        return await GateKeeper(loaded.config, store).evaluate(gate_name, prompt=name, version=version)

    report = _run(loaded, action)
    print_gate(report, as_json=as_json)
    sys.exit(0 if report.passed else 1)
