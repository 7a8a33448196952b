"""Guardrails on tool calls, for the MCP gateway: `await gateway.guard.check_tool(...)`.

    verdict = await gateway.guard.check_tool(
        principal=principal, tool="crm__search", request_id=rid, arguments={"q": "..."},
    )
    if verdict.action == "block": refuse
    elif verdict.action == "needs_approval": await gateway.oversight.hold(...)
    else: call the tool with verdict.value (redacted when verdict.action == "redact")

Arguments go through the policy's input scanners (as `where = "tool_arguments"`), a
result through its output scanners (as `where = "tool_result"`: this is where indirect
prompt injection is caught). The policy is chosen as for chat requests, with the tool
name for `tools` selectors. Every string inside the value (nested lists and objects
included) is scanned; redaction returns a copy, never the stored original. The caller
decides what to do with the action; the verdicts are also in the metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from lockgate.core.context import Principal
from lockgate.guard.engine import (
    GuardEngine,
    Hit,
    heavy,
    redact_text,
    scan_text,
    strongest,
    verdicts,
)
from lockgate.guard.redact import Vault
from lockgate.guard.types import ScanContext

__all__ = ["ToolVerdict", "check_tool"]

ToolAction = Literal["pass", "flag", "redact", "block", "needs_approval"]


@dataclass(frozen=True, slots=True)
class ToolVerdict:
    action: ToolAction
    verdicts: list[dict[str, Any]] = field(default_factory=lambda: [])
    value: Any = None


def _walk(value: Any, visit: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return visit(value)
    if isinstance(value, dict):
        return {k: _walk(v, visit) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, list | tuple):
        return [_walk(v, visit) for v in value]  # pyright: ignore[reportUnknownVariableType]
    return value


def _size(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_size(k) + _size(v) for k, v in value.items())  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, list | tuple):
        return sum(_size(v) for v in value)  # pyright: ignore[reportUnknownVariableType]
    return 0


async def check_tool(
    engine: GuardEngine,
    *,
    principal: Principal | None,
    tool: str,
    request_id: str,
    arguments: Any = None,
    result: Any = None,
) -> ToolVerdict:
    """Scan a tool call's arguments (or, when given, its result); see the module docstring."""
    del request_id  # the caller records the verdicts with its own request
    is_result = result is not None
    value = result if is_result else arguments
    policy = engine.policies.select(model=None, principal=principal, tool=tool)
    bounds = policy.output if is_result else policy.input
    where = "tool_result" if is_result else "tool_arguments"
    if not bounds or value is None:
        return ToolVerdict("pass", [], value)
    vault = Vault()
    hits: list[Hit] = []

    def visit(text: str) -> str:
        found = scan_text(bounds, text, ScanContext(where))
        hits.extend(found)
        return redact_text(text, found, vault) if found else text

    redacted = await engine.run(lambda: _walk(value, visit), _size(value), heavy=heavy(bounds))
    if not hits:
        return ToolVerdict("pass", [], value)
    found = verdicts(hits)
    engine.record({}, hits)
    action = strongest(hits) or "flag"
    return ToolVerdict(action, found, redacted if action == "redact" else value)
