"""Cedar policy text: files in, one policy set out, with stable ids and readable problems.

Every policy gets a stable id: its `@id("...")` annotation, else `FILE#N` (the Nth
policy of the file, counting from 1). The ids become the policies' Cedar ids, so a
decision's reasons name them directly. Problems name the file and the line:

    policies.cedar:12: unexpected token `}`
    policies.cedar:20: policy no-big-models: attribute `nme` on entity type `Lockgate::Model` not found

Cedar's parser reports no positions, so a parse error is located here: the file is cut
into statements at top-level `;`, the failing statement re-parsed line by line.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from importlib import resources
from pathlib import Path
from typing import Literal, cast

import cedarpy
from cedarpy import pst

__all__ = [
    "PolicySource",
    "PolicyText",
    "build_policy_set",
    "context_reads",
    "default_policy_text",
    "read_policy_files",
    "schema_text",
    "split_statements",
    "validation_problems",
]

_EOF = "unexpected end of input"
_QUOTED = re.compile(r"[`']([^`']+)[`']")
_FOR_POLICY = re.compile(r"^for policy `[^`]*`, ")


@dataclass(frozen=True, slots=True)
class PolicySource:
    """Where a policy comes from: `origin` is `file:line`."""

    id: str
    effect: Literal["permit", "forbid"]
    origin: str


@dataclass(frozen=True, slots=True)
class PolicyText:
    """One file's text, its policies (as PST nodes under their stable ids) and problems."""

    label: str  # the path as given, or the package file's name
    text: str
    policies: tuple[tuple[int, PolicySource, pst.Template], ...]  # (Cedar index, ...)
    problems: tuple[str, ...]
    lines: tuple[int, ...]  # first line of each statement, in order


def schema_text() -> str:
    return (resources.files("lockgate.access") / "policies" / "lockgate.cedarschema").read_text()


def default_policy_text() -> str:
    return (resources.files("lockgate.access") / "policies" / "defaults.cedar").read_text()


def split_statements(text: str) -> list[tuple[int, str]]:
    """(first line, text) of each `;`-terminated statement, skipping comments between;
    a trailing unterminated statement is returned too."""
    out: list[tuple[int, str]] = []
    start: int | None = None
    start_line = line = 1
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "/" and text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if c == "\n":
            line += 1
        elif not c.isspace():
            if start is None:
                start, start_line = i, line
            if c == '"':
                i, line = _skip_string(text, i, line)
                continue
            if c == ";":
                out.append((start_line, text[start : i + 1]))
                start = None
        i += 1
    if start is not None:
        out.append((start_line, text[start:].rstrip()))
    return out


def _skip_string(text: str, i: int, line: int) -> tuple[int, int]:
    """From the opening quote at `i`: the index after the closing quote, and the line."""
    i += 1
    while i < len(text) and text[i] != '"':
        if text[i] == "\\":
            i += 1
        if i < len(text) and text[i] == "\n":
            line += 1
        i += 1
    return i + 1, line


def _parse_problems(label: str, text: str, message: str) -> list[str]:
    """Each statement that fails to parse, as `label:line: message`."""
    problems: list[str] = []
    for first, statement in split_statements(text):
        try:
            cedarpy.PolicySet.from_str(statement)
        except ValueError as exc:
            error = str(exc)
            hint = " (a missing `;`?)" if error == _EOF else ""
            problems.append(f"{label}:{first + _error_line(statement, error)}: {error}{hint}")
    return problems or [f"{label}: {message}"]


def _error_line(statement: str, error: str) -> int:
    """The line (from 0) of a statement's parse error: the first line whose prefix fails
    for another reason than running out of input, or the nearest line above it holding
    the token the error quotes (Cedar reports some errors only at the enclosing `}`)."""
    lines = statement.split("\n")
    found = len(lines) - 1
    for k in range(1, len(lines)):
        try:
            cedarpy.PolicySet.from_str("\n".join(lines[:k]))
        except ValueError as exc:
            if _EOF not in str(exc):
                found = k - 1
                break
    if (quoted := _QUOTED.search(error)) is not None:
        token = quoted.group(1)
        return next((i for i in range(found, -1, -1) if token in lines[i]), found)
    return found


def _read_text(label: str, name: str, text: str) -> PolicyText:
    lines = tuple(first for first, _ in split_statements(text))
    try:
        nodes = cedarpy.PolicySet.from_str(text).to_pst()
    except ValueError as exc:
        return PolicyText(label, text, (), tuple(_parse_problems(label, text, str(exc))), lines)
    problems: list[str] = []
    for cedar_id in nodes.templates:
        problems.append(
            f"{_origin(label, lines, cedar_id)}: templates (?principal, ?resource) are not "
            "supported; name the entity instead"
        )
    policies: list[tuple[int, PolicySource, pst.Template]] = []
    for cedar_id, node in nodes.static_policies.items():
        index = _index(cedar_id)
        stable = node.annotations.get("id") or f"{name}#{index + 1}"
        source = PolicySource(stable, node.effect, _origin(label, lines, cedar_id))
        policies.append((index, source, dataclasses.replace(node, id=stable)))
    policies.sort(key=lambda p: p[0])
    return PolicyText(label, text, tuple(policies), tuple(problems), lines)


def _index(cedar_id: str) -> int:
    """Cedar numbers the policies of a text `policy0`, `policy1`, ... in order."""
    digits = cedar_id.removeprefix("policy")
    return int(digits) if digits.isdigit() else 0


def _origin(label: str, lines: Sequence[int], cedar_id: str) -> str:
    index = _index(cedar_id)
    return f"{label}:{lines[index]}" if index < len(lines) else label


def read_policy_files(paths: Sequence[Path], *, include_defaults: bool) -> list[PolicyText]:
    """The defaults (when included) then each file, in order; unreadable or unparseable
    files contribute their problems and no policies."""
    texts: list[PolicyText] = []
    if include_defaults:
        texts.append(_read_text("defaults.cedar", "defaults.cedar", default_policy_text()))
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            texts.append(PolicyText(str(path), "", (), (f"{path}: cannot read: {exc}",), ()))
            continue
        texts.append(_read_text(str(path), path.name, text))
    return texts


def build_policy_set(
    texts: Sequence[PolicyText],
) -> tuple[cedarpy.PolicySet, dict[str, PolicySource], list[str]]:
    """One policy set whose Cedar ids are the stable ids; duplicate ids are problems."""
    sources: dict[str, PolicySource] = {}
    nodes: dict[str, pst.Template] = {}
    problems: list[str] = []
    for text in texts:
        problems.extend(text.problems)
        for _, source, node in text.policies:
            if (seen := sources.get(source.id)) is not None:
                problems.append(
                    f"{source.origin}: duplicate policy id {source.id!r} (also {seen.origin})"
                )
                continue
            sources[source.id] = source
            nodes[source.id] = node
    tree = pst.PolicySet(
        templates=pst.FrozenMap(), static_policies=pst.FrozenMap(nodes), template_links=()
    )
    try:
        policy_set = cedarpy.PolicySet.from_pst(tree)
    except ValueError as exc:
        problems.append(f"policies: {exc}")
        policy_set = cedarpy.PolicySet.from_str("")
    return policy_set, sources, problems


def validation_problems(texts: Sequence[PolicyText], schema: cedarpy.Schema) -> list[str]:
    """Cedar's schema validation of every parsed file, as `file:line: policy ID: message`."""
    problems: list[str] = []
    for text in texts:
        if not text.policies:
            continue
        ids = {f"policy{index}": source for index, source, _ in text.policies}
        result = cedarpy.validate_policies(text.text, schema)
        for error in result.errors:
            source = ids.get(error.policy_id)
            where = f"{source.origin}: policy {source.id}" if source else text.label
            problems.append(f"{where}: {_FOR_POLICY.sub('', error.error)}")
    return problems


def context_reads(policies: Iterable[pst.Template]) -> frozenset[str] | None:
    """The context attributes the policies read (`context.x`, `context has x`); None
    when some policy uses `context` whole, so that all of it matters."""
    context = pst.Var("context")
    reads: set[str] = set()
    stack: list[object] = list(policies)
    while stack:
        node = stack.pop()
        if isinstance(node, pst.GetAttr) and node.base == context:
            reads.add(node.attr)
        elif isinstance(node, pst.HasAttr) and node.base == context:
            reads.add(node.attrs[0])
        elif node == context:
            return None
        elif isinstance(node, Mapping):
            stack.extend(cast("Mapping[str, object]", node).values())
        elif isinstance(node, tuple):
            stack.extend(cast("tuple[object, ...]", node))
        elif is_dataclass(node) and not isinstance(node, type):
            stack.extend(getattr(node, f.name) for f in fields(node))
    return frozenset(reads)
