"""The approvals stage: hold a request that an approval rule matches.

Rules (`[[approvals.rules]]`) match on agent, agent risk tier, team, model and the
request's estimated cost (prompt estimate plus max_tokens at the model's price).
The caller waits for the decision (mode `wait`), or gets 202 with an approval id
(mode `async`, or the header `x-lockgate-approval-mode: async`) and sends the same
request again with `x-lockgate-approval: ID` once it is approved.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

import msgspec

from lockgate.access.state import AccessState
from lockgate.audit.canonical import payload_bytes
from lockgate.config.audit import ApprovalRule, ApprovalsConfig
from lockgate.core.context import RequestContext
from lockgate.core.types import Usage
from lockgate.errors import InvalidRequest
from lockgate.oversight.queue import Oversight
from lockgate.usage.pricing import PriceTable, cost

__all__ = ["ApprovalStage", "redact_preview", "request_hash"]

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_DIGITS = re.compile(r"\d[\d -]{6,}\d")
_PREVIEW = 500


def redact_preview(text: str) -> str:
    """What a reviewer sees of a prompt: clipped, with e-mails and long numbers masked."""
    text = _DIGITS.sub("[NUMBER]", _EMAIL.sub("[EMAIL]", text[: _PREVIEW * 2]))
    return text if len(text) <= _PREVIEW else text[:_PREVIEW] + "…"


def request_hash(ctx: RequestContext) -> str:
    body: Any = msgspec.to_builtins(ctx.chat if ctx.chat is not None else ctx.embedding)
    if isinstance(body, dict):
        body.pop("stream", None)
        body.pop("stream_options", None)
    return hashlib.sha256(payload_bytes(body)).hexdigest()


class ApprovalStage:
    name = "approvals"

    def __init__(
        self,
        oversight: Oversight,
        config: ApprovalsConfig,
        *,
        state: Callable[[], AccessState],
        prices: PriceTable,
        first_route: Callable[[str], str | None],
        reserve_tokens: int,
    ) -> None:
        self._oversight = oversight
        self._config = config
        self._state = state
        self._prices = prices
        self._first_route = first_route
        self._reserve = reserve_tokens

    def _estimate(self, ctx: RequestContext) -> float:
        chat = ctx.chat
        if chat is None:
            return 0.0
        chars = sum(len(m.text()) for m in chat.messages)
        usage = Usage(input_tokens=chars // 3 + 8 * len(chat.messages), output_tokens=chat.max_tokens or self._reserve)
        return cost(self._prices.price_for(ctx.model, self._first_route(ctx.model)), usage)

    def _match(self, ctx: RequestContext, estimate: float) -> ApprovalRule | None:
        p = ctx.principal
        state = self._state()
        agent = state.agents_by_id.get(p.agent_id) if p and p.agent_id else None
        team = state.teams.get(p.team_id) if p and p.team_id else None
        for rule in self._config.rules:
            if rule.tools:
                continue  # tool rules are the MCP gateway's
            if rule.agents and (p is None or (p.agent_name or p.shadow_agent) not in rule.agents):
                continue
            if rule.risk_tiers and (agent is None or agent.risk_tier not in rule.risk_tiers):
                continue
            if rule.teams and (team is None or team.name not in rule.teams):
                continue
            if rule.models and ctx.model not in rule.models:
                continue
            if rule.min_estimated_cost_usd is not None and estimate < rule.min_estimated_cost_usd:
                continue
            return rule
        return None

    async def admit(self, ctx: RequestContext) -> None:
        headers: dict[str, str] = ctx.attrs.get("headers", {})
        approval_id = headers.get("x-lockgate-approval")
        if approval_id:
            await self._oversight.consume(approval_id, principal=ctx.principal, request_hash=request_hash(ctx))
            ctx.attrs["approval"] = approval_id
            return
        estimate = self._estimate(ctx)
        rule = self._match(ctx, estimate)
        if rule is None:
            return
        mode = headers.get("x-lockgate-approval-mode", self._config.mode)
        if mode not in ("wait", "async"):
            raise InvalidRequest("x-lockgate-approval-mode must be 'wait' or 'async'.", param="x-lockgate-approval-mode")
        chat = ctx.chat
        messages = [
            {"role": m.role, "content": redact_preview(m.text())}
            for m in (chat.messages if chat else [])
        ][-6:]
        p = ctx.principal
        ctx.attrs["approval"] = await self._oversight.hold(
            kind="request",
            actor=p,
            request_id=ctx.request_id,
            reason=f"approval rule '{rule.name}' matched",
            summary={"endpoint": ctx.endpoint, "model": ctx.model, "stream": ctx.stream, "messages": messages},
            evidence={
                "rule": rule.name,
                "estimated_cost_usd": round(estimate, 6),
                "agent": p.agent_name if p else None,
                "delegation": list(p.delegation) if p else [],
            },
            wait=mode == "wait",
            request_hash=request_hash(ctx),
        )

    async def complete(self, ctx: RequestContext) -> None:
        return None
