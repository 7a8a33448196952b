"""`lockgate mcp servers|tools ...`: the MCP gateway's registry from the command line, on
the database named by the config. Running gateways pick every change up within
`access.refresh_interval` (at once with Redis).

    lockgate mcp servers list
    lockgate mcp servers add crm --url https://crm.internal/mcp --header "Authorization=Bearer env::CRM_TOKEN"
    lockgate mcp servers show crm
    lockgate mcp servers approve crm [--tool lookup_customer ...]
    lockgate mcp tools list [--server crm] [--pending]
    lockgate mcp tools show crm__export
    lockgate mcp tools approve crm__export
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from lockgate.access.services import Notifier
from lockgate.cli._store import opened
from lockgate.config.loader import load_config
from lockgate.errors import ConfigError, LockgateError
from lockgate.mcp.control import McpControl, server_out

__all__ = ["mcp"]

T = TypeVar("T")

_config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), default=None,
    help="Config file (default: ./lockgate.toml, else the embedded default).",
)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _run(config_path: str | None, action: Callable[[McpControl], Awaitable[T]]) -> T:
    try:
        loaded = load_config(config_path, os.environ)
    except ConfigError as exc:
        raise click.UsageError("; ".join(exc.problems)) from None
    gw = loaded.config.gateway

    async def go() -> T:
        async with opened(loaded) as (store, ledger):
            control = McpControl(
                store, Notifier(gw.redis), config_servers=list(loaded.config.mcp.servers), audit=ledger,
            )
            return await action(control)

    try:
        return asyncio.run(go())
    except LockgateError as exc:
        click.echo(f"error: {exc.message}", err=True)
        raise SystemExit(2) from None


def _table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, list):
            return ",".join(str(v) for v in value) or "-"  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
        return str(value)

    widths = [max([len(c), *(len(cell(r.get(c))) for r in rows)]) for c in columns]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)))
    for r in rows:
        click.echo("  ".join(cell(r.get(c)).ljust(w) for c, w in zip(columns, widths, strict=True)))


def _out(data: Any, as_json: bool, columns: list[str] | None = None) -> None:
    if as_json or columns is None:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    _table(data if isinstance(data, list) else [data], columns)  # pyright: ignore[reportUnknownArgumentType]


def _actor(actor: str | None) -> str:
    return actor or os.environ.get("USER") or "cli"


@click.group()
def mcp() -> None:
    """The MCP gateway: upstream servers and their tools."""


@mcp.group()
def servers() -> None:
    """Upstream MCP servers (quarantined until approved)."""


@servers.command("list")
@_config_option
@_json_option
def servers_list(config_path: str | None, as_json: bool) -> None:
    rows = _run(config_path, lambda c: c.servers())
    _out(rows, as_json, ["name", "transport", "status", "source", "tools_approved", "tools_pending", "url", "command"])


@servers.command("add")
@click.argument("name")
@click.option("--url", required=True, help="The server's streamable HTTP endpoint.")
@click.option("--header", "headers", multiple=True, help="NAME=VALUE; name credentials as env::VAR.")
@click.option("--description", default="")
@_config_option
@_json_option
def servers_add(name: str, url: str, headers: tuple[str, ...], description: str, config_path: str | None,
                as_json: bool) -> None:
    """Register a streamable HTTP server (stdio servers are config-only)."""
    parsed: dict[str, str] = {}
    for header in headers:
        key, sep, value = header.partition("=")
        if not sep or not key.strip():
            raise click.UsageError(f"--header {header!r}: use NAME=VALUE")
        parsed[key.strip()] = value.strip()
    record = _run(config_path, lambda c: c.register_server(name, url=url, headers=parsed, description=description))
    _out(server_out(record), as_json, ["name", "transport", "status", "url"])


@servers.command("show")
@click.argument("name")
@_config_option
def servers_show(name: str, config_path: str | None) -> None:
    """A server and every tool definition seen on it (JSON)."""
    _out(_run(config_path, lambda c: c.server(name)), True)


@servers.command("approve")
@click.argument("name")
@click.option("--tool", "tools", multiple=True, help="Approve only these tools' pending definitions.")
@click.option("--actor", default=None, help="Who (default: $USER).")
@_config_option
@_json_option
def servers_approve(name: str, tools: tuple[str, ...], actor: str | None, config_path: str | None,
                    as_json: bool) -> None:
    """Approve a server and pin its pending tool definitions."""
    done = _run(config_path, lambda c: c.approve_server(name, actor=_actor(actor), tools=list(tools) or None))
    if as_json:
        _out(done, True)
        return
    click.echo(f"{done['name']}: approved; {len(done['approved_tools'])} tool definition(s) pinned")
    _table(done["approved_tools"], ["name", "digest", "status"])


@servers.command("quarantine")
@click.argument("name")
@click.option("--actor", default=None)
@_config_option
def servers_quarantine(name: str, actor: str | None, config_path: str | None) -> None:
    record = _run(config_path, lambda c: c.quarantine_server(name, actor=_actor(actor)))
    click.echo(f"{record.name}: {record.status}")


@servers.command("remove")
@click.argument("name")
@_config_option
def servers_remove(name: str, config_path: str | None) -> None:
    """Forget an admin-registered server and its pins."""
    record = _run(config_path, lambda c: c.delete_server(name))
    click.echo(f"{record.name}: removed")


@mcp.group()
def tools() -> None:
    """Tool definitions and their pins (`server__tool`)."""


@tools.command("list")
@click.option("--server", default=None)
@click.option("--pending", is_flag=True, help="Only definitions waiting for approval.")
@_config_option
@_json_option
def tools_list(server: str | None, pending: bool, config_path: str | None, as_json: bool) -> None:
    rows = _run(config_path, lambda c: c.tools(server=server, status=["pending"] if pending else None))
    for row in rows:
        row["digest"] = row["digest"][:16]
    _out(rows, as_json, ["name", "status", "digest", "first_seen_at", "decided_by"])


@tools.command("show")
@click.argument("name")
@_config_option
def tools_show(name: str, config_path: str | None) -> None:
    """Every definition seen of a tool, approved and pending (JSON): compare them before approving."""
    _out(_run(config_path, lambda c: c.tool(name)), True)


@tools.command("approve")
@click.argument("name")
@click.option("--id", "pin_id", default=None, help="Approve this definition (default: the newest pending).")
@click.option("--actor", default=None)
@_config_option
@_json_option
def tools_approve(name: str, pin_id: str | None, actor: str | None, config_path: str | None, as_json: bool) -> None:
    rows = _run(config_path, lambda c: c.decide_tool(name, approve=True, actor=_actor(actor), pin_id=pin_id))
    _out(rows, as_json, ["name", "status", "digest", "decided_by"])


@tools.command("reject")
@click.argument("name")
@click.option("--id", "pin_id", default=None)
@click.option("--actor", default=None)
@_config_option
@_json_option
def tools_reject(name: str, pin_id: str | None, actor: str | None, config_path: str | None, as_json: bool) -> None:
    rows = _run(config_path, lambda c: c.decide_tool(name, approve=False, actor=_actor(actor), pin_id=pin_id))
    _out(rows, as_json, ["name", "status", "digest", "decided_by"])
