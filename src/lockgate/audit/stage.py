"""The audit stage: one ledger event per gateway request, durable before the reply.

It sits right after `record`, so its `complete` runs after every other stage has
finished (usage settled, guard verdicts in, decision known). For a non-streamed
request the reply waits for the commit; for a stream, the final event (`[DONE]`,
`message_stop`) does. If the ledger cannot commit, the request ends with
`audit_unavailable` (503) instead of its answer.

Agent reasoning rides on the header `x-lockgate-reasoning` (or is appended later with
`POST /v1/audit/reasoning`); the data subject, whose key encrypts the payloads, is the
header `x-lockgate-data-subject`, else the request's `user`, else the caller's user.
"""

from __future__ import annotations

from typing import Any

import msgspec

from lockgate.audit.canonical import Canonical, is_plain_float
from lockgate.audit.ledger import AuditUnavailable, Ledger
from lockgate.core.context import RequestContext
from lockgate.core.types import ChatRequest
from lockgate.errors import LockgateError, UpstreamError

__all__ = ["AuditStage"]


class AuditStage:
    name = "audit"

    def __init__(self, ledger: Ledger, *, meter: Any = None) -> None:
        self._ledger = ledger
        self._meter = meter

    async def admit(self, ctx: RequestContext) -> None:
        return None

    async def complete(self, ctx: RequestContext) -> None:
        if self._meter is not None:
            await self._meter(ctx)
        try:
            await self._ledger.append(**event_of(ctx, capture=self._ledger.config.capture_content))
        except AuditUnavailable as exc:
            ctx.attrs["fatal"] = exc
        except LockgateError as exc:  # an invalid event: a bug, but never a silent gap
            ctx.attrs["fatal"] = AuditUnavailable(f"The audit event was refused: {exc.message}")


def event_of(ctx: RequestContext, *, capture: bool = True) -> dict[str, Any]:
    error = ctx.error
    headers: dict[str, str] = ctx.attrs.get("headers", {})
    refused = error is not None and not isinstance(error, UpstreamError)
    event: dict[str, Any] = {
        "type": "gateway.refused" if refused else "gateway.request",
        "actor": ctx.principal,
        "request_id": ctx.request_id,
        "trace_id": ctx.attrs.get("trace_id"),
        "target": {
            "endpoint": ctx.endpoint,
            "model": ctx.model or None,
            "route": ctx.route_model,
            "provider": ctx.provider,
        },
        "latency_ms": ctx.elapsed() * 1000,
        "status": error.status if error is not None else 200,
    }
    if error is not None:
        event["error"] = error.code
        event["reason"] = error.message[:500]
    if ctx.cost is not None:
        event["cost_usd"] = ctx.cost
    _decisions(ctx, event)
    _payloads(ctx, event, headers, capture)
    return event


def _decisions(ctx: RequestContext, event: dict[str, Any]) -> None:
    policy = ctx.attrs.get("policy")
    if policy is not None:
        event["decision"] = {
            "effect": "allow" if policy.allowed else "deny",
            "policies": list(policy.policies),
            **({"reason": policy.reason} if policy.reason else {}),
        }
    approval = ctx.attrs.get("approval")
    if approval is not None:
        event["decision"] = {**event.get("decision", {"effect": "allow"}), "effect": "approved"}
        event["data"] = {"approval_id": approval}
    verdicts = ctx.attrs.get("guard_verdicts")
    if verdicts:
        event["guard"] = [_verdict(v) for v in verdicts]


def _payloads(ctx: RequestContext, event: dict[str, Any], headers: dict[str, str], capture: bool) -> None:
    if ctx.chat is not None:
        fast = None if capture else _chat_bytes(ctx.chat)
        event["input"] = fast if fast is not None else msgspec.to_builtins(ctx.chat)
    elif ctx.embedding is not None:
        event["input"] = msgspec.to_builtins(ctx.embedding)
    text: list[str] | None = ctx.attrs.get("stream_text")
    if text is not None:
        event["output"] = "".join(text)
    elif ctx.response is not None:
        # A ChatResponse holds no float and no free-form mapping: msgspec's sorted
        # encoding of it is its RFC 8785 form.
        event["output"] = msgspec.to_builtins(ctx.response) if capture else Canonical(_sorted(ctx.response))
    reasoning = headers.get("x-lockgate-reasoning")
    if reasoning:
        event["reasoning"] = reasoning
    subject = headers.get("x-lockgate-data-subject") or (ctx.chat.user if ctx.chat else None)
    if subject is None and ctx.principal is not None:
        subject = ctx.principal.user_id
    if subject:
        event["subject"] = subject


_sorted = msgspec.json.Encoder(order="sorted").encode


def _chat_bytes(chat: ChatRequest) -> Canonical | None:
    """The request's RFC 8785 bytes straight from msgspec when its shape allows (no
    free-form JSON such as tool schemas, plain floats, ASCII metadata keys); else None."""
    if chat.tools or chat.prompt_variables is not None:
        return None
    if chat.response_format is not None and chat.response_format.schema is not None:
        return None
    if not all(k.isascii() for k in chat.metadata):
        return None
    for x in (chat.temperature, chat.top_p, chat.presence_penalty, chat.frequency_penalty):
        if x is not None and not is_plain_float(x):
            return None
    return Canonical(_sorted(chat))


_VERDICT_KEYS = ("scanner", "action", "score", "version", "where", "entity")


def _verdict(v: Any) -> dict[str, Any]:
    raw: dict[str, Any] = v if isinstance(v, dict) else msgspec.to_builtins(v)  # pyright: ignore[reportUnknownVariableType]
    return {k: raw[k] for k in _VERDICT_KEYS if raw.get(k) is not None}
