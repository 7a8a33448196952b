"""The call a stage makes to hold something for a human.

    await gateway.oversight.hold(
        kind="tool_call", actor=principal, request_id=rid,
        reason="tool crm__delete is annotated destructive",
        summary={"tool": "crm__delete", "arguments": redacted_args},
        evidence={"estimated_cost_usd": 0.0},
    )

`hold` returns the approval id once a reviewer approves; it raises `ApprovalDenied`
when one denies, `ApprovalTimedOut` when nobody decides within the timeout, and
`ApprovalPending` (202) at once when the caller asked not to wait (`wait=False`).
Every step is an audit event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from lockgate.core.context import Principal

__all__ = ["Holder"]


class Holder(Protocol):
    async def hold(
        self,
        *,
        kind: str,
        actor: Principal | None,
        request_id: str,
        reason: str,
        summary: Mapping[str, Any],
        evidence: Mapping[str, Any] | None = None,
        wait: bool = True,
        timeout: float | None = None,
    ) -> str: ...
