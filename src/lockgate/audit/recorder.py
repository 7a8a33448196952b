"""What the rest of lockgate calls to put an event in the ledger.

    seq = await gateway.audit.record(
        "tool.call", actor=principal, request_id=rid,
        target={"server": "crm", "tool": "crm__delete"}, input=args, output=result,
        decision={"effect": "allow", "policies": ["policy0"]}, guard=[...], latency_ms=3.2,
    )

`record` returns once the event is committed, with its sequence number. `append` takes
the same arguments and returns once the event is durable: on SQLite that is when it is
in the ledger's journal, before the commit (the hot paths use it: gateway requests and
MCP tool calls).
`input` and `output` are any JSON values: their SHA-256 (of the RFC 8785 form) is always
kept; the values themselves only when content capture is on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from lockgate.core.context import Principal

__all__ = ["AuditRecorder"]


class AuditRecorder(Protocol):
    async def record(
        self,
        type: str,
        *,
        actor: Principal | Mapping[str, Any] | None = None,
        request_id: str | None = None,
        trace_id: str | None = None,
        target: Mapping[str, Any] | None = None,
        input: Any = None,
        output: Any = None,
        decision: Mapping[str, Any] | None = None,
        guard: Sequence[Mapping[str, Any]] = (),
        cost_usd: float | None = None,
        latency_ms: float | None = None,
        status: int | None = None,
        error: str | None = None,
        reason: str | None = None,
        reasoning: str | None = None,
        subject: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> int:
        """Append one event; returns its sequence number once it is durable."""
        ...

    async def append(self, type: str, **fields: Any) -> None:
        """Append one event; returns once it is durable (journaled or committed)."""
        ...

    async def search(
        self,
        *,
        type: str | None = None,
        request_id: str | None = None,
        agent: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Events, newest first, as the published schema shapes them."""
        ...
