"""`lockgate experiments create|list|report|stop|score`: A/B splits of a prompt label's
(or a model's) traffic, and their reports (docs/prompts.md)."""

from __future__ import annotations

from typing import Any

import click

from lockgate.cli.prompts import (
    Services,
    author_name,
    config_option,
    echo_json,
    json_option,
    print_table,
    run_services,
)
from lockgate.prompts.models import Arm

__all__ = ["experiments"]


@click.group()
def experiments() -> None:
    """A/B experiments between prompt versions or models, with sticky assignment."""


def parse_arm(spec: str) -> Arm:
    """`NAME:WEIGHT[:version=N][:model=M]`, e.g. `control:50:version=3`."""
    parts = spec.split(":")
    if len(parts) < 2:
        raise click.BadParameter(f"{spec!r}: use NAME:WEIGHT[:version=N][:model=M]", param_hint="--arm")
    try:
        weight = float(parts[1])
    except ValueError:
        raise click.BadParameter(f"{spec!r}: the weight {parts[1]!r} is not a number", param_hint="--arm") from None
    version: int | None = None
    model: str | None = None
    for extra in parts[2:]:
        key, sep, value = extra.partition("=")
        if key == "version" and sep and value.isdigit():
            version = int(value)
        elif key == "model" and sep and value:
            model = value
        else:
            raise click.BadParameter(f"{spec!r}: {extra!r} is not version=N or model=NAME", param_hint="--arm")
    return Arm(name=parts[0], weight=weight, version=version, model=model)


@experiments.command("create")
@click.argument("name")
@click.option("--prompt", default=None, help="Split this prompt's requests by --label.")
@click.option("--label", default="production", show_default=True)
@click.option("--model", default=None, help="Or split this model's requests.")
@click.option("--arm", "arms", multiple=True, required=True,
              help="NAME:WEIGHT[:version=N][:model=M]; at least two.")
@click.option("--sticky", type=click.Choice(["user", "session"]), default="user", show_default=True,
              help="The key that keeps a caller on one arm.")
@click.option("--actor", envvar="LOCKGATE_AUTHOR", default=None)
@config_option
@json_option
def experiments_create(name: str, prompt: str | None, label: str, model: str | None, arms: tuple[str, ...],
                       sticky: str, actor: str | None, config_path: str | None, as_json: bool) -> None:
    """Start an experiment (gateways pick it up at once)."""
    from lockgate.admin.prompts import experiment_out

    parsed = [parse_arm(a) for a in arms]
    experiment = run_services(config_path, lambda s: s.experiments.create(
        name, arms=parsed, actor=author_name(actor), prompt=prompt, model=model, label=label,
        sticky="session" if sticky == "session" else "user",
    ))
    if as_json:
        echo_json(experiment_out(experiment))
        return
    split = ", ".join(f"{a.name} {a.weight:g}" for a in experiment.arms)
    click.echo(f"experiment {experiment.name}: {experiment.target} split {split}, sticky by {experiment.sticky}")


@experiments.command("list")
@config_option
@json_option
def experiments_list(config_path: str | None, as_json: bool) -> None:
    """Every experiment, from the config file and the database."""
    from lockgate.admin.prompts import experiment_out

    data = [experiment_out(e) for e in run_services(config_path, lambda s: s.experiments.list())]
    if as_json:
        echo_json(data)
        return
    rows = [{**d, "arms": ", ".join(f"{a['name']}={a['weight']:g}" for a in d["arms"])} for d in data]
    print_table(rows, ["name", "target", "arms", "sticky", "status", "source"])


@experiments.command("report")
@click.argument("name")
@config_option
@json_option
def experiments_report(name: str, config_path: str | None, as_json: bool) -> None:
    """Per arm: requests, errors, latency p50/p95, tokens, cost and scores with 95%
    confidence intervals, and a sample-ratio-mismatch check."""
    from lockgate.prompts.report import format_report

    report = run_services(config_path, lambda s: s.experiments.report(name))
    if as_json:
        echo_json(report.as_json())
    else:
        click.echo(format_report(report))


@experiments.command("stop")
@click.argument("name")
@config_option
def experiments_stop(name: str, config_path: str | None) -> None:
    """Stop splitting (its outcomes stay for the report)."""
    experiment = run_services(config_path, lambda s: s.experiments.stop(name))
    click.echo(f"experiment {experiment.name}: {experiment.status}")


@experiments.command("score")
@click.argument("request_id")
@click.argument("name")
@click.argument("value", type=float)
@click.option("--comment", default=None)
@click.option("--source", default="cli", show_default=True)
@config_option
def experiments_score(request_id: str, name: str, value: float, comment: str | None, source: str,
                      config_path: str | None) -> None:
    """Attach a score to a request (its id is the answer's x-request-id)."""
    from lockgate.prompts.models import Score

    async def go(s: Services) -> Any:
        return await s.experiments.add_scores([Score(request_id=request_id, name=name, value=value, comment=comment,
                                                     source=source)])

    stored = run_services(config_path, go)
    click.echo(f"{request_id}: {name} = {stored[0].value:g}")
