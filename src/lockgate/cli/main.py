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
    from lockgate.access.plane import load_policy

    try:
        load_policy(loaded)
    except ConfigError as exc:
        _fail(exc.message, exc.problems)
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


@cli.group()
def policy() -> None:
    """Policy as code (Cedar)."""


@policy.command("test")
@click.option("--principal", required=True, help="operator, key:PREFIX, grant:PREFIX or user:NAME.")
@click.option("--agent", default=None, help="The agent the request acts for (default: the key's).")
@click.option("--action", default="invoke_model", type=click.Choice(["invoke_model", "call_tool", "request_grant"]))
@click.option("--resource", required=True, help="model:NAME, tool:SERVER/NAME or agent:NAME.")
@click.option("--context", "context", multiple=True, help="KEY=VALUE (delegation, estimated_cost_usd, stream, ...).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None)
def policy_test(principal: str, agent: str | None, action: str, resource: str, context: tuple[str, ...],
                config_path: str | None) -> None:
    """Evaluate a described request; print the decision and the deciding policies."""
    import asyncio

    from lockgate.access.plane import load_policy
    from lockgate.access.policy_test import run_policy_test
    from lockgate.errors import LockgateError
    from lockgate.store.store import Store

    loaded = _load(config_path)
    try:
        engine = load_policy(loaded)
    except ConfigError as exc:
        _fail(exc.message, exc.problems)
        return

    async def go() -> dict[str, Any]:
        store = await Store.open(loaded.config.gateway.database)
        try:
            return await run_policy_test(engine, store, principal=principal, agent=agent, action=action,
                                         resource=resource, context=list(context))
        finally:
            await store.aclose()

    try:
        result = asyncio.run(go())
    except LockgateError as exc:
        _fail(exc.message)
        return
    click.echo(result["explanation"])
    sys.exit(0 if result["allowed"] else 1)


@cli.group()
def db() -> None:
    """The control-plane database."""


@db.command("upgrade")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None)
def db_upgrade(config_path: str | None) -> None:
    """Migrate the database named by [gateway] database to the newest schema."""
    from lockgate.store import migrate_sync

    loaded = _load(config_path)
    try:
        migrate_sync(loaded.config.gateway.database)
    except ConfigError as exc:
        _fail(exc.message, exc.problems)
    click.echo(f"{loaded.config.gateway.database.split('://', 1)[0]}: up to date")


def main() -> None:
    from lockgate.cli.access import register
    from lockgate.cli.evals import register as register_evals

    register(cli)
    from lockgate.cli.audit import register as register_audit

    register_audit(cli)
    register_evals(cli)
    from lockgate.cli.prompts import register as register_prompts

    register_prompts(cli)
    from lockgate.cli.guard import register as register_guard

    register_guard(cli)
    from lockgate.cli.mcp import mcp

    cli.add_command(mcp)
    cli(prog_name="lockgate")
