"""The gateway's compact audit record: what a request's event is made of, flat.

Every gateway request writes one event, on the request path. Building the event's
nested types there (actor, target, decision, the event itself, by keyword) and writing
it as a msgpack map cost twice what this record does: one struct, positional, written
as a msgpack array (no field names: half the bytes). It is what the journal holds for
a gateway request; the ledger's writer turns it into the `AuditEvent` (`to_event`),
many at a time, off the request path.

Validation is unchanged: the ledger decodes the record's journal frame with this
type (strict: the same literals and types as the published schema) before the
request is answered, and `to_event` maps a valid record to a valid event, field for
field (a test holds it equal to the general path, `Ledger.event`).
"""

from __future__ import annotations

import msgspec

from lockgate.audit.event import (
    Actor,
    ActorKind,
    AuditEvent,
    Decision,
    Effect,
    GuardVerdict,
    Target,
)

__all__ = ["GatewayRecord", "to_event"]


class GatewayRecord(msgspec.Struct, array_like=True, gc=False):
    id: str
    time: str
    refused: bool  # type "gateway.refused", else "gateway.request"
    kind: ActorKind | None  # None: no principal (then the next seven are empty)
    principal: str | None
    key_prefix: str | None
    user: str | None
    team: str | None
    agent: str | None
    delegation: list[str]
    shadow_agent: str | None
    endpoint: str | None
    model: str | None
    route: str | None
    provider: str | None
    request_id: str | None
    trace_id: str | None
    input_sha256: str | None
    output_sha256: str | None
    reasoning_sha256: str | None
    effect: Effect | None  # None: no decision
    policies: list[str]
    decision_reason: str | None
    guard: list[GuardVerdict]
    cost_usd: float | None
    latency_ms: float | None
    status: int | None
    error: str | None
    reason: str | None
    subject: str | None
    approval_id: str | None


def to_event(r: GatewayRecord, seq: int = 0) -> AuditEvent:
    """The event a record stands for, numbered `seq` (0: not numbered yet)."""
    actor = None
    if r.kind is not None and r.principal is not None:
        actor = Actor(r.kind, r.principal, r.key_prefix, r.user, r.team, r.agent, r.delegation, r.shadow_agent)
    target = None
    if r.endpoint is not None or r.model is not None or r.route is not None or r.provider is not None:
        target = Target(r.endpoint, r.model, r.route, r.provider)
    decision = Decision(r.effect, r.policies, r.decision_reason) if r.effect is not None else None
    return AuditEvent(
        seq=seq,
        id=r.id,
        time=r.time,
        type="gateway.refused" if r.refused else "gateway.request",
        actor=actor,
        target=target,
        request_id=r.request_id,
        trace_id=r.trace_id,
        input_sha256=r.input_sha256,
        output_sha256=r.output_sha256,
        reasoning_sha256=r.reasoning_sha256,
        decision=decision,
        guard=r.guard,
        cost_usd=r.cost_usd,
        latency_ms=r.latency_ms,
        status=r.status,
        error=r.error,
        reason=r.reason,
        subject=r.subject,
        data={"approval_id": r.approval_id} if r.approval_id is not None else {},
    )
