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
from lockgate.audit.event import AuditEvent, GuardVerdict, digest
from lockgate.audit.ledger import AuditUnavailable, Ledger
from lockgate.audit.record import GatewayRecord, to_event
from lockgate.core.context import RequestContext
from lockgate.core.types import ChatRequest
from lockgate.errors import LockgateError, UpstreamError

__all__ = ["AuditStage", "gateway_event", "gateway_record"]


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
        ledger = self._ledger
        try:
            record, payload = gateway_record(ctx, ledger.stamp(), capture=ledger.config.capture_content)
            await ledger.append_record(record, payload)
        except AuditUnavailable as exc:
            ctx.attrs["fatal"] = exc
        except LockgateError as exc:  # an invalid event: a bug, but never a silent gap
            ctx.attrs["fatal"] = AuditUnavailable(f"The audit event was refused: {exc.message}")


def gateway_record(
    ctx: RequestContext, stamp: tuple[str, str], *, capture: bool = True
) -> tuple[GatewayRecord, dict[str, Any] | None]:
    """The request's audit record (id and time from `stamp`) and, when any is kept, its
    payloads. The ledger validates it and its writer makes it the event (`record.py`)."""
    error = ctx.error
    p = ctx.principal
    input_value, output_value = _payloads(ctx, capture)
    payload: dict[str, Any] = {}
    input_sha = output_sha = reasoning_sha = None
    if input_value is not None:
        input_sha = digest(input_value)
        if capture:
            payload["input"] = input_value
    if output_value is not None:
        output_sha = digest(output_value)
        if capture:
            payload["output"] = output_value
    attrs = ctx.attrs
    headers: dict[str, str] = attrs.get("headers", {})
    reasoning = headers.get("x-lockgate-reasoning")
    if reasoning:
        reasoning_sha = digest(reasoning)
        payload["reasoning"] = reasoning  # attached on purpose: always kept
    subject = headers.get("x-lockgate-data-subject") or (ctx.chat.user if ctx.chat else None)
    if subject is None and p is not None:
        subject = p.user_id
    policy = attrs.get("policy")
    approval = attrs.get("approval")
    effect = None if policy is None else "allow" if policy.allowed else "deny"
    if approval is not None:
        effect = "approved"
    verdicts = attrs.get("guard_verdicts")
    record = GatewayRecord(
        stamp[0],
        stamp[1],
        error is not None and not isinstance(error, UpstreamError),
        p.kind if p is not None else None,  # pyright: ignore[reportArgumentType]  # checked by the ledger
        p.id if p is not None else None,
        p.label if p is not None and p.kind in ("key", "grant") and p.label else None,
        (p.user_id or None) if p is not None else None,
        (p.team_id or None) if p is not None else None,
        (p.agent_name or None) if p is not None else None,
        list(p.delegation) if p is not None else [],
        (p.shadow_agent or None) if p is not None else None,
        ctx.endpoint,
        ctx.model or None,
        ctx.route_model,
        ctx.provider,
        ctx.request_id,
        attrs.get("trace_id"),
        input_sha,
        output_sha,
        reasoning_sha,
        effect,
        list(policy.policies) if policy is not None else [],
        (policy.reason or None) if policy is not None else None,
        [_verdict(v) for v in verdicts] if verdicts else [],
        ctx.cost,
        round(ctx.elapsed() * 1000, 3),
        error.status if error is not None else 200,
        error.code if error is not None else None,
        error.message[:500] if error is not None else None,
        subject or None,
        approval,
    )
    return record, payload or None


def gateway_event(
    ctx: RequestContext, stamp: tuple[str, str], *, capture: bool = True
) -> tuple[AuditEvent, dict[str, Any] | None]:
    """The request's event, as the ledger stores it (`gateway_record`, made an event)."""
    record, payload = gateway_record(ctx, stamp, capture=capture)
    return to_event(record), payload


def _payloads(ctx: RequestContext, capture: bool) -> tuple[Any, Any]:
    """The request's input and output as hashed (and, with `capture`, kept)."""
    input_value: Any = None
    if ctx.chat is not None:
        fast = None if capture else _chat_bytes(ctx.chat)
        input_value = fast if fast is not None else msgspec.to_builtins(ctx.chat)
    elif ctx.embedding is not None:
        input_value = msgspec.to_builtins(ctx.embedding)
    output_value: Any = None
    text: list[str] | None = ctx.attrs.get("stream_text")
    if text is not None:
        output_value = "".join(text)
    elif ctx.response is not None:
        # A ChatResponse holds no float and no free-form mapping: msgspec's sorted
        # encoding of it is its RFC 8785 form.
        output_value = msgspec.to_builtins(ctx.response) if capture else Canonical(_sorted(ctx.response))
    return input_value, output_value


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


def _verdict(v: Any) -> GuardVerdict:
    raw: dict[str, Any] = v if isinstance(v, dict) else msgspec.to_builtins(v)  # pyright: ignore[reportUnknownVariableType]
    return GuardVerdict(
        scanner=raw.get("scanner"),  # pyright: ignore[reportArgumentType]  # checked by the ledger
        action=raw.get("action"),  # pyright: ignore[reportArgumentType]
        score=raw.get("score"),
        version=raw.get("version"),
        where=raw.get("where"),
        entity=raw.get("entity"),
    )
