"""Tool names and tool pins.

Namespacing: a tool `lookup` of the server `crm` is offered to agents as `crm__lookup`
(`SEPARATOR` is two underscores). Server names never contain `_` (config and admin
API refuse them), so the first `__` of a namespaced name always ends the server name and
two servers' tools can never collide, whatever the tools are called. Prompts are named
the same way; resources keep their URIs.

Pinning: a tool definition's digest is the SHA-256 of the RFC 8785 (JSON Canonicalization
Scheme) form of its name, description, input schema and annotations: key order,
whitespace and number spelling cannot change it, any change of meaning does.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import rfc8785

__all__ = [
    "SEPARATOR",
    "Globs",
    "ToolDef",
    "namespaced",
    "pin_digest",
    "pin_fields",
    "split_name",
]

SEPARATOR = "__"


def namespaced(server: str, name: str) -> str:
    return f"{server}{SEPARATOR}{name}"


def split_name(full: str) -> tuple[str, str] | None:
    """(server, tool) of a namespaced name, or None when it has no separator."""
    server, sep, name = full.partition(SEPARATOR)
    if not sep or not server or not name:
        return None
    return server, name


def pin_fields(tool: Mapping[str, Any]) -> dict[str, Any]:
    """What a pin covers, from a tool as listed on the wire (camelCase keys)."""
    return {
        "name": tool.get("name"),
        "description": tool.get("description"),
        "inputSchema": tool.get("inputSchema"),
        "annotations": tool.get("annotations"),
    }


def pin_digest(tool: Mapping[str, Any]) -> str:
    return hashlib.sha256(rfc8785.dumps(pin_fields(tool))).hexdigest()


@dataclass(frozen=True, slots=True)
class ToolDef:
    """A tool as an upstream lists it now: its wire form, digest and flags."""

    server: str
    name: str
    wire: dict[str, Any] = field(hash=False)
    digest: str = ""

    @classmethod
    def of(cls, server: str, wire: dict[str, Any]) -> ToolDef:
        return cls(server, str(wire.get("name", "")), wire, pin_digest(wire))

    @property
    def full_name(self) -> str:
        return namespaced(self.server, self.name)

    @property
    def destructive(self) -> bool:
        """Only an explicit `destructiveHint: true` counts (the spec's default of true for
        unannotated tools would hold every call)."""
        annotations: Any = self.wire.get("annotations")
        return isinstance(annotations, dict) and annotations.get("destructiveHint") is True  # pyright: ignore[reportUnknownMemberType]

    @property
    def input_schema(self) -> dict[str, Any]:
        schema = self.wire.get("inputSchema")
        return schema if isinstance(schema, dict) else {"type": "object"}  # pyright: ignore[reportUnknownVariableType]


class Globs:
    """A list of globs (fnmatch semantics, case-sensitive: `crm__*`, `files__read_file`),
    compiled once into one regular expression."""

    __slots__ = ("_regex", "patterns")

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        joined = "|".join(f"(?:{fnmatch.translate(p)})" for p in self.patterns)
        self._regex = re.compile(joined or r"(?!)")

    def match(self, name: str) -> bool:
        return self._regex.match(name) is not None
