"""What an authorization question and its answer look like, apart from Cedar.

A `PolicyRequest` names its principal and resource by lockgate id; the engine turns it
into a Cedar request (`Lockgate::Key::"<key id>"`, `Lockgate::Model::"fast"`, ...)
against the entities built from the access records (`lockgate.access.policy_entities`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "AgentResource",
    "Decision",
    "ModelResource",
    "PolicyAction",
    "PolicyContext",
    "PolicyPrincipal",
    "PolicyRequest",
    "PolicyResource",
    "PrincipalKind",
    "ToolResource",
]

PrincipalKind = Literal["operator", "key", "grant", "user"]
PolicyAction = Literal["invoke_model", "call_tool", "request_grant"]


@dataclass(frozen=True, slots=True)
class PolicyPrincipal:
    """Who asks: the operator (id: its name, e.g. "admin"), or a key, grant or user by
    record id. An agent always acts through a key or a grant; it is the context's agent."""

    kind: PrincipalKind
    id: str


@dataclass(frozen=True, slots=True)
class ModelResource:
    """A model, by its configured name (`Lockgate::Model::"NAME"`)."""

    name: str


@dataclass(frozen=True, slots=True)
class ToolResource:
    """An MCP tool (`Lockgate::Tool::"SERVER/NAME"`); scopes name it `server/name` or
    `server/*`."""

    server: str
    name: str
    destructive: bool = False

    @property
    def scope(self) -> str:
        return f"{self.server}/{self.name}"


@dataclass(frozen=True, slots=True)
class AgentResource:
    """An agent, by record id: what `request_grant` asks a grant for."""

    id: str


PolicyResource = ModelResource | ToolResource | AgentResource


@dataclass(frozen=True, slots=True)
class PolicyContext:
    """The request's circumstances. `agent_id` is the agent it acts for; left None, the
    engine takes the agent the key or grant is bound to (or, for `request_grant`, the
    resource). Money is USD here and micro-USD (a Cedar Long) in the policies."""

    agent_id: str | None = None
    delegation: tuple[str, ...] = ()  # hops of the delegation chain, e.g. "agent:planner"
    estimated_cost_usd: float = 0.0
    stream: bool = False
    grant_models: tuple[str, ...] = ()  # request_grant: what the grant would add
    grant_tools: tuple[str, ...] = ()
    grant_minutes: int = 0


@dataclass(frozen=True, slots=True)
class PolicyRequest:
    principal: PolicyPrincipal
    action: PolicyAction
    resource: PolicyResource
    context: PolicyContext = field(default_factory=PolicyContext)


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer. `policies` are the ids of the policies that decided it (the permits
    that allowed it, or the forbids that denied it); a default deny has none and the
    reason "no policy permits". `errors` are policies that failed to evaluate: a failed
    forbid denies (fail closed), a failed permit only permits nothing."""

    allowed: bool
    decision: Literal["allow", "deny"]
    policies: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    reason: str = ""

    @classmethod
    def allow(cls, policies: tuple[str, ...], errors: tuple[str, ...] = ()) -> Decision:
        return cls(True, "allow", policies, errors, f"permitted by {', '.join(policies)}")

    @classmethod
    def deny(
        cls, policies: tuple[str, ...], errors: tuple[str, ...] = (), reason: str = ""
    ) -> Decision:
        if not reason:
            reason = f"forbidden by {', '.join(policies)}" if policies else "no policy permits"
        return cls(False, "deny", policies, errors, reason)
