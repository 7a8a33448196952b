"""`lockgate audit ...` and `lockgate approvals ...`: the ledger and the approval queue,
on the database named by the config (no running gateway needed).

Exit codes: 0 success; 1 verification failed (the report names the first bad
entry); 2 bad usage or configuration.
"""

from __future__ import annotations

import asyncio
import base64
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from lockgate.config.loader import LoadedConfig, load_config
from lockgate.errors import ConfigError, LockgateError

__all__ = ["register"]

T = TypeVar("T")

_config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), default=None,
    help="Config file (default: ./lockgate.toml, else the embedded default).",
)


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _loaded(config_path: str | None) -> LoadedConfig:
    try:
        return load_config(config_path, os.environ)
    except ConfigError as exc:
        _fail("; ".join(exc.problems))
        raise


def _with_ledger(config_path: str | None, action: Callable[[Any, Any], Awaitable[T]]) -> T:
    """Run `action(store, ledger)` on the configured database."""
    from lockgate.audit.setup import open_ledger
    from lockgate.oversight.setup import open_oversight
    from lockgate.store.store import Store

    loaded = _loaded(config_path)

    async def go() -> T:
        store = await Store.open(loaded.config.gateway.database)
        ledger = open_ledger(loaded, store)
        await ledger.start()
        try:
            return await action(store, _Ledger(ledger, open_oversight(loaded, store, ledger, None)))
        finally:
            await ledger.aclose()
            await store.aclose()

    try:
        return asyncio.run(go())
    except ConfigError as exc:
        _fail("; ".join(exc.problems))
        raise
    except LockgateError as exc:
        _fail(exc.message)
        raise


class _Ledger:
    """The ledger, with the approval queue beside it (for `lockgate approvals`)."""

    def __init__(self, ledger: Any, oversight: Any) -> None:
        self._ledger = ledger
        self.oversight = oversight

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ledger, name)


def _time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"not an ISO 8601 time: {value!r}", param_hint=name) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _trusted(public_keys: tuple[str, ...], loaded: LoadedConfig | None) -> set[str] | None:
    keys: set[str] = set()
    for item in public_keys:
        text = Path(item).read_text().strip() if Path(item).is_file() else item.strip()
        try:
            if len(base64.b64decode(text, validate=True)) != 32:
                raise ValueError
        except ValueError:
            raise click.BadParameter(f"{item!r} is not a base64 Ed25519 public key (or a file holding one)",
                                     param_hint="--public-key") from None
        keys.add(text)
    if not keys and loaded is not None:
        from lockgate.audit.setup import key_file_path

        secret = loaded.secret(loaded.config.audit.signing_key)
        path = key_file_path(loaded)
        if secret or (path is not None and path.exists()):
            from lockgate.audit.setup import signer_of

            keys.add(signer_of(loaded).public_b64)
    return keys or None


def register(cli: click.Group) -> None:
    cli.add_command(audit)
    cli.add_command(approvals)


@click.group()
def audit() -> None:
    """The tamper-evident audit ledger."""


@audit.command("verify")
@_config_option
@click.option("--export", "export_path", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Verify an export file instead of the database.")
@click.option("--public-key", "public_keys", multiple=True,
              help="Trusted checkpoint key (base64, or a file); default: the configured signing key.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def audit_verify(config_path: str | None, export_path: str | None, public_keys: tuple[str, ...], as_json: bool) -> None:
    """Check the chain, the Merkle tree and every signed checkpoint; name the first bad entry."""
    from lockgate.audit.verify import verify_database, verify_export

    if export_path is not None:
        report = verify_export(Path(export_path), trusted_keys=_trusted(public_keys, None if public_keys else _maybe(config_path)))
    else:
        loaded = _loaded(config_path)
        _recover_journal(config_path, loaded)
        try:
            report = verify_database(loaded.config.gateway.database, trusted_keys=_trusted(public_keys, loaded))
        except Exception as exc:  # an unreachable or unmigrated database
            _fail(f"cannot read the ledger: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            return
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        rate = f", {report.events / report.seconds:,.0f} events/s" if report.seconds else ""
        click.echo(f"{report.events} events, {report.checkpoints} checkpoints, {report.proofs} proofs checked{rate}")
        if report.ok:
            click.echo(f"ok: the ledger is intact (root {report.root or '-'})")
        else:
            click.echo(f"FAILED: first bad entry: {report.first}", err=True)
            for problem in report.problems[1:10]:
                click.echo(f"  also: {problem}", err=True)
    sys.exit(0 if report.ok else 1)


def _recover_journal(config_path: str | None, loaded: LoadedConfig) -> None:
    """Before verifying: store the events a gateway that died left in its journal
    (opening the ledger does it); a live gateway's own journal is left alone."""
    from lockgate.audit.journal import orphans
    from lockgate.audit.setup import journal_path

    directory = journal_path(loaded)
    if directory is None or not directory.is_dir():
        return
    pending = orphans(directory)
    for orphan in pending:
        orphan.segment.close()  # only looking: the ledger locks them again to replay
    if not pending:
        return

    async def noop(store: Any, ledger: Any) -> None:
        return None

    try:
        _with_ledger(config_path, noop)
    except SystemExit:
        click.echo(f"warning: {len(pending)} journal files could not be stored before verifying", err=True)


def _maybe(config_path: str | None) -> LoadedConfig | None:
    try:
        return load_config(config_path, os.environ)
    except ConfigError:
        return None


@audit.command("export")
@_config_option
@click.option("--since", default=None, help="ISO 8601 time (UTC if no zone).")
@click.option("--until", default=None, help="ISO 8601 time (UTC if no zone).")
@click.option("--format", "fmt", type=click.Choice(["jsonl"]), default="jsonl", show_default=True)
@click.option("--with-payloads", is_flag=True, help="Include kept payloads (content: handle with care).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="File (default: stdout).")
def audit_export(config_path: str | None, since: str | None, until: str | None, fmt: str, with_payloads: bool,
                 output: str | None) -> None:
    """Stream events with their chain hashes and inclusion proofs (JSON Lines)."""
    from lockgate.audit.reader import export_lines

    del fmt
    start, end = _time(since, "--since"), _time(until, "--until")

    async def go(store: Any, ledger: Any) -> int:
        # A CLI process with nothing else on its loop: a plain file is fine here.
        out = open(output, "wb") if output else sys.stdout.buffer  # noqa: SIM115, ASYNC230
        count = 0
        try:
            async for line in export_lines(store, since=start, until=end, with_payloads=with_payloads):
                out.write(line)
                count += 1
        finally:
            if output:
                out.close()
            else:
                out.flush()
        return count - 1

    count = _with_ledger(config_path, go)
    if output:
        click.echo(f"exported {count} events to {output}", err=True)


@audit.command("checkpoint")
@_config_option
def audit_checkpoint(config_path: str | None) -> None:
    """Sign a checkpoint (tree size and root) now."""
    from lockgate.audit.reader import checkpoint_out

    async def go(store: Any, ledger: Any) -> dict[str, Any] | None:
        row = await ledger.checkpoint()
        row = row or await store.latest_checkpoint()
        return checkpoint_out(row) if row else None

    row = _with_ledger(config_path, go)
    if row is None:
        _fail("the ledger is empty: nothing to sign yet")
    click.echo(json.dumps(row, indent=2))


@audit.command("proof")
@_config_option
@click.argument("seq", type=click.IntRange(min=1))
@click.option("--tree-size", type=click.IntRange(min=1), default=None, help="A checkpoint's size (default: newest).")
def audit_proof(config_path: str | None, seq: int, tree_size: int | None) -> None:
    """Inclusion proof of event SEQ in a signed checkpoint."""
    from lockgate.audit.reader import inclusion

    click.echo(json.dumps(_with_ledger(config_path, lambda store, _l: inclusion(store, seq, tree_size)), indent=2))


@audit.command("consistency")
@_config_option
@click.argument("old_size", type=click.IntRange(min=1))
@click.argument("new_size", type=click.IntRange(min=1))
def audit_consistency(config_path: str | None, old_size: int, new_size: int) -> None:
    """Consistency proof between two signed checkpoints."""
    from lockgate.audit.reader import consistency

    click.echo(json.dumps(_with_ledger(config_path, lambda store, _l: consistency(store, old_size, new_size)), indent=2))


@audit.command("search")
@_config_option
@click.option("--type", "type_", default=None)
@click.option("--request-id", default=None)
@click.option("--agent", default=None)
@click.option("--model", default=None)
@click.option("--decision", default=None)
@click.option("--since", default=None)
@click.option("--until", default=None)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
def audit_search(config_path: str | None, type_: str | None, request_id: str | None, agent: str | None,
                 model: str | None, decision: str | None, since: str | None, until: str | None, limit: int) -> None:
    """Events, newest first, one JSON object per line."""
    start, end = _time(since, "--since"), _time(until, "--until")

    async def go(store: Any, ledger: Any) -> list[dict[str, Any]]:
        return await ledger.search(type=type_, request_id=request_id, agent=agent, model=model, decision=decision,
                                   since=start, until=end, limit=limit)

    for event in _with_ledger(config_path, go):
        click.echo(json.dumps(event))


@audit.command("shred")
@_config_option
@click.argument("subject")
def audit_shred(config_path: str | None, subject: str) -> None:
    """Erase a data subject's payloads by deleting their key (proofs stay valid)."""
    if not _with_ledger(config_path, lambda store, ledger: ledger.shred(subject)):
        _fail(f"no key for data subject {subject!r} (payloads are encrypted only with [audit] encryption_key)")
    click.echo(f"shredded: payloads of {subject!r} can no longer be read")


@audit.command("public-key")
@_config_option
def audit_public_key(config_path: str | None) -> None:
    """Print the checkpoint signing key's public half (base64), to pin in verifiers."""
    from lockgate.audit.setup import signer_of

    try:
        click.echo(signer_of(_loaded(config_path)).public_b64)
    except ConfigError as exc:
        _fail(exc.message)


@click.group()
def approvals() -> None:
    """The human oversight queue."""


def _oversight(config_path: str | None, action: Callable[[Any], Awaitable[T]]) -> T:
    return _with_ledger(config_path, lambda store, ledger: action(ledger.oversight))


@approvals.command("list")
@_config_option
@click.option("--status", type=click.Choice(["pending", "approved", "denied", "expired", "consumed"]), default="pending",
              show_default=True)
@click.option("--json", "as_json", is_flag=True)
def approvals_list(config_path: str | None, status: str, as_json: bool) -> None:
    """Items in the queue."""
    items = _oversight(config_path, lambda o: o.list(status))
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    click.echo(f"{'ID':36}  {'KIND':10}  {'AGENT':16}  {'CREATED':25}  REASON")
    for item in items:
        click.echo(f"{item['id']:36}  {item['kind']:10}  {item.get('agent') or '-'!s:16}  {item['created_at'][:25]:25}  {item['reason']}")


@approvals.command("show")
@_config_option
@click.argument("approval_id")
def approvals_show(config_path: str | None, approval_id: str) -> None:
    """What was asked, by whom, why it was held, and the evidence."""
    click.echo(json.dumps(_oversight(config_path, lambda o: o.get(approval_id)), indent=2))


def _decide(config_path: str | None, approval_id: str, approve: bool, reviewer: str | None, comment: str | None) -> None:
    who = reviewer or getpass.getuser()
    item = _oversight(config_path, lambda o: o.decide(approval_id, approve=approve, reviewer=who, comment=comment))
    click.echo(f"{item['status']}: {approval_id} by {who}")


@approvals.command("approve")
@_config_option
@click.argument("approval_id")
@click.option("--reviewer", default=None, help="Who decides (default: the login name).")
@click.option("--comment", "-m", default=None)
def approvals_approve(config_path: str | None, approval_id: str, reviewer: str | None, comment: str | None) -> None:
    """Approve a held item."""
    _decide(config_path, approval_id, True, reviewer, comment)


@approvals.command("deny")
@_config_option
@click.argument("approval_id")
@click.option("--reviewer", default=None, help="Who decides (default: the login name).")
@click.option("--comment", "-m", default=None)
def approvals_deny(config_path: str | None, approval_id: str, reviewer: str | None, comment: str | None) -> None:
    """Deny a held item."""
    _decide(config_path, approval_id, False, reviewer, comment)
