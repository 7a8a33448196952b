"""`lockgate guard`: guardrail tools. `eval` measures the scanners on the shipped set."""

from __future__ import annotations

import json

import click

# Kept here, not imported from lockgate.guard.evaluate: that module loads Presidio
# (about 2 s), and every CLI command (`serve` too) builds this group.
SCANNERS = ("pii", "secrets", "injection", "injection_classifier")

__all__ = ["guard", "register"]


@click.group()
def guard() -> None:
    """Guardrails: PII, secrets, prompt injection and output checks."""


@guard.command("eval")
@click.option("--scanner", "scanners", multiple=True, type=click.Choice(SCANNERS),
              help="Only this scanner (repeatable; default: all).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--baseline", type=click.Choice(["presidio"]), default=None,
              help="Also run Presidio's AnalyzerEngine out of the box on the PII set.")
def guard_eval(scanners: tuple[str, ...], as_json: bool, baseline: str | None) -> None:
    """Precision, recall and F1 per scanner and entity, and the false-positive rate on
    benign text, on the labelled set shipped with lockgate."""
    from lockgate.guard.evaluate import evaluate, format_report, presidio_baseline

    report = evaluate(list(scanners) or None)
    extra = {"presidio_baseline": presidio_baseline()} if baseline == "presidio" else {}
    if as_json:
        click.echo(json.dumps({**report, **extra}, indent=2))
        return
    click.echo(format_report(report))
    if extra:
        click.echo(format_report({"presidio (out of the box) on the pii set": extra["presidio_baseline"]}))


def register(cli: click.Group) -> None:
    cli.add_command(guard)
