"""The registry: every upstream server, its live tools, and their pins, in memory.

The hot path reads `entries` (namespaced name -> `ToolEntry`) and nothing else: no
database round trip per call. The index is rebuilt when an upstream lists its tools
(connect, reconnect, the periodic refresh) and when the control plane changes
(an approval, a registration: the state version moves and `reload` reads the servers
and pins once).

A tool's `status`:

    ok           the server is approved and the tool's definition is the approved pin
    quarantined  the server is not approved yet
    pending      the tool was never approved (new since the server's approval)
    changed      the tool's definition differs from the approved pin (a rug pull, or a
                 legitimate update): blocked until an admin approves the new definition
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from jsonschema import SchemaError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from mcp.types import Tool

from lockgate.config.mcp import McpConfig, is_secret_ref
from lockgate.mcp.catalog import ToolDef
from lockgate.mcp.models import McpServerRecord, ToolPin
from lockgate.mcp.upstream import Upstream, UpstreamSettings
from lockgate.store.store import Store

__all__ = ["Registry", "ToolEntry", "ToolStatus", "read_secret"]

_log = logging.getLogger("lockgate.mcp")
ToolStatus = Literal["ok", "quarantined", "pending", "changed"]


@dataclass(slots=True)
class ToolEntry:
    tool: ToolDef
    upstream: Upstream
    status: ToolStatus
    approved_digest: str | None = None
    validator: Validator | None = None
    schema_error: str | None = None
    listed: Tool | None = None  # as agents see it (namespaced)
    quick: Callable[[dict[str, Any]], bool] | None = None  # see `quick_check`


def _validator(schema: dict[str, Any]) -> tuple[Validator | None, str | None]:
    try:
        cls = validator_for(schema)
        cls.check_schema(schema)
        return cls(schema), None
    except SchemaError as exc:
        return None, f"the tool's input schema is invalid: {exc.message}"


# JSON types as the JSON decoder makes them; stricter than jsonschema (an integer-valued
# float is not taken for an "integer"), which only sends such a value the slow way.
_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: type(v) is str,
    "integer": lambda v: type(v) is int,
    "number": lambda v: type(v) is int or type(v) is float,
    "boolean": lambda v: type(v) is bool,
    "null": lambda v: v is None,
    "object": lambda v: type(v) is dict,
    "array": lambda v: type(v) is list,
}
_ANNOTATIONS = frozenset({"title", "description", "default", "examples", "format", "deprecated"})
_TOP = frozenset({"type", "properties", "required", "additionalProperties", "title", "description", "$schema"})


def quick_check(schema: Mapping[str, Any]) -> Callable[[dict[str, Any]], bool] | None:
    """A check of arguments for the schemas SDK servers generate (an object of typed
    properties, some required, maybe no others), or None for any other schema.

    It never passes what the schema's jsonschema validator refuses; what it refuses goes
    to that validator, which finds the error (or passes it after all). `format` is an
    annotation there too (no format checker). With it, a valid call skips jsonschema."""
    if not _TOP.issuperset(schema) or schema.get("type", "object") != "object":
        return None
    properties: Any = schema.get("properties", {})
    required: Any = schema.get("required", [])
    more: Any = schema.get("additionalProperties", True)
    if not isinstance(properties, dict) or not isinstance(required, list) or not isinstance(more, bool):
        return None
    tests: dict[str, Callable[[Any], bool]] = {}
    for name, sub in cast("dict[str, Any]", properties).items():
        test = _property_test(sub)
        if test is None:
            return None
        tests[name] = test
    needed = tuple(cast("list[Any]", required))
    if not all(isinstance(n, str) for n in needed):
        return None
    return _checker(needed, tests, closed=not more)


def _checker(
    needed: tuple[str, ...], tests: dict[str, Callable[[Any], bool]], *, closed: bool,
) -> Callable[[dict[str, Any]], bool]:
    def check(arguments: dict[str, Any]) -> bool:
        for name in needed:
            if name not in arguments:
                return False
        for name, value in arguments.items():
            test = tests.get(name)
            if test is None:
                if closed:
                    return False
            elif not test(value):
                return False
        return True

    return check


def _property_test(sub: Any) -> Callable[[Any], bool] | None:
    if sub is True or sub == {}:
        return lambda v: True
    if not isinstance(sub, dict):
        return None
    spec = cast("dict[str, Any]", sub)
    if not (_ANNOTATIONS | {"type"}).issuperset(spec) or "type" not in spec:
        return None
    kind: Any = spec["type"]
    kinds: list[Any] = cast("list[Any]", kind) if isinstance(kind, list) else [kind]
    tests = [_JSON_TYPES.get(k) if isinstance(k, str) else None for k in kinds]
    if not tests or any(t is None for t in tests):
        return None
    found = [t for t in tests if t is not None]
    if len(found) == 1:
        return found[0]
    return lambda v: any(t(v) for t in found)


class Registry:
    def __init__(self, config: McpConfig, store: Store, *, secret: Callable[[str], str | None]) -> None:
        self._config = config
        self._store = store
        self._secret = secret
        self.servers: dict[str, McpServerRecord] = {}
        self.upstreams: dict[str, Upstream] = {}
        self.entries: dict[str, ToolEntry] = {}
        self._approved: dict[tuple[str, str], str] = {}  # (server id, tool) -> digest
        self._known: set[tuple[str, str, str]] = set()  # (server id, tool, digest) in the store
        self._lock = asyncio.Lock()

    # --- the control plane --------------------------------------------------------

    async def sync_config(self) -> None:
        """Make the store know every config server (new ones arrive quarantined)."""
        for name, server in self._config.servers.items():
            await self._store.upsert_mcp_server(
                name, transport="http" if server.url else "stdio", url=server.url, command=server.command,
                args=server.args, headers=self._config_headers(name), description=server.description,
                source="config",
            )

    def _config_headers(self, name: str) -> dict[str, str]:
        server = self._config.servers[name]
        headers = dict(server.headers)
        if server.bearer:
            headers["Authorization"] = f"Bearer {server.bearer}"
        return headers

    async def reload(self) -> None:
        """Read servers and pins from the store; open, replace or close upstreams."""
        async with self._lock:
            servers, pins = await self._store.load_mcp_registry()
            self._apply_pins(pins)
            fresh = {s.name: s for s in servers}
            for name in list(self.upstreams):
                record = fresh.get(name)
                if record is None or _moved(self.upstreams[name].settings.record, record):
                    upstream = self.upstreams.pop(name)
                    await upstream.aclose()
            for name, record in fresh.items():
                if name not in self.upstreams:
                    self.upstreams[name] = Upstream(self._settings(record), on_tools=self._tools_listed)
            self.servers = fresh
            self._rebuild()

    def _apply_pins(self, pins: list[ToolPin]) -> None:
        self._approved = {(p.server_id, p.tool): p.digest for p in pins if p.status == "approved"}
        self._known = {(p.server_id, p.tool, p.digest) for p in pins}

    def _settings(self, record: McpServerRecord) -> UpstreamSettings:
        config = self._config.servers.get(record.name) if record.source == "config" else None
        headers = {k: self._resolve(v) for k, v in record.headers.items()}
        env = {k: self._resolve(v) for k, v in (config.env if config else {}).items()}
        timeout = config.timeout if config and config.timeout else self._config.call_timeout
        return UpstreamSettings(
            record=record, headers=headers, env=env, cwd=config.cwd if config else None,
            call_timeout=timeout, connect_timeout=self._config.connect_timeout,
            max_reply_bytes=self._config.max_reply_bytes,
        )

    def _resolve(self, value: str) -> str:
        """A literal, or a secret reference (`Bearer env::X` too) resolved; a missing
        secret becomes empty, and the upstream refuses us (never the client's token)."""
        prefix, _, rest = value.rpartition(" ")
        ref = rest if prefix else value
        if not is_secret_ref(ref):
            return value
        resolved = self._secret(ref) or ""
        return f"{prefix} {resolved}" if prefix else resolved

    # --- the upstreams ------------------------------------------------------------

    async def _tools_listed(self, upstream: Upstream) -> None:
        record = self.servers.get(upstream.name)
        if record is None:
            return
        new = [
            (t.name, t.digest, t.wire) for t in upstream.tools.values()
            if (record.id, t.name, t.digest) not in self._known
        ]
        if new:
            try:
                await self._store.record_tool_definitions(record.id, new)
                self._known |= {(record.id, name, digest) for name, digest, _ in new}
            except Exception as exc:  # the control plane is down: serve what we have
                _log.warning("could not record tool definitions of %s: %s", upstream.name, exc)
        self._rebuild()

    async def aclose(self) -> None:
        for upstream in self.upstreams.values():
            with contextlib.suppress(Exception):
                await upstream.aclose()
        self.upstreams.clear()

    # --- the index ----------------------------------------------------------------

    def _rebuild(self) -> None:
        entries: dict[str, ToolEntry] = {}
        for name, upstream in sorted(self.upstreams.items()):
            record = self.servers.get(name)
            if record is None:
                continue
            for tool in upstream.tools.values():
                approved = self._approved.get((record.id, tool.name))
                status: ToolStatus
                if record.status != "approved":
                    status = "quarantined"
                elif approved is None:
                    status = "pending"
                elif approved != tool.digest:
                    status = "changed"
                else:
                    status = "ok"
                previous = self.entries.get(tool.full_name)
                if previous is not None and previous.tool.digest == tool.digest:
                    validator, error, quick = previous.validator, previous.schema_error, previous.quick
                else:
                    validator, error = _validator(tool.input_schema)
                    quick = quick_check(tool.input_schema) if validator is not None else None
                if previous is not None and previous.tool.digest == tool.digest and previous.listed is not None:
                    listed = previous.listed
                else:
                    listed = Tool.model_validate(dict(tool.wire, name=tool.full_name))
                entries[tool.full_name] = ToolEntry(tool, upstream, status, approved, validator, error, listed, quick)
        self.entries = entries

    def input_schema(self, full_name: str) -> Mapping[str, Any] | None:
        entry = self.entries.get(full_name)
        return entry.tool.input_schema if entry is not None else None


def _moved(old: McpServerRecord, new: McpServerRecord) -> bool:
    return (old.transport, old.url, old.command, old.args, old.headers) != (
        new.transport, new.url, new.command, new.args, new.headers)


def read_secret(env: Mapping[str, str], secrets: Mapping[str, str]) -> Callable[[str], str | None]:
    """Resolve `env::NAME` / `file::/path`: the config's resolved secrets first, then the
    environment (admin-registered servers name secrets the config does not)."""

    def resolve(ref: str) -> str | None:
        if ref in secrets:
            return secrets[ref]
        kind, _, target = ref.partition("::")
        if kind == "env":
            return env.get(target) or None
        try:
            return Path(target).read_text(encoding="utf-8").strip() or None
        except OSError:
            return None

    return resolve
