"""The audit event: one typed record, its published JSON Schema, and its hashes.

The schema is generated from these msgspec types (`event_schema()`) and published as
`docs/audit-event.schema.json` (a test keeps the file equal to the types). Every
event is validated against it when it is built (`msgspec.convert`, strict), so a
malformed event never reaches the ledger.

What is hashed: the event's RFC 8785 bytes (`body`). Payloads (prompt, answer, tool
arguments and results, agent reasoning) are not in the body: the body carries their
SHA-256 (of their own canonical bytes), and the payloads are stored beside it, in
clear or encrypted per data subject. Erasing a payload (retention, crypto-shredding)
leaves every proof valid; changing one is caught by its digest.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import msgspec

from lockgate.audit.canonical import payload_bytes
from lockgate.core.context import Principal

__all__ = [
    "EVENT_TYPES",
    "Actor",
    "ActorKind",
    "AuditEvent",
    "Decision",
    "Effect",
    "GuardVerdict",
    "Target",
    "actor_of",
    "digest",
    "event_schema",
    "search_columns",
]

EventType = Literal[
    "gateway.request",  # a request answered or failed upstream
    "gateway.refused",  # refused by lockgate: auth, policy, limits, kill switch, guardrail
    "agent.reasoning",  # reasoning or a plan attached to a request afterwards
    "tool.call",  # an MCP tool call and its outcome
    "policy.decision",
    "guard.verdict",
    "limit.refusal",
    "kill.set",
    "kill.lifted",
    "grant.created",
    "grant.revoked",
    "approval.requested",
    "approval.approved",
    "approval.denied",
    "approval.expired",
    "admin.change",
    "prompt.promote",
    "audit.checkpoint",
]
EVENT_TYPES: tuple[str, ...] = EventType.__args__  # pyright: ignore[reportAttributeAccessIssue]

Hex64 = msgspec.Meta(pattern="^[0-9a-f]{64}$")
ActorKind = Literal["operator", "key", "grant", "anonymous", "reviewer", "system"]
Effect = Literal["allow", "deny", "needs_approval", "approved", "denied"]

# The event types are `gc=False`: an event holds only strings, numbers and (in `data`,
# `guard`, `delegation`) containers that never point back at it, so it can be in no
# reference cycle. Untracked, the events waiting for the writer (a few thousand under
# load) are not walked by every collection of the generations they age into.


class Actor(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True, gc=False):
    """Who acted: the principal, and the human and agent behind it."""

    kind: ActorKind
    principal: str
    key_prefix: str | None = None
    user: str | None = None
    team: str | None = None
    agent: str | None = None
    delegation: list[str] = msgspec.field(default_factory=lambda: [])
    shadow_agent: str | None = None


class Target(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True, gc=False):
    """What was acted on."""

    endpoint: str | None = None
    model: str | None = None
    route: str | None = None
    provider: str | None = None
    server: str | None = None
    tool: str | None = None
    object: str | None = None  # admin changes: "key:lg-AbCd", "agent:planner"


class Decision(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True, gc=False):
    effect: Effect
    policies: list[str] = msgspec.field(default_factory=lambda: [])
    reason: str | None = None


class GuardVerdict(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True, gc=False):
    scanner: str
    action: str
    score: float | None = None
    version: str | None = None
    where: str | None = None
    entity: str | None = None


class AuditEvent(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True, gc=False):
    """One ledger entry (schema version `v`)."""

    seq: int
    id: str
    time: str  # RFC 3339, UTC, microseconds, "Z"
    type: EventType
    v: int = 1
    actor: Actor | None = None
    target: Target | None = None
    request_id: str | None = None
    trace_id: str | None = None
    input_sha256: str | None = None
    output_sha256: str | None = None
    reasoning_sha256: str | None = None
    decision: Decision | None = None
    guard: list[GuardVerdict] = msgspec.field(default_factory=lambda: [])
    cost_usd: float | None = None
    latency_ms: float | None = None
    status: int | None = None
    error: str | None = None
    reason: str | None = None
    subject: str | None = None  # the data subject whose key encrypts the payloads
    data: dict[str, Any] = msgspec.field(default_factory=lambda: {})


def search_columns(event: AuditEvent) -> tuple[Any, ...]:
    """The fields copied out of an event's body into columns for search, in the table's
    order: request_id, principal, agent, model, decision, status. The ledger writes
    them; `verify` checks them against the body."""
    actor, target, decision = event.actor, event.target, event.decision
    return (
        event.request_id,
        actor.principal if actor else None,
        actor.agent if actor else None,
        target.model if target else None,
        decision.effect if decision else None,
        event.status,
    )


def digest(value: Any) -> str:
    """SHA-256 (hex) of a payload's canonical bytes (strings hash as JSON strings; see
    `payload_bytes` for values outside RFC 8785's domain)."""
    return hashlib.sha256(payload_bytes(value)).hexdigest()


def actor_of(principal: Principal | None) -> dict[str, Any] | None:
    if principal is None:
        return None
    actor: dict[str, Any] = {"kind": principal.kind, "principal": principal.id}
    if principal.kind in ("key", "grant") and principal.label:
        actor["key_prefix"] = principal.label
    if principal.user_id:
        actor["user"] = principal.user_id
    if principal.team_id:
        actor["team"] = principal.team_id
    if principal.agent_name:
        actor["agent"] = principal.agent_name
    if principal.delegation:
        actor["delegation"] = list(principal.delegation)
    if principal.shadow_agent:
        actor["shadow_agent"] = principal.shadow_agent
    return actor


def event_schema() -> dict[str, Any]:
    """The published JSON Schema (draft 2020-12) of an audit event."""
    schema = msgspec.json.schema(AuditEvent)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://lockgate.dev/schemas/audit-event/v1.json",
        "title": "lockgate audit event",
        **schema,
    }
