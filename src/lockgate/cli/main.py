"""The `lockgate` command. Thin: each command loads the config and calls a service.

Errors a user can fix exit with code 2 and a message on stderr naming what to fix.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from lockgate import __version__
from lockgate.config.loader import LoadedConfig, load_config
from lockgate.errors import ConfigError

__all__ = ["main"]


def _fail(message: str, problems: list[str] | None = None) -> None:
    click.echo(f"error: {message}", err=True)
    for problem in problems or []:
        if problem != message:
            click.echo(f"  {problem}", err=True)
    sys.exit(2)


def _load(path: str | None, overrides: dict[str, Any] | None = None) -> LoadedConfig:
    try:
        return load_config(path, os.environ, overrides=overrides)
    except ConfigError as exc:
        _fail(exc.message, exc.problems)
        raise  # unreachable


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="lockgate", message="%(prog)s %(version)s")
def cli() -> None:
    """lockgate: a self-hosted control plane for production AI."""


@cli.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Config file (default: ./lockgate.toml, else the embedded default).")
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1, or [gateway] host).")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Port (default 4000).")
def serve(config_path: str | None, host: str | None, port: int | None) -> None:
    """Run the gateway."""
    loaded = _load(config_path, {"host": host, "port": port})
    if loaded.config.gateway.admin_key and loaded.config.gateway.admin_key not in loaded.secrets:
        _fail(f"gateway.admin_key: {loaded.config.gateway.admin_key} is not set; refusing to start unprotected")
    from lockgate.cli.serve import run

    run(loaded, dict(os.environ))


@cli.group()
def config() -> None:
    """Validate and inspect configuration."""


@config.command("check")
@click.argument("path", type=click.Path(dir_okay=False), required=False)
def config_check(path: str | None) -> None:
    """Validate a config file without starting anything (exit 0 if valid, 2 if not)."""
    if path is not None and not Path(path).exists():
        _fail(f"{path}: no such file")
    loaded = _load(path)
    for missing in loaded.missing_secrets:
        click.echo(f"warning: {missing}", err=True)
    models = len(loaded.config.models)
    providers = len(loaded.config.providers)
    click.echo(f"{loaded.source}: ok ({providers} providers, {models} models)")


@config.command("show")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None)
@click.option("--pipeline", is_flag=True, help="Print the request pipeline's stages in order.")
def config_show(config_path: str | None, pipeline: bool) -> None:
    """Print the effective configuration (secrets stay as their names)."""
    loaded = _load(config_path)
    if pipeline:
        from lockgate.app import pipeline_stage_names

        for i, name in enumerate(pipeline_stage_names(loaded), start=1):
            click.echo(f"{i:2d}. {name}")
        return
    import json

    click.echo(json.dumps(loaded.config.model_dump(mode="json"), indent=2))


def main() -> None:
    cli(prog_name="lockgate")
