"""`lockgate keys|teams|users|agents|grants|kill|policy`: thin commands over
`AccessService`, on the database named by the config. Running gateways pick up every
change within `access.refresh_interval` (at once with Redis)."""

from __future__ import annotations

import asyncio
import json
import math
import os
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import click

from lockgate.access.models import Limits
from lockgate.access.services import AccessService, Notifier
from lockgate.admin.schemas import out
from lockgate.cli._store import opened
from lockgate.config.loader import load_config
from lockgate.errors import ConfigError, LockgateError

__all__ = ["register"]

T = TypeVar("T")

_config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), default=None,
    help="Config file (default: ./lockgate.toml, else the embedded default).",
)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _run(config_path: str | None, action: Callable[[AccessService], Awaitable[T]]) -> T:
    try:
        loaded = load_config(config_path, os.environ)
    except ConfigError as exc:
        raise click.UsageError("; ".join(exc.problems)) from None
    gw = loaded.config.gateway

    async def go() -> T:
        async with opened(loaded) as (store, ledger):
            service = AccessService(
                store, loaded.config.access, notifier=Notifier(gw.redis), known_models=loaded.config.models,
                known_providers=loaded.config.providers,
            )
            service.audit = ledger
            return await action(service)

    try:
        return asyncio.run(go())
    except LockgateError as exc:
        click.echo(f"error: {exc.message}", err=True)
        raise SystemExit(2) from None


def _print(records: Any, as_json: bool, columns: list[str]) -> None:
    rows: list[Any] = records if isinstance(records, list) else [records]  # type: ignore[assignment]
    data: list[dict[str, Any]] = [r if isinstance(r, dict) else out(r) for r in rows]
    if as_json:
        click.echo(json.dumps(data if isinstance(records, list) else data[0], indent=2, default=str))
        return
    widths = [max(len(c), *(len(_cell(d.get(c))) for d in data)) if data else len(c) for c in columns]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)))
    for d in data:
        click.echo("  ".join(_cell(d.get(c)).ljust(w) for c, w in zip(columns, widths, strict=True)))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"  # type: ignore[misc]
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def _limit_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for name, kind, text in (
        ("--rpm", int, "requests per minute"), ("--tpm", int, "tokens per minute"),
        ("--max-concurrent", int, "requests in flight"), ("--budget-day", float, "USD per UTC day"),
        ("--budget-month", float, "USD per UTC month"),
    ):
        f = click.option(name, type=kind, default=None, help=text)(f)
    return f


def _limits(kw: dict[str, Any]) -> Limits:
    return Limits(
        rpm=kw.pop("rpm"), tpm=kw.pop("tpm"), max_concurrent=kw.pop("max_concurrent"),
        budget_day_usd=kw.pop("budget_day"), budget_month_usd=kw.pop("budget_month"),
    )


def register(cli: click.Group) -> None:
    for group in (teams, users, agents, keys, grants, kill):
        cli.add_command(group)


# --- teams and users -------------------------------------------------------------------

@click.group()
def teams() -> None:
    """Teams."""


@teams.command("create")
@click.argument("name")
@click.option("--models", default=None, help="Allowed models, comma-separated (default: any).")
@_limit_options
@_config_option
@_json_option
def teams_create(name: str, models: str | None, config_path: str | None, as_json: bool, **kw: Any) -> None:
    limits = _limits(kw)
    team = _run(config_path, lambda s: s.create_team(name, limits=limits, allowed_models=_csv(models)))
    _print(team, as_json, ["id", "name", "allowed_models"])


@teams.command("list")
@_config_option
@_json_option
def teams_list(config_path: str | None, as_json: bool) -> None:
    _print(_run(config_path, lambda s: s.store.list_teams()), as_json, ["id", "name", "allowed_models"])


@click.group()
def users() -> None:
    """Users."""


@users.command("create")
@click.argument("name")
@click.option("--team", default=None)
@_limit_options
@_config_option
@_json_option
def users_create(name: str, team: str | None, config_path: str | None, as_json: bool, **kw: Any) -> None:
    limits = _limits(kw)
    _print(_run(config_path, lambda s: s.create_user(name, team=team, limits=limits)), as_json, ["id", "name", "team_id"])


@users.command("list")
@_config_option
@_json_option
def users_list(config_path: str | None, as_json: bool) -> None:
    _print(_run(config_path, lambda s: s.store.list_users()), as_json, ["id", "name", "team_id"])


# --- agents ----------------------------------------------------------------------------

@click.group()
def agents() -> None:
    """The agent registry: inventory, lifecycle, shadow agents, privilege drift."""


@agents.command("register")
@click.argument("name")
@click.option("--owner", required=True, help="The responsible human.")
@click.option("--purpose", required=True)
@click.option("--risk", "risk_tier", type=click.Choice(["low", "medium", "high", "critical"]), required=True)
@click.option("--team", default=None)
@click.option("--models", default=None, help="Baseline models, comma-separated.")
@click.option("--tools", default=None, help="Baseline tools, comma-separated.")
@_limit_options
@_config_option
@_json_option
def agents_register(name: str, owner: str, purpose: str, risk_tier: str, team: str | None, models: str | None,
                    tools: str | None, config_path: str | None, as_json: bool, **kw: Any) -> None:
    limits = _limits(kw)
    agent = _run(config_path, lambda s: s.register_agent(
        name, owner=owner, purpose=purpose, risk_tier=risk_tier, team=team,
        allowed_models=_csv(models), allowed_tools=_csv(tools), limits=limits,
    ))
    _print(agent, as_json, ["id", "name", "owner", "risk_tier", "status", "allowed_models"])


@agents.command("list")
@_config_option
@_json_option
def agents_list(config_path: str | None, as_json: bool) -> None:
    """The inventory, with last activity, request counts and spend."""
    rows = _run(config_path, lambda s: s.inventory())
    data = [
        {**out(a.agent), "requests": a.requests, "spend_usd": a.spend_usd,
         "last_seen_at": out(a.agent)["last_seen_at"]}
        for a in rows
    ]
    _print(data, as_json, ["name", "owner", "risk_tier", "status", "requests", "spend_usd", "last_seen_at"])


def _status_command(name: str, status: str, help_text: str) -> None:
    @agents.command(name, help=help_text)
    @click.argument("agent")
    @_config_option
    @_json_option
    def command(agent: str, config_path: str | None, as_json: bool) -> None:
        _print(_run(config_path, lambda s: s.set_agent_status(agent, status)), as_json, ["name", "status"])


_status_command("suspend", "suspended", "Suspend an agent (its requests are refused).")
_status_command("activate", "active", "Re-activate a suspended agent.")
_status_command("decommission", "decommissioned", "Decommission an agent: revokes its keys and grants.")


@agents.command("shadow")
@_config_option
@_json_option
def agents_shadow(config_path: str | None, as_json: bool) -> None:
    """Agent names seen in traffic that the registry does not know."""
    rows = _run(config_path, lambda s: s.store.list_shadow_agents())
    _print(rows, as_json, ["name", "count", "first_seen", "last_seen", "last_key_prefix"])


@agents.command("drift")
@click.option("--days", default=30, type=click.IntRange(1, 3660), help="Window in days.")
@_config_option
@_json_option
def agents_drift(days: int, config_path: str | None, as_json: bool) -> None:
    """Granted vs used: grants beyond the baseline, permissions never used."""
    rows = _run(config_path, lambda s: s.drift(days=days))
    data = [{"agent": r.agent, "flagged": r.flagged, "beyond_baseline": list(r.granted_beyond_baseline),
             "unused": list(r.unused), "used": list(r.used)} for r in rows]
    _print(data, as_json, ["agent", "flagged", "beyond_baseline", "unused", "used"])


# --- keys and grants -------------------------------------------------------------------

@click.group()
def keys() -> None:
    """Virtual keys (shown once at creation; stored as hashes)."""


@keys.command("create")
@click.argument("name")
@click.option("--team", default=None)
@click.option("--user", default=None)
@click.option("--agent", default=None, help="Bind the key to a registered agent.")
@click.option("--models", default=None, help="Allowed models, comma-separated (default: any).")
@click.option("--expires-days", type=click.FloatRange(min=0, max=36500, min_open=True), default=None)
@_limit_options
@_config_option
@_json_option
def keys_create(name: str, team: str | None, user: str | None, agent: str | None, models: str | None,
                expires_days: float | None, config_path: str | None, as_json: bool, **kw: Any) -> None:
    limits = _limits(kw)
    if expires_days is not None and not math.isfinite(expires_days):
        raise click.BadParameter("must be a finite number of days", param_hint="--expires-days")
    key, secret = _run(config_path, lambda s: s.create_key(
        name, team=team, user=user, agent=agent, allowed_models=_csv(models),
        expires_in=timedelta(days=expires_days) if expires_days else None, limits=limits,
    ))
    if as_json:
        click.echo(json.dumps({**out(key), "key": secret}, indent=2, default=str))
    else:
        click.echo(f"created key {key.prefix}... ({key.id})")
        click.echo(f"key: {secret}")
        click.echo("Store it now: it is not shown again.")


@keys.command("list")
@_config_option
@_json_option
def keys_list(config_path: str | None, as_json: bool) -> None:
    _print(_run(config_path, lambda s: s.store.list_keys()), as_json,
           ["prefix", "name", "team_id", "agent_id", "expires_at", "revoked_at", "last_used_at"])


@keys.command("revoke")
@click.argument("key")
@_config_option
@_json_option
def keys_revoke(key: str, config_path: str | None, as_json: bool) -> None:
    _print(_run(config_path, lambda s: s.revoke_key(key)), as_json, ["prefix", "name", "revoked_at"])


@click.group()
def grants() -> None:
    """Just-in-time grants: short-lived tokens bound to an agent."""


@grants.command("request")
@click.argument("agent")
@click.option("--models", default=None)
@click.option("--tools", default=None)
@click.option("--max-spend", type=float, default=None, help="USD.")
@click.option("--max-requests", type=int, default=None)
@click.option("--purpose", required=True)
@click.option("--minutes", type=float, default=None, help="Lifetime (default access.grant_default_minutes).")
@_config_option
@_json_option
def grants_request(agent: str, models: str | None, tools: str | None, max_spend: float | None,
                   max_requests: int | None, purpose: str, minutes: float | None, config_path: str | None,
                   as_json: bool) -> None:
    grant, token = _run(config_path, lambda s: s.request_grant(
        agent, models=_csv(models), tools=_csv(tools), max_spend_usd=max_spend, max_requests=max_requests,
        purpose=purpose, minutes=minutes, requested_by="cli",
    ))
    if as_json:
        click.echo(json.dumps({**out(grant), "token": token}, indent=2, default=str))
    else:
        click.echo(f"grant {grant.prefix}... for agent {agent}, expires {grant.expires_at.isoformat()}")
        click.echo(f"token: {token}")


@grants.command("list")
@click.option("--agent", default=None)
@click.option("--active", is_flag=True)
@_config_option
@_json_option
def grants_list(agent: str | None, active: bool, config_path: str | None, as_json: bool) -> None:
    async def action(s: AccessService) -> Any:
        agent_id = (await s.store.get_agent(agent)).id if agent else None
        return await s.store.list_grants(agent_id=agent_id, active_only=active)

    _print(_run(config_path, action), as_json, ["prefix", "agent_id", "models", "tools", "expires_at", "revoked_at"])


@grants.command("revoke")
@click.argument("grant")
@_config_option
@_json_option
def grants_revoke(grant: str, config_path: str | None, as_json: bool) -> None:
    _print(_run(config_path, lambda s: s.revoke_grant(grant)), as_json, ["prefix", "revoked_at"])


# --- kill switches ---------------------------------------------------------------------

@click.group()
def kill() -> None:
    """Kill switches: stop a key, user, team, agent, model, provider, or everything."""


_SCOPES = click.Choice(["global", "team", "user", "agent", "key", "model", "provider", "mcp_server", "tool"])


@kill.command("set")
@click.argument("scope", type=_SCOPES)
@click.argument("target", required=False, default="*")
@click.option("--reason", required=True)
@click.option("--actor", default=None, help="Who (default: $USER).")
@_config_option
@_json_option
def kill_set(scope: str, target: str, reason: str, actor: str | None, config_path: str | None, as_json: bool) -> None:
    who = actor or os.environ.get("USER") or "cli"
    switch = _run(config_path, lambda s: s.set_kill(scope, target, reason=reason, actor=who))
    _print(switch, as_json, ["id", "scope", "target", "reason", "actor", "created_at"])


@kill.command("lift")
@click.argument("scope_or_id")
@click.argument("target", required=False, default=None)
@click.option("--actor", default=None)
@_config_option
@_json_option
def kill_lift(scope_or_id: str, target: str | None, actor: str | None, config_path: str | None, as_json: bool) -> None:
    """Lift a switch by its id, or by SCOPE TARGET (`lockgate kill lift global`)."""
    who = actor or os.environ.get("USER") or "cli"
    if scope_or_id == "global" and target is None:
        target = "*"
    switch = _run(config_path, lambda s: s.lift_kill(scope_or_id, actor=who, target=target))
    _print(switch, as_json, ["id", "scope", "target", "lifted_at", "lifted_by"])


@kill.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include lifted switches.")
@_config_option
@_json_option
def kill_list(show_all: bool, config_path: str | None, as_json: bool) -> None:
    rows = _run(config_path, lambda s: s.store.list_kills(active_only=not show_all))
    _print(rows, as_json, ["id", "scope", "target", "reason", "actor", "created_at", "lifted_at"])
