"""`lockgate prompts ...` and `lockgate experiments ...`: thin commands over the prompt
registry's services, on the database the config names. Running gateways pick every
change up within `access.refresh_interval` (at once with Redis).

Exit codes: 0 done; 1 a promotion refused by its quality gate (the failing metrics are
named on stderr); 2 anything else a user can fix (a message on stderr).
"""

from __future__ import annotations

import asyncio
import getpass
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from lockgate.config.loader import LoadedConfig, load_config
from lockgate.errors import ConfigError, GateFailed, LockgateError

__all__ = ["Services", "author_name", "config_option", "echo_json", "json_option", "load", "print_table", "register",
           "run_services"]

T = TypeVar("T")

config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), default=None,
    help="Config file (default: ./lockgate.toml, else the embedded default).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
_author_option = click.option(
    "--author", envvar="LOCKGATE_AUTHOR", default=None, help="Who makes the change (default: $LOCKGATE_AUTHOR, else your login)."
)


@dataclass
class Services:
    loaded: LoadedConfig
    prompts: Any  # PromptService
    experiments: Any  # ExperimentService
    store: Any


def load(config_path: str | None) -> LoadedConfig:
    import os

    try:
        return load_config(config_path, os.environ)
    except ConfigError as exc:
        raise click.UsageError("; ".join(exc.problems)) from None


def run_services(config_path: str | None, action: Callable[[Services], Awaitable[T]]) -> T:
    from lockgate.access.services import Notifier
    from lockgate.prompts.experiments import ExperimentService
    from lockgate.prompts.registry import config_experiments
    from lockgate.prompts.service import PromptService

    loaded = load(config_path)
    config = loaded.config

    async def go() -> T:
        from lockgate.cli._store import opened

        # Label moves made here are ledger events too, as the gateway's are.
        async with opened(loaded) as (store, ledger):
            notifier = Notifier(config.gateway.redis)
            static = config_experiments(config.experiments, loaded_at=_now())
            services = Services(
                loaded,
                PromptService(store, notifier=notifier, audit=lambda: ledger),  # the gate is found when promoting
                ExperimentService(store, notifier=notifier, static=static, known_models=config.models),
                store,
            )
            return await action(services)

    try:
        return asyncio.run(go())
    except GateFailed as exc:
        click.echo(f"error: {exc.message}", err=True)
        for failure in exc.failures:
            click.echo(f"  failing: {failure}", err=True)
        raise SystemExit(1) from None
    except LockgateError as exc:
        click.echo(f"error: {exc.message}", err=True)
        raise SystemExit(2) from None


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def author_name(author: str | None) -> str:
    if author:
        return author
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "cli"


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "-"  # pyright: ignore[reportUnknownVariableType]
    return str(value)


def register(cli: click.Group) -> None:
    from lockgate.cli.experiments import experiments

    cli.add_command(prompts)
    cli.add_command(experiments)


# --- prompts -----------------------------------------------------------------------------

@click.group()
def prompts() -> None:
    """The prompt registry: versions, labels, prompts as code (docs/prompts.md)."""


def _inline_content(model: str | None, system: str | None, user: str | None, template: str | None,
                    variables: tuple[str, ...], params: tuple[str, ...]) -> dict[str, Any]:
    if model is None:
        raise click.UsageError("give --file, or --model with --system/--user or --template")
    content: dict[str, Any] = {"model": model}
    if template is not None:
        content |= {"kind": "text", "template": template}
    else:
        content["messages"] = [{"role": r, "content": t} for r, t in (("system", system), ("user", user)) if t is not None]
    content["variables"] = {v.partition(":")[0]: v.partition(":")[2] or "string" for v in variables}
    parsed: dict[str, Any] = {}
    for p in params:
        key, sep, raw = p.partition("=")
        if not sep:
            raise click.UsageError(f"--param {p!r}: use KEY=VALUE")
        try:
            parsed[key] = json.loads(raw)
        except json.JSONDecodeError:
            parsed[key] = raw
    content["params"] = parsed
    return content


@prompts.command("create")
@click.argument("name")
@click.option("--file", "file", type=click.Path(exists=True, dir_okay=False), default=None, help="A prompt file (TOML).")
@click.option("--model", default=None, help="The model the prompt calls.")
@click.option("--system", default=None, help="A system message template.")
@click.option("--user", default=None, help="A user message template.")
@click.option("--template", default=None, help="A text prompt's template (instead of messages).")
@click.option("--var", "variables", multiple=True, help="A declared variable: NAME or NAME:TYPE.")
@click.option("--param", "params", multiple=True, help="A parameter: KEY=VALUE (e.g. temperature=0.2).")
@click.option("-m", "--message", default="", help="What changed (kept with the version).")
@_author_option
@config_option
@json_option
def prompts_create(name: str, file: str | None, model: str | None, system: str | None, user: str | None,
                   template: str | None, variables: tuple[str, ...], params: tuple[str, ...], message: str,
                   author: str | None, config_path: str | None, as_json: bool) -> None:
    """Create a version of NAME (none when the content equals the newest version's)."""
    if file is not None:
        import tomllib

        try:
            content = tomllib.loads(Path(file).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise click.UsageError(f"{file}: {exc}") from None
        content.pop("name", None)
    else:
        content = _inline_content(model, system, user, template, variables, params)
    version, created = run_services(config_path, lambda s: s.prompts.create(name, content, author=author_name(author), message=message))
    if as_json:
        from lockgate.admin.prompts import version_out

        echo_json({**version_out(version), "created": created})
        return
    what = "created" if created else "unchanged, newest is"
    click.echo(f"{name}: {what} version {version.version} ({version.content_hash})")
    _warn_unknown_model(config_path, version.content.get("model"))


def _warn_unknown_model(config_path: str | None, model: Any) -> None:
    loaded = load(config_path)
    if loaded.config.models and model not in loaded.config.models:
        click.echo(f"warning: model {model!r} is not in this config's [models]; requests will fail until it is", err=True)


@prompts.command("list")
@config_option
@json_option
def prompts_list(config_path: str | None, as_json: bool) -> None:
    """Every prompt with its newest version and labels."""
    rows = run_services(config_path, lambda s: s.store.list_prompts())
    data = [{"name": p.name, "latest": p.latest, "labels": p.labels, "updated_at": p.updated_at.isoformat()} for p in rows]
    echo_json(data) if as_json else print_table(data, ["name", "latest", "labels", "updated_at"])


@prompts.command("show")
@click.argument("name")
@click.argument("ref", required=False)
@config_option
@json_option
def prompts_show(name: str, ref: str | None, config_path: str | None, as_json: bool) -> None:
    """A version (REF: a number, a label or `latest`; default the newest) as a prompt file."""
    from lockgate.admin.prompts import version_out
    from lockgate.prompts.files import dumps_prompt

    async def go(s: Services) -> tuple[Any, dict[str, int]]:
        return await s.prompts.get(name, ref), await s.store.get_prompt_labels(name)

    version, labels = run_services(config_path, go)
    if as_json:
        echo_json({**version_out(version), "labels": [k for k, v in labels.items() if v == version.version]})
        return
    on = ", ".join(sorted(k for k, v in labels.items() if v == version.version)) or "none"
    click.echo(f"# {name} version {version.version}  {version.content_hash}")
    click.echo(f"# by {version.author} at {version.created_at.isoformat()}; labels: {on}")
    if version.message:
        click.echo(f"# {version.message}")
    click.echo(dumps_prompt(name, version.content), nl=False)


@prompts.command("diff")
@click.argument("name")
@click.argument("a")
@click.argument("b")
@config_option
def prompts_diff(name: str, a: str, b: str, config_path: str | None) -> None:
    """A unified diff between two versions (numbers or labels)."""
    text = run_services(config_path, lambda s: s.prompts.diff(name, a, b))
    click.echo(text if text else f"{name}: {a} and {b} have the same content", nl=not text)


def _dir(config_path: str | None, directory: str | None) -> Path:
    if directory is not None:
        return Path(directory)
    dirs = load(config_path).config.prompts.dirs
    if not dirs:
        raise click.UsageError("give a folder, or set [prompts] dirs in the config")
    return Path(dirs[0])


@prompts.command("push")
@click.argument("directory", required=False)
@click.option("-m", "--message", default="", help="Kept with each version created.")
@_author_option
@config_option
@json_option
def prompts_push(directory: str | None, message: str, author: str | None, config_path: str | None, as_json: bool) -> None:
    """Sync a folder of prompt files (NAME.toml) into the registry: a version for each
    changed file, none for the others."""
    from lockgate.errors import InvalidRequest
    from lockgate.prompts.files import read_prompt_dir

    folder = _dir(config_path, directory)
    try:
        files = read_prompt_dir(folder)
    except InvalidRequest as exc:
        click.echo(f"error: {exc.message}", err=True)
        raise SystemExit(2) from None
    results = run_services(config_path, lambda s: s.prompts.push(files, author=author_name(author), message=message))
    data = [{"name": v.prompt, "version": v.version, "created": created, "content_hash": v.content_hash} for v, created in results]
    if as_json:
        echo_json(data)
        return
    for d in data:
        click.echo(f"{'created  ' if d['created'] else 'unchanged'} {d['name']} version {d['version']}")
    created = sum(1 for d in data if d["created"])
    click.echo(f"{folder}: {created} created, {len(data) - created} unchanged")


@prompts.command("pull")
@click.argument("directory", required=False)
@click.option("--label", default=None, help="Write the version this label points at (default: the newest).")
@click.option("--name", "names", multiple=True, help="Only these prompts.")
@config_option
def prompts_pull(directory: str | None, label: str | None, names: tuple[str, ...], config_path: str | None) -> None:
    """Write prompts to a folder, one NAME.toml each (pushing it back creates nothing)."""
    from lockgate.errors import NotFound
    from lockgate.prompts.files import write_prompt

    folder = _dir(config_path, directory)

    async def go(s: Services) -> list[tuple[str, Any]]:
        found: list[tuple[str, Any]] = []
        for name in names or [p.name for p in await s.store.list_prompts()]:
            try:
                found.append((name, await s.prompts.get(name, label)))
            except NotFound:
                if not names and label is not None:
                    continue  # that prompt has no such label: nothing to write
                raise
        return found

    for name, version in run_services(config_path, go):
        path = write_prompt(folder, name, version.content)
        click.echo(f"{path}: {name} version {version.version}")


def _promote(name: str, version: int, label: str, override_reason: str | None, actor: str | None,
             config_path: str | None, as_json: bool) -> None:
    async def go(s: Services) -> Any:
        from lockgate.prompts import gate

        # The evaluations package's gate, when installed (imported only here: it is heavy).
        s.prompts.gatekeeper = gate.find_gatekeeper(config=s.loaded, store=s.store, labels=s.store.get_prompt_labels)
        return await s.prompts.promote(name, version, label, actor=author_name(actor), override_reason=override_reason)

    event = run_services(config_path, go)
    if as_json:
        from lockgate.admin.prompts import event_out

        echo_json(event_out(event))
        return
    moved = f"{event.previous_version} -> {event.version}" if event.previous_version else f"-> {event.version}"
    click.echo(f"{name}@{label}: {moved}")
    if event.gate is not None:
        state = "passed" if event.gate.get("passed") else "FAILED, overridden: " + str(event.reason)
        click.echo(f"quality gate: {state}" + "".join(f"\n  failing: {f}" for f in event.gate.get("failures", [])))


@prompts.command("promote")
@click.argument("name")
@click.argument("version", type=click.IntRange(1))
@click.option("--label", required=True, help="production, staging, or a label of your own.")
@click.option("--override-reason", default=None, help="Promote even if the quality gate fails (recorded).")
@click.option("--actor", envvar="LOCKGATE_AUTHOR", default=None, help="Who promotes (default: your login).")
@config_option
@json_option
def prompts_promote(name: str, version: int, label: str, override_reason: str | None, actor: str | None,
                    config_path: str | None, as_json: bool) -> None:
    """Point LABEL at VERSION. A quality gate covering the label must pass (exit 1
    naming the failing metrics), unless --override-reason is given."""
    _promote(name, version, label, override_reason, actor, config_path, as_json)


@prompts.group("label")
def label_group() -> None:
    """Labels: movable pointers to versions, with their history."""


@label_group.command("set")
@click.argument("name")
@click.argument("label")
@click.argument("version", type=click.IntRange(1))
@click.option("--override-reason", default=None, help="Move it even if the quality gate fails (recorded).")
@click.option("--actor", envvar="LOCKGATE_AUTHOR", default=None)
@config_option
@json_option
def label_set(name: str, label: str, version: int, override_reason: str | None, actor: str | None,
              config_path: str | None, as_json: bool) -> None:
    """The same as `promote NAME VERSION --label LABEL`."""
    _promote(name, version, label, override_reason, actor, config_path, as_json)


@label_group.command("list")
@click.argument("name")
@click.option("--label", default=None, help="Only this label's history.")
@config_option
@json_option
def label_list(name: str, label: str | None, config_path: str | None, as_json: bool) -> None:
    """The current labels and every move (newest first)."""
    from lockgate.admin.prompts import event_out

    async def go(s: Services) -> tuple[dict[str, int], list[Any]]:
        return await s.store.get_prompt_labels(name), await s.prompts.history(name, label)

    labels, history = run_services(config_path, go)
    if as_json:
        echo_json({"labels": labels, "history": [event_out(e) for e in history]})
        return
    for key, value in sorted(labels.items()):
        click.echo(f"{key} -> {value}")
    click.echo("")
    rows = [{**event_out(e), "gate": "-" if e.gate is None else ("passed" if e.gate.get("passed") else "failed")}
            for e in history]
    print_table(rows, ["at", "label", "previous_version", "version", "actor", "gate", "reason"])


@label_group.command("remove")
@click.argument("name")
@click.argument("label")
@click.option("--reason", default=None)
@click.option("--actor", envvar="LOCKGATE_AUTHOR", default=None)
@config_option
def label_remove(name: str, label: str, reason: str | None, actor: str | None, config_path: str | None) -> None:
    """Remove a label (requests naming it then get 404)."""
    event = run_services(config_path, lambda s: s.prompts.remove_label(name, label, actor=author_name(actor), reason=reason))
    click.echo(f"{name}@{label}: removed (was {event.previous_version})")


@prompts.command("render")
@click.argument("name")
@click.argument("ref", required=False)
@click.option("--vars", "variables", default=None, help='The variables as JSON: \'{"customer": "Ada"}\'.')
@config_option
def prompts_render(name: str, ref: str | None, variables: str | None, config_path: str | None) -> None:
    """Preview the messages a request with these variables would start with."""
    try:
        values = json.loads(variables) if variables else None
    except json.JSONDecodeError as exc:
        raise click.UsageError(f"--vars: {exc}") from None

    async def go(s: Services) -> list[dict[str, str]]:
        return s.prompts.render(await s.prompts.get(name, ref), values)

    for m in run_services(config_path, go):
        click.echo(f"[{m['role']}]\n{m['content']}")

